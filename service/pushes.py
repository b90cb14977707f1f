"""Pushes to the 授权事件接收URL: check, open and dispatch them (protocol §1.5, §2).

Every check happens before anything is stored: a push that fails one is refused with a
4xx and a reason, and changes nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from service.authorization import AuthorizationFlow, Outcome
from service.inbound import PushRejected, open_envelope
from service.store.records import AuthorizationStore, InboxEntry
from service.tickets import TicketKeeper
from service.wechat.crypto import MessageCrypto
from service.wechat.messages import (
    AuthorizationGranted,
    ComponentVerifyTicket,
    MessageError,
    Notice,
    PushMessage,
    Unauthorized,
    UnknownInfo,
    parse_message,
)

log = logging.getLogger(__name__)

INBOX_TTL = 30 * 86400  # Firestore's TTL policy deletes inbox entries after this
# Outcomes a redelivery of the same push should try again.
RETRYABLE = (Outcome.ERROR, Outcome.IN_PROGRESS, Outcome.CONFIRMING)


@dataclass(frozen=True)
class Opened:
    message: PushMessage
    used_previous_key: bool


def open_push(
    crypto: MessageCrypto,
    query: Mapping[str, str],
    body: bytes,
    now: float,
    max_clock_skew: float,
    max_bytes: int,
) -> Opened:
    """Verify the signatures and the timestamp, decrypt, parse and check the AppId."""
    opened = open_envelope(crypto, query, body, now, max_clock_skew, max_bytes)
    if opened.envelope.app_id is not None and opened.envelope.app_id != crypto.appid:
        raise PushRejected(400, "envelope AppId does not match this component")
    try:
        message = parse_message(opened.decrypted.message, max_bytes)
    except MessageError as exc:
        raise PushRejected(400, f"bad message: {exc}") from None
    if message.app_id != crypto.appid:
        raise PushRejected(400, "message AppId does not match this component")
    return Opened(message, opened.decrypted.used_previous_key)


class PushDispatcher:
    """Hands each opened push to the part of the core that owns it.

    Every push but the ticket goes through an idempotent inbox: a push already handled to
    a final outcome is a duplicate and changes nothing; unknown InfoTypes are recorded.
    """

    def __init__(
        self,
        tickets: TicketKeeper,
        flow: AuthorizationFlow,
        store: AuthorizationStore,
        inbox_ttl: float = INBOX_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tickets = tickets
        self.flow = flow
        self.store = store
        self.inbox_ttl = inbox_ttl
        self.clock = clock

    def dispatch(self, message: PushMessage) -> str:
        if isinstance(message, ComponentVerifyTicket):
            # Tickets are idempotent by themselves (newer wins) and come every 10 minutes.
            return "stored" if self.tickets.accept(message) else "ignored"
        key = inbox_key(message)
        seen = self.store.get_inbox_entry(message.app_id, key)
        if seen is not None and seen.final:
            log.info(
                "duplicate push ignored",
                extra={"component_appid": message.app_id, "info_type": message.info_type},
            )
            return "duplicate"
        outcome, final = self._handle(message)
        now = self.clock()
        self.store.put_inbox_entry(
            InboxEntry(
                component_appid=message.app_id,
                key=key,
                info_type=message.info_type,
                create_time=message.create_time,
                received_at=now,
                outcome=outcome,
                final=final,
                authorizer_appid=getattr(message, "authorizer_appid", None),
                fields=dict(message.fields) if isinstance(message, Notice | UnknownInfo) else None,
                expire_at=datetime.fromtimestamp(now + self.inbox_ttl, UTC),
            )
        )
        return outcome

    def _handle(self, message: PushMessage) -> tuple[str, bool]:
        """The outcome, and whether it is final (a redelivery would change nothing)."""
        if isinstance(message, AuthorizationGranted):
            result = self.flow.on_granted(message)
            return result.outcome.value, result.outcome not in RETRYABLE
        if isinstance(message, Unauthorized):
            return self.flow.on_unauthorized(message).value, True
        if isinstance(message, Notice):
            # Recorded whole in the inbox; a later issue forwards them. Fields may hold
            # codes (a fast registration's auth_code), so they are never logged.
            log.info(
                "notice recorded",
                extra={
                    "component_appid": message.app_id,
                    "info_type": message.info_type,
                    "about": message.description,
                },
            )
            return "recorded", True
        log.warning(
            "push of an unknown InfoType recorded",
            extra={"component_appid": message.app_id, "info_type": message.info_type},
        )
        return "recorded_unknown", True


def inbox_key(message: PushMessage) -> str:
    """Equal for equal messages: a hash of every field of the decrypted push."""
    canonical = json.dumps(dataclasses.asdict(message), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
