"""Pushes to the 授权事件接收URL: check, open and dispatch them (protocol §1.5, §2).

Every check happens before anything is stored: a push that fails one is refused with a
4xx and a reason, and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from service.tickets import TicketKeeper
from service.wechat.crypto import AppIdMismatchError, CryptoError, MessageCrypto, SignatureError
from service.wechat.messages import (
    ComponentVerifyTicket,
    MessageError,
    OversizedXmlError,
    PushMessage,
    parse_envelope,
    parse_message,
)

log = logging.getLogger(__name__)


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
    """Hands each opened push to the part of the core that owns it."""

    def __init__(self, tickets: TicketKeeper) -> None:
        self.tickets = tickets

    def dispatch(self, message: PushMessage) -> str:
        if isinstance(message, ComponentVerifyTicket):
            return "stored" if self.tickets.accept(message) else "ignored"
        log.info(
            "push acknowledged",
            extra={"component_appid": message.app_id, "info_type": message.info_type},
        )
        return "acknowledged"
