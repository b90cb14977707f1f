"""A small pool of daemon threads for pushes.

``concurrent.futures.ThreadPoolExecutor`` joins its threads at interpreter exit, so a push
stuck on a slow receiver would hold up shutdown for its whole timeout. Daemon threads let
SIGTERM end the mock promptly; an unfinished push is simply lost, as one can be on WeChat.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

_T = TypeVar("_T")
log = logging.getLogger(__name__)

_Job = tuple[Callable[[], Any], "Future[Any]"]


class Workers:
    def __init__(self, count: int = 4, name: str = "mock-wechat-worker") -> None:
        if count < 1:
            raise ValueError("count must be >= 1")
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
            for i in range(count)
        ]
        self._lock = threading.Lock()
        self._started = False

    def submit(self, fn: Callable[[], _T]) -> Future[_T]:
        with self._lock:
            if self._closed:
                raise RuntimeError("workers are shut down")
            if not self._started:  # threads start on first use, not at construction
                self._started = True
                for thread in self._threads:
                    thread.start()
        future: Future[_T] = Future()
        self._queue.put((fn, future))
        return future

    def shutdown(self) -> None:
        """Stop taking work; each thread exits after its current job."""
        with self._lock:
            self._closed = True
            if not self._started:
                return
        for _ in self._threads:
            self._queue.put(None)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            fn, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except Exception as exc:  # handed to whoever waits on the future
                log.exception("background job failed")
                future.set_exception(exc)
