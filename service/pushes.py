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
from service.store.records import AuthorizationStore, InboxEntry
from service.tickets import TicketKeeper
from service.wechat.crypto import AppIdMismatchError, CryptoError, MessageCrypto, SignatureError
from service.wechat.messages import (
    AuthorizationGranted,
    ComponentVerifyTicket,
    MessageError,
    OversizedXmlError,
    PushMessage,
    Unauthorized,
    UnknownInfo,
    parse_envelope,
    parse_message,
)

log = logging.getLogger(__name__)

INBOX_TTL = 30 * 86400  # Firestore's TTL policy deletes inbox entries after this
# Outcomes a redelivery of the same push should try again.
RETRYABLE = (Outcome.ERROR, Outcome.IN_PROGRESS)


class PushRejected(Exception):
    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)


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
    missing = [name for name in ("msg_signature", "timestamp", "nonce") if not query.get(name)]
    if missing:
        raise PushRejected(400, f"missing query parameter(s): {', '.join(missing)}")
    encrypt_type = query.get("encrypt_type", "aes")
    if encrypt_type != "aes":
        raise PushRejected(400, f"encrypt_type must be 'aes', got {encrypt_type!r}")
    timestamp, nonce = query["timestamp"], query["nonce"]
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise PushRejected(400, "timestamp is not an integer") from None
    if abs(now - sent_at) > max_clock_skew:
        raise PushRejected(400, f"timestamp is more than {max_clock_skew:.0f}s from our clock")
    try:
        envelope = parse_envelope(body, max_bytes)
    except OversizedXmlError as exc:
        raise PushRejected(413, str(exc)) from None
    except MessageError as exc:
        raise PushRejected(400, f"bad envelope: {exc}") from None
    if envelope.app_id is not None and envelope.app_id != crypto.appid:
        raise PushRejected(400, "envelope AppId does not match this component")
    try:
        if query.get("signature"):
            crypto.verify_signature(query["signature"], timestamp, nonce)
        decrypted = crypto.verify_and_decrypt(
            query["msg_signature"], timestamp, nonce, envelope.encrypt
        )
    except SignatureError as exc:
        raise PushRejected(403, str(exc)) from None
    except AppIdMismatchError as exc:
        raise PushRejected(400, str(exc)) from None
    except CryptoError as exc:
        raise PushRejected(400, f"cannot decrypt: {exc}") from None
    try:
        message = parse_message(decrypted.message, max_bytes)
    except MessageError as exc:
        raise PushRejected(400, f"bad message: {exc}") from None
    if message.app_id != crypto.appid:
        raise PushRejected(400, "message AppId does not match this component")
    return Opened(message, decrypted.used_previous_key)


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
                fields=dict(message.fields) if isinstance(message, UnknownInfo) else None,
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
        log.info(
            "push of an unknown InfoType recorded",
            extra={"component_appid": message.app_id, "info_type": message.info_type},
        )
        return "recorded", True


def inbox_key(message: PushMessage) -> str:
    """Equal for equal messages: a hash of every field of the decrypted push."""
    canonical = json.dumps(dataclasses.asdict(message), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
