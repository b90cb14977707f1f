"""WXBizMsgCrypt-compatible message encryption (protocol §1).

AES-256-CBC with IV = key[:16], PKCS#7 padding to 32-byte blocks, and a plaintext of
``random(16) || uint32_be(len) || msg || appid``. Signatures are SHA-1 over the sorted,
concatenated parts. Error codes follow the official sample's ``ierror`` table.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import string
import struct
from collections.abc import Callable, Collection
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

BLOCK_SIZE = 32  # PKCS#7 padding's block (WXBizMsgCrypt), not AES's
AES_BLOCK = 16
RANDOM_PREFIX_LEN = 16
_ALPHANUMERIC = string.ascii_letters + string.digits


class CryptoError(ValueError):
    """Base error; ``code`` is the official WXBizMsgCrypt error code. Never carries secrets."""

    code = 0
    reason = "crypto error"

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail
        super().__init__(f"{self.reason} ({self.code})" + (f": {detail}" if detail else ""))


class SignatureError(CryptoError):
    code = -40001
    reason = "signature mismatch"


class IllegalAesKeyError(CryptoError):
    code = -40004
    reason = "EncodingAESKey is not 43 base64 characters decoding to 32 bytes"


class AppIdMismatchError(CryptoError):
    code = -40005
    reason = "AppId in the decrypted message does not match"


class DecryptError(CryptoError):
    code = -40007
    reason = "AES decryption failed"


class IllegalBufferError(CryptoError):
    code = -40008
    reason = "decrypted buffer is malformed"


class Base64Error(CryptoError):
    code = -40010
    reason = "Encrypt is not valid base64"


def sha1_signature(*parts: str) -> str:
    """SHA-1 hex of the lexicographically sorted, concatenated parts."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def msg_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    return sha1_signature(token, timestamp, nonce, encrypt)


def plain_signature(token: str, timestamp: str, nonce: str) -> str:
    return sha1_signature(token, timestamp, nonce)


def signatures_equal(expected: str, given: str) -> bool:
    """Constant-time comparison, so a caller cannot learn a signature byte by byte."""
    return hmac.compare_digest(expected.encode("ascii"), given.encode("ascii", "replace"))


def decode_aes_key(encoding_aes_key: str) -> bytes:
    if len(encoding_aes_key) != 43 or not encoding_aes_key.isascii():
        raise IllegalAesKeyError()
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error:
        raise IllegalAesKeyError() from None
    if len(key) != 32:
        raise IllegalAesKeyError()
    return key


def random_alphanumeric_prefix() -> bytes:
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(RANDOM_PREFIX_LEN)).encode()


def pkcs7_pad(data: bytes) -> bytes:
    n = BLOCK_SIZE - len(data) % BLOCK_SIZE
    return data + bytes([n]) * n


def pkcs7_unpad(data: bytes) -> bytes:
    if not data:
        raise IllegalBufferError("empty plaintext")
    n = data[-1]
    if not 1 <= n <= BLOCK_SIZE or data[-n:] != bytes([n]) * n:
        raise IllegalBufferError("bad padding")
    return data[:-n]


def _cbc(key: bytes) -> Cipher[modes.CBC]:
    return Cipher(algorithms.AES(key), modes.CBC(key[:16]))


def _run(context: CipherContext, data: bytes) -> bytes:
    return context.update(data) + context.finalize()


def encrypt_with_key(key: bytes, msg: str, appid: str, prefix: bytes) -> str:
    if len(prefix) != RANDOM_PREFIX_LEN:
        raise ValueError("the random prefix must be 16 bytes")
    body = msg.encode("utf-8")
    plain = prefix + struct.pack(">I", len(body)) + body + appid.encode("ascii")
    return base64.b64encode(_run(_cbc(key).encryptor(), pkcs7_pad(plain))).decode("ascii")


def decrypt_with_key(
    key: bytes, encrypt: str, appid: str, also_accept: Collection[str] = ()
) -> tuple[str, str]:
    """The message, and the trailing appid: ``appid`` or one of ``also_accept``."""
    try:
        raw = base64.b64decode(encrypt, validate=True)
    except (binascii.Error, ValueError):
        raise Base64Error() from None
    if not raw or len(raw) % AES_BLOCK:
        raise DecryptError("ciphertext length is not a multiple of 16")
    plain = pkcs7_unpad(_run(_cbc(key).decryptor(), raw))
    if len(plain) < RANDOM_PREFIX_LEN + 4:
        raise IllegalBufferError("too short")
    (length,) = struct.unpack(">I", plain[RANDOM_PREFIX_LEN : RANDOM_PREFIX_LEN + 4])
    start = RANDOM_PREFIX_LEN + 4
    if start + length > len(plain):
        raise IllegalBufferError("length field exceeds the buffer")
    body, tail = plain[start : start + length], plain[start + length :]
    sender = next(
        (a for a in (appid, *also_accept) if hmac.compare_digest(tail, a.encode("ascii"))), None
    )
    if sender is None:
        raise AppIdMismatchError()
    try:
        return body.decode("utf-8"), sender
    except UnicodeDecodeError:
        raise IllegalBufferError("message is not UTF-8") from None


