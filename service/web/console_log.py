"""The console's parts that live in every process, reached from any blueprint: the push
log (the hooks in the two push routes call ``push_log()``), the console's store, and the
last sweep's report (``record_sweep``, from /tasks/refresh)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, current_app

from service.console_pushlog import PushLog
from service.console_store import ConsoleStore
from service.store.records import StoreError
from service.web import runtime

log = logging.getLogger(__name__)

_PUSH_LOG = "console_push_log"
_STORE = "console_store"
_lock = threading.Lock()


def console_store() -> ConsoleStore:
    found: ConsoleStore | None = current_app.extensions.get(_STORE)
    if found is None:
        with _lock:
            found = current_app.extensions.setdefault(_STORE, ConsoleStore(runtime().store))
    return found


def push_log() -> PushLog:
    found: PushLog | None = current_app.extensions.get(_PUSH_LOG)
    if found is None:
        rt = runtime()
        made = PushLog(
            console_store(),
            rt.delivery,
            rt.settings.push_log_messages,
            rt.settings.push_log_flush_interval,
        )
        with _lock:
            found = current_app.extensions.setdefault(_PUSH_LOG, made)
    return found


def record_sweep(report: Mapping[str, Any]) -> None:
    """The sweep's report for the overview: one write per sweep (every few minutes)."""
    try:
        console_store().put_sweep(time.time(), report)
    except StoreError as exc:
        log.warning("console: sweep report not written", extra={"error": str(exc)})


def install(app: Flask) -> None:
    """Messages held by this process are written after the answer of any request that
    comes once the flush interval is up (no timer: Cloud Run gives CPU only to requests)."""

    @app.after_request
    def flush_after_answer(response: Response) -> Response:
        flush = flush_when_due(app.extensions)
        if flush is not None:
            response.call_on_close(flush)
        return response


def flush_when_due(extensions: Mapping[str, Any]) -> Callable[[], None] | None:
    """The push log's flush, to run after an answer, if this process holds messages past
    the flush interval; None otherwise."""
    held: PushLog | None = extensions.get(_PUSH_LOG)
    if held is None or not held.due():
        return None

    def flush() -> None:
        held.flush_if_due()

    return flush
