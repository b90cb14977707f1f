"""What both push URLs check before trusting a push: query, timestamp, size, signatures, key.

The 授权事件接收URL and the 消息与事件接收URL share the envelope and the crypto (protocol §1,
messages doc §2): WeChat signs and encrypts both with the component's token and key. A push
that fails a check is refused with a 4xx and a reason (``PushRejected``) before anything is
stored or forwarded.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from service.wechat.crypto import (
    AppIdMismatchError,
    CryptoError,
    Decrypted,
    MessageCrypto,
    SignatureError,
)
from service.wechat.messages import (
    Envelope,
    MessageError,
    OversizedXmlError,
    parse_envelope,
)


class PushRejected(Exception):
    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class OpenedEnvelope:
    envelope: Envelope
    decrypted: Decrypted


def open_envelope(
    crypto: MessageCrypto,
    query: Mapping[str, str],
    body: bytes,
    now: float,
    max_clock_skew: float,
    max_bytes: int,
    also_accept: Collection[str] = (),
) -> OpenedEnvelope:
    """Check the query and the timestamp, parse the envelope, verify ``msg_signature``
    (and ``signature`` when it is given), and decrypt; the message must end with the
    component's appid or one of ``also_accept``."""
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
    try:
        if query.get("signature"):
            crypto.verify_signature(query["signature"], timestamp, nonce)
        decrypted = crypto.verify_and_decrypt(
            query["msg_signature"], timestamp, nonce, envelope.encrypt, also_accept
        )
    except SignatureError as exc:
        raise PushRejected(403, str(exc)) from None
    except AppIdMismatchError as exc:
        raise PushRejected(400, str(exc)) from None
    except CryptoError as exc:
        raise PushRejected(400, f"cannot decrypt: {exc}") from None
    return OpenedEnvelope(envelope, decrypted)