@dataclass(frozen=True)
class Decrypted:
    message: str
    used_previous_key: bool
    appid: str  # the appid the message ended with


@dataclass(frozen=True)
class SignedEnvelope:
    """What goes on the wire: the ``Encrypt`` text and the query parameters that sign it."""

    encrypt: str
    timestamp: str
    nonce: str
    msg_signature: str
    signature: str


class MessageCrypto:
    """One party's crypto: a component's token, EncodingAESKey(s) and appid."""

    def __init__(
        self,
        token: str,
        encoding_aes_key: str,
        appid: str,
        previous_encoding_aes_key: str | None = None,
        random_prefix: Callable[[], bytes] = random_alphanumeric_prefix,
    ) -> None:
        self._token = token
        self._key = decode_aes_key(encoding_aes_key)
        self._previous_key = (
            decode_aes_key(previous_encoding_aes_key) if previous_encoding_aes_key else None
        )
        self.appid = appid
        self._random_prefix = random_prefix

    def __repr__(self) -> str:
        return f"MessageCrypto(appid={self.appid!r})"

    def encrypt(self, msg: str, use_previous_key: bool = False) -> str:
        """Encrypt with the current key, or the previous one: a reply goes out under the
        key its message came in with (protocol §1.1)."""
        key = self._previous_key if use_previous_key and self._previous_key else self._key
        return encrypt_with_key(key, msg, self.appid, self._random_prefix())

    def decrypt(self, encrypt: str, also_accept: Collection[str] = ()) -> Decrypted:
        """Decrypt with the current key, then the previous one (protocol §1.1).

        The message must end with our appid or one of ``also_accept``.
        """
        try:
            message, sender = decrypt_with_key(self._key, encrypt, self.appid, also_accept)
            return Decrypted(message, False, sender)
        except (Base64Error, DecryptError):
            raise
        except CryptoError as current_error:
            if self._previous_key is None:
                raise
            try:
                message, sender = decrypt_with_key(
                    self._previous_key, encrypt, self.appid, also_accept
                )
            except AppIdMismatchError:
                raise
            except CryptoError:
                raise current_error from None
            return Decrypted(message, True, sender)

    def msg_signature(self, timestamp: str, nonce: str, encrypt: str) -> str:
        return msg_signature(self._token, timestamp, nonce, encrypt)

    def signature(self, timestamp: str, nonce: str) -> str:
        return plain_signature(self._token, timestamp, nonce)

    def verify_msg_signature(self, given: str, timestamp: str, nonce: str, encrypt: str) -> None:
        if not signatures_equal(self.msg_signature(timestamp, nonce, encrypt), given):
            raise SignatureError("msg_signature")

    def verify_signature(self, given: str, timestamp: str, nonce: str) -> None:
        if not signatures_equal(self.signature(timestamp, nonce), given):
            raise SignatureError("signature")

    def verify_and_decrypt(
        self,
        msg_signature: str,
        timestamp: str,
        nonce: str,
        encrypt: str,
        also_accept: Collection[str] = (),
    ) -> Decrypted:
        """What a receiver does: check msg_signature first, then decrypt (CBC is malleable)."""
        self.verify_msg_signature(msg_signature, timestamp, nonce, encrypt)
        return self.decrypt(encrypt, also_accept)

    def seal(
        self, msg: str, timestamp: str, nonce: str, use_previous_key: bool = False
    ) -> SignedEnvelope:
        """What a sender does: encrypt and sign, as WeChat does for a push (protocol §1.5),
        and the message URL for a passive reply."""
        encrypt = self.encrypt(msg, use_previous_key)
        return SignedEnvelope(
            encrypt=encrypt,
            timestamp=timestamp,
            nonce=nonce,
            msg_signature=self.msg_signature(timestamp, nonce, encrypt),
            signature=self.signature(timestamp, nonce),
        )
