"""Deliver pushes to a component's 授权事件接收URL, sealed as WeChat does (protocol §1.5).

``POST {event_url}?signature=&timestamp=&nonce=&encrypt_type=aes&msg_signature=`` with the
``<xml><AppId/><Encrypt/></xml>`` envelope. Only HTTP 200 with the exact body ``success``
counts as delivered (§1.6). Every attempt goes to the push log, with the message it
carried, so a logged push can be delivered again (a duplicate, or an old one out of order).
Authorization pushes are delivered by whoever caused them, after the state's lock is
released, unless the component holds them until ``release_held``.

The query ``timestamp`` is real wall-clock time, so a receiver's replay window still holds
after the mock clock was advanced; ``CreateTime`` inside the message is mock time.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import requests

from mock_wechat.authorization import Notice
from mock_wechat.crypto import MessageCrypto
from mock_wechat.models import (
    INFO_TYPE_TICKET,
    MockWeChat,
    PendingPush,
    PushRecord,
    PushTarget,
    Ticket,
    UnknownComponentError,
)
from mock_wechat.wire import push_envelope, to_xml
from mock_wechat.workers import Workers

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0
SUCCESS = b"success"


@dataclass(frozen=True)
class PushResult:
    """The last attempt's outcome."""

    delivered: bool
    http_status: int | None
    error: str | None
    attempts: int

    def to_dict(self) -> dict[str, Any]:
        return {"delivered": self.delivered, "http_status": self.http_status, "error": self.error}


@dataclass(frozen=True)
class TicketPush:
    ticket: str = field(repr=False)
    create_time: int
    result: PushResult

    def to_dict(self) -> dict[str, Any]:
        return {
            "ticket": self.ticket,
            "create_time": self.create_time,
            "delivered": self.result.delivered,
            "http_status": self.result.http_status,
            "error": self.result.error,
        }


def ticket_message(ticket: Ticket) -> str:
    """The decrypted ticket push (protocol §2.1)."""
    return to_xml(
        {
            "AppId": ticket.component,
            "CreateTime": int(ticket.issued_at),
            "InfoType": INFO_TYPE_TICKET,
            "ComponentVerifyTicket": ticket.value,
        }
    )


def random_nonce() -> str:
    # Real nonces are decimal strings of 9-10 digits, e.g. 619113215.
    return str(100_000_000 + secrets.randbelow(4_000_000_000))


class EventPusher:
    def __init__(
        self,
        state: MockWeChat,
        timeout: float = DEFAULT_TIMEOUT,
        workers: int = 4,
        session_factory: Callable[[], requests.Session] = requests.Session,
    ) -> None:
        self._state = state
        self._timeout = timeout
        self._session_factory = session_factory
        self._workers = Workers(workers, name="mock-wechat-push")

    def shutdown(self) -> None:
        self._workers.shutdown()

    def push_ticket(self, appid: str) -> TicketPush:
        """Issue a new ticket for ``appid`` and deliver it now, in this thread."""
        ticket = self._state.issue_ticket(appid)
        result = self.deliver(appid, INFO_TYPE_TICKET, ticket_message(ticket))
        return TicketPush(ticket.value, int(ticket.issued_at), result)

    def push_ticket_async(self, appid: str) -> Future[TicketPush | None]:
        """Queue a ticket push; the future holds None if the component went away first."""
        return self._workers.submit(lambda: self._push_ticket_if_registered(appid))

    def _push_ticket_if_registered(self, appid: str) -> TicketPush | None:
        try:
            return self.push_ticket(appid)
        except UnknownComponentError:
            # A reset or re-registration raced the queued push; nothing to deliver.
            log.info("push skipped: component no longer registered", extra={"appid": appid})
            return None

    def deliver(self, appid: str, info_type: str, message: str) -> PushResult:
        """Seal ``message`` and POST it, retrying up to the component's ``push_retries``."""
        target = self._state.push_target(appid)
        crypto = MessageCrypto(target.token, target.encoding_aes_key, target.appid)
        result = PushResult(False, None, "not attempted", 0)
        with self._session_factory() as session:
            for attempt in range(1, target.retries + 2):
                status, error = self._attempt(session, crypto, target, message)
                result = PushResult(error is None, status, error, attempt)
                self._state.record_push(target, info_type, status, result.delivered, error, message)
                if result.delivered:
                    break
        return result

    def dispatch(self, notice: Notice) -> PushResult | None:
        """Deliver an authorization push now, in this thread; None if it was held."""
        if notice.held:
            return None
        push = notice.push
        return self.deliver(push.appid, push.info_type, push.message)

    def redeliver(self, entry: PushRecord) -> PushResult:
        """Seal a logged push's message afresh and send it again (a duplicate push)."""
        return self.deliver(entry.appid, entry.info_type, entry.message)

    def release_held(self) -> list[tuple[PendingPush, PushResult]]:
        """Deliver every held push, oldest first, one after another."""
        return [
            (push, self.deliver(push.appid, push.info_type, push.message))
            for push in self._state.take_held_pushes()
        ]

    def _attempt(
        self, session: requests.Session, crypto: MessageCrypto, target: PushTarget, message: str
    ) -> tuple[int | None, str | None]:
        timestamp = str(int(time.time()))
        nonce = random_nonce()
        sealed = crypto.seal(message, timestamp, nonce)
        params = {
            "signature": sealed.signature,
            "timestamp": timestamp,
            "nonce": nonce,
            "encrypt_type": "aes",
            "msg_signature": sealed.msg_signature,
        }
        try:
            response = session.post(
                target.event_url,
                params=params,
                data=push_envelope(target.appid, sealed.encrypt).encode("utf-8"),
                headers={"Content-Type": "text/xml"},
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.Timeout:
            return None, f"timed out after {self._timeout:g}s"
        except requests.RequestException as exc:
            # Only the class name: the text would repeat the URL and its signatures.
            return None, f"request failed: {type(exc).__name__}"
        if response.status_code != 200:
            return response.status_code, f"HTTP {response.status_code}"
        if response.content != SUCCESS:
            return response.status_code, "reply body was not exactly 'success'"
        return response.status_code, None
