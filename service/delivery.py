"""Delivering a push to the provider's services, by the first route that matches it.

- A ``pubsub`` route publishes the envelope (``service.envelopes``) and waits for Pub/Sub's
  acknowledgement (``service.publisher``); if none comes in time, ``DeliveryFailed``: the
  push is not answered ``success``, so WeChat tries it again.
- A ``reply`` route POSTs the envelope to the provider's service and waits up to the
  route's deadline for a passive reply (JSON, ``service.wechat.replies``). A late, failing
  or malformed answer is logged and the user gets nothing (``success``), never WeChat's
  "该公众号暂时无法提供服务". The call is not repeated: the service may act on it.
- No route: ``success``, and the log line says ``unrouted``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import requests

from service.envelopes import attributes, encode
from service.publisher import Publisher, PublishError
from service.routes import Pushed, Route, first_match
from service.wechat.messages import AccountMessage
from service.wechat.replies import ReplyError, passive_reply

log = logging.getLogger(__name__)

REPLY_WORKERS = 32  # reply calls in flight at once, per process


class DeliveryFailed(RuntimeError):
    """The push could not be handed over in time: answer so that WeChat tries again."""


@dataclass(frozen=True)
class Delivered:
    kind: str  # "pubsub", "reply" or "unrouted"
    route: str | None = None
    reply: str | None = None  # the passive reply's XML, from a reply route
    message_id: str | None = None


class Delivery:
    def __init__(
        self,
        routes: tuple[Route, ...],
        publisher: Publisher,
        project: str | None,
        session_factory: Callable[[], requests.Session] = requests.Session,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.routes = routes
        self.publisher = publisher
        self.project = project
        self.session_factory = session_factory
        self.clock = clock
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0

    def deliver(
        self,
        pushed: Pushed,
        envelope: Mapping[str, Any],
        message: AccountMessage | None = None,
    ) -> Delivered:
        """Deliver by the first matching route; ``message``: the message a reply answers."""
        route = first_match(self.routes, pushed)
        if route is None:
            return Delivered("unrouted")
        if route.pubsub is not None:
            try:
                message_id = self.publisher.publish(
                    route.topic_path(self.project), encode(envelope), attributes(envelope)
                )
            except PublishError as exc:
                raise DeliveryFailed(f"route {route.name!r}: {exc}") from None
            return Delivered("pubsub", route.name, message_id=message_id)
        assert message is not None  # reply routes match messages only (service.routes)
        return Delivered("reply", route.name, reply=self._ask(route, envelope, message))

    def _ask(
        self, route: Route, envelope: Mapping[str, Any], message: AccountMessage
    ) -> str | None:
        assert route.reply is not None
        where = {"route": route.name, "authorizer_appid": envelope.get("authorizer_appid")}
        future = self._reply_pool().submit(self._post, route, encode(envelope))
        try:
            status, body = future.result(timeout=route.deadline)
        except FutureTimeout:
            log.warning(
                f"reply route did not answer within {route.deadline:g} s: no reply", extra=where
            )
            return None
        except requests.RequestException as exc:
            log.warning(
                "reply route failed: no reply", extra={**where, "error": type(exc).__name__}
            )
            return None
        if status == 204 or not body.strip():
            return None
        if status != 200:
            log.warning(
                "reply route answered an error: no reply", extra={**where, "status": status}
            )
            return None
        try:
            answer = _json(body)
            if answer == {}:
                return None
            return passive_reply(message, answer, int(self.clock()))
        except ReplyError as exc:
            log.warning("reply route's answer is not a reply", extra={**where, "error": str(exc)})
            return None

    def _post(self, route: Route, data: bytes) -> tuple[int, bytes]:
        assert route.reply is not None
        with self.session_factory() as session:
            response = session.post(
                route.reply,
                data=data,
                headers={"Content-Type": "application/json; charset=utf-8"},
                timeout=route.deadline,
                allow_redirects=False,
            )
            return response.status_code, response.content

    def _reply_pool(self) -> ThreadPoolExecutor:
        # Threads do not survive gunicorn's fork: one pool per process, made on first use.
        with self._lock:
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = ThreadPoolExecutor(REPLY_WORKERS, thread_name_prefix="reply")
                self._pool_pid = os.getpid()
            return self._pool


def _json(body: bytes) -> Any:
    import json

    try:
        return json.loads(body)
    except ValueError:
        raise ReplyError("the answer is not JSON") from None
