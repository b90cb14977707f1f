"""The ticket clock: pushes a fresh ticket for each component when its turn comes.

A daemon thread polls the state's schedule a few times a second (in real time), so a
``ticket_interval`` measured on the mock clock fires promptly after a clock jump too.
The server starts it; importing this module starts nothing.
"""

from __future__ import annotations

import logging
import threading

from mock_wechat.event_pusher import EventPusher
from mock_wechat.models import MockWeChat

log = logging.getLogger(__name__)


class TicketScheduler:
    def __init__(self, state: MockWeChat, pusher: EventPusher, tick: float = 0.05) -> None:
        self._state = state
        self._pusher = pusher
        self._tick = tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._run, name="mock-wechat-tickets", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> list[str]:
        """Hand every due push to the pusher's workers; returns the appids."""
        due = self._state.take_due_ticket_pushes()
        for appid in due:
            self._pusher.push_ticket_async(appid)
        return due

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            try:
                self.run_once()
            except Exception:  # keep ticking: one bad round must not end all pushes
                log.exception("ticket scheduler round failed")
