"""Serving the mock over HTTP: gunicorn's threaded worker in one process, as the service.

WeChat's API keeps connections alive between calls, and so does this server. (werkzeug's
development server, used before, closes every connection: each of the service's calls
then paid for a new one, which its benchmarks counted as the service's CPU.)

One worker process holds the mock's state in memory. The state, the event pushers and
the ticket scheduler are made in that worker, after gunicorn forks it; the master only
listens, prints where, and logs ``stopped`` when it ends (SIGTERM or SIGINT).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

from mock_wechat.api import DROPPED
from mock_wechat.app import create_app
from mock_wechat.event_pusher import EventPusher
from mock_wechat.models import MockWeChat
from mock_wechat.ticket_scheduler import TicketScheduler

log = logging.getLogger("mock_wechat")
# Requests wait in the mock (latencies, delay faults) without using CPU: many threads.
THREADS = 128
# Longer than any pause between two calls in a test or a benchmark, so that the server
# never closes an idle connection just as a client sends on it.
KEEPALIVE_SECONDS = 75
_QUERY = re.compile(r"\?\S*")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _NoQueryStrings(logging.Filter):
    """gunicorn's own lines may quote a request's URL, whose query carries tokens."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("gunicorn"):
            record.msg, record.args = _QUERY.sub("?…", record.getMessage()), None
        return True


def with_access_log(app: WsgiApp) -> WsgiApp:
    """One ``request`` line per request: method, path without its query, and status
    (``dropped`` when a drop fault closed the connection instead of answering)."""

    def logged(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        status: list[str] = []

        def start(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(code.split(" ", 1)[0])
            return start_response(code, headers, exc_info)

        try:
            return app(environ, start)
        finally:
            log.info(
                "request",
                extra={
                    "method": environ.get("REQUEST_METHOD"),
                    "path": environ.get("PATH_INFO"),
                    "status": "dropped" if environ.get(DROPPED) else (status or ["-"])[0],
                },
            )

    return logged


class MockServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, host: str, port: int, scheduler_tick: float, log_level: str) -> None:
        self._scheduler_tick = scheduler_tick
        self._running: tuple[TicketScheduler, EventPusher] | None = None
        self._settings = {
            "bind": f"{host}:{port}",
            "workers": 1,  # the state is this process's memory
            "worker_class": "gthread",
            "threads": THREADS,
            "keepalive": KEEPALIVE_SECONDS,
            "timeout": 0,  # requests may sleep (latencies, delay faults) as long as asked
            "graceful_timeout": 5,
            "control_socket_disable": True,  # one fixed path per user: servers would share it
            "logconfig_dict": _logging(log_level),
            "when_ready": _say_where,
            "worker_exit": self._stop_worker,
            "on_exit": lambda server: log.info("stopped"),
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._settings.items():
            self.cfg.set(key, value)

    def load(self) -> WsgiApp:
        """In the worker: the state, its pushers and the ticket scheduler."""
        state = MockWeChat()
        events = EventPusher(state)
        scheduler = TicketScheduler(state, events, tick=self._scheduler_tick)
        scheduler.start()
        self._running = (scheduler, events)
        return with_access_log(create_app(state, events))

    def _stop_worker(self, server: Any, worker: Any) -> None:
        if self._running is not None:
            scheduler, events = self._running
            scheduler.stop()
            events.shutdown()


def _say_where(server: Any) -> None:
    host, port = server.LISTENERS[0].sock.getsockname()[:2]
    url = f"http://{host}:{port}"
    print(f"mock_wechat listening on {url}", flush=True)
    log.info("listening", extra={"url": url})


def _logging(level: str) -> dict[str, Any]:
    """gunicorn's lines as the mock's JSON lines, through the root logger; no access lines
    from gunicorn (``with_access_log`` writes them without query strings)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "mock_wechat.json_logs.JsonLines"}},
        "filters": {"no_query": {"()": _NoQueryStrings}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["no_query"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "gunicorn.error": {"handlers": [], "propagate": True},
            "gunicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
        },
    }


def serve(host: str, port: int, scheduler_tick: float, log_level: str = "INFO") -> None:
    MockServer(host, port, scheduler_tick, log_level).run()
