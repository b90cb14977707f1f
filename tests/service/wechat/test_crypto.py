"""WXBizMsgCrypt compatibility: the protocol §1.8 vectors byte for byte, and properties."""

from __future__ import annotations

import base64
import hmac
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.wechat import crypto
from service.wechat.crypto import (
    AppIdMismatchError,
    Base64Error,
    DecryptError,
    IllegalAesKeyError,
    IllegalBufferError,
    MessageCrypto,
    SignatureError,
)

KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
OTHER_KEY = "ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlk0"
APPID = "wx2c2769f8efd9abc2"
OFFICIAL_ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8P"
    "GHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa"
    "+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8"
    "tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9Fy"
    "JvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
)


def raw_aes(key: bytes) -> Cipher[modes.CBC]:
    """Plain AES-256-CBC with IV = key[:16], without the message layout or padding."""
    return Cipher(algorithms.AES(key), modes.CBC(key[:16]))


def official() -> MessageCrypto:
    return MessageCrypto("spamtest", KEY, APPID)


# --- protocol §1.8 vectors -------------------------------------------------------------


def test_official_sample_decrypts_to_the_280_byte_text_message() -> None:
    message = official().decrypt(OFFICIAL_ENCRYPT).message
    assert len(message.encode("utf-8")) == 280
    assert message.startswith("<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>")
    assert "<Content><![CDATA[abcdteT]]></Content>" in message


def test_official_sample_signatures() -> None:
    c = official()
    assert (
        c.msg_signature("1409735669", "1320562132", OFFICIAL_ENCRYPT)
        == "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
    )
    assert c.signature("1409735669", "1320562132") == "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a"
    c.verify_and_decrypt(
        "5d197aaffba7e9b25a30732f161a50dee96bd5fa", "1409735669", "1320562132", OFFICIAL_ENCRYPT
    )


def test_official_sample_carries_the_appid_tail() -> None:
    key = crypto.decode_aes_key(KEY)
    plain = raw_aes(key).decryptor().update(base64.b64decode(OFFICIAL_ENCRYPT))
    plain = crypto.pkcs7_unpad(plain)
    (length,) = struct.unpack(">I", plain[16:20])
    assert plain[20 + length :] == APPID.encode()


def test_deterministic_encrypt_vector_byte_for_byte() -> None:
    c = MessageCrypto(
        "pamtest", KEY, "wxb11529c136998cb6", random_prefix=lambda: b"aaaabbbbccccdddd"
    )
    encrypt = c.encrypt("我是中文abcd123")
    assert encrypt == (
        "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
    )
    assert c.msg_signature("1409304348", "xxxxxx", encrypt) == (
        "82c962d39941aa48552f90ef55aa323dc620cc10"
    )
    assert c.decrypt(encrypt).message == "我是中文abcd123"


# --- properties --------------------------------------------------------------------------

SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SLOW
@given(message=st.text(max_size=16 * 1024))
def test_any_unicode_message_round_trips(message: str) -> None:
    c = MessageCrypto("token", KEY, APPID)
    sealed = c.seal(message, "1700000000", "42")
    assert c.verify_and_decrypt(sealed.msg_signature, "1700000000", "42", sealed.encrypt) == (
        crypto.Decrypted(message, used_previous_key=False, appid=APPID)
    )


def test_a_64_kib_message_round_trips() -> None:
    c = MessageCrypto("token", KEY, APPID)
    message = "界" * (64 * 1024 // 3) + "a"
    assert len(message.encode()) == 64 * 1024
    assert c.decrypt(c.encrypt(message)).message == message


@SLOW
@given(data=st.data(), message=st.text(min_size=1, max_size=300))
def test_any_one_byte_change_to_encrypt_is_rejected(data: st.DataObject, message: str) -> None:
    c = MessageCrypto("token", KEY, APPID)
    sealed = c.seal(message, "1700000000", "42")
    position = data.draw(st.integers(0, len(sealed.encrypt) - 1))
    replacement = data.draw(
        st.characters(codec="ascii").filter(lambda ch: ch != sealed.encrypt[position])
    )
    tampered = sealed.encrypt[:position] + replacement + sealed.encrypt[position + 1 :]
    with pytest.raises(crypto.CryptoError):
        c.verify_and_decrypt(sealed.msg_signature, "1700000000", "42", tampered)


@SLOW
@given(data=st.data())
def test_any_change_to_the_signature_is_rejected(data: st.DataObject) -> None:
    c = MessageCrypto("token", KEY, APPID)
    sealed = c.seal("<xml/>", "1700000000", "42")
    position = data.draw(st.integers(0, len(sealed.msg_signature) - 1))
    replacement = data.draw(st.characters().filter(lambda ch: ch != sealed.msg_signature[position]))
    signature = sealed.msg_signature[:position] + replacement + sealed.msg_signature[position + 1 :]
    with pytest.raises(SignatureError):
        c.verify_and_decrypt(signature, "1700000000", "42", sealed.encrypt)
    with pytest.raises(SignatureError):
        c.verify_signature(signature, "1700000000", "42")


def test_wrong_appid_and_wrong_token_each_have_their_own_error() -> None:
    sender = MessageCrypto("token", KEY, "wx0000000000000001")
    sealed = sender.seal("<xml/>", "1700000000", "42")
    wrong_appid = MessageCrypto("token", KEY, "wx0000000000000002")
    with pytest.raises(AppIdMismatchError) as appid_error:
        wrong_appid.verify_and_decrypt(sealed.msg_signature, "1700000000", "42", sealed.encrypt)
    wrong_token = MessageCrypto("other-token", KEY, "wx0000000000000001")
    with pytest.raises(SignatureError) as token_error:
        wrong_token.verify_and_decrypt(sealed.msg_signature, "1700000000", "42", sealed.encrypt)
    assert appid_error.value.code == -40005
    assert token_error.value.code == -40001


def test_signatures_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(crypto.hmac, "compare_digest", spy)
    c = official()
    with pytest.raises(SignatureError):
        c.verify_msg_signature("0" * 40, "1409735669", "1320562132", OFFICIAL_ENCRYPT)
    with pytest.raises(SignatureError):
        c.verify_signature("0" * 40, "1409735669", "1320562132")
    assert len(calls) == 2


# --- keys ----------------------------------------------------------------------------------


def test_previous_key_is_accepted_and_reported() -> None:
    old = MessageCrypto("token", KEY, APPID)
    rotated = MessageCrypto("token", OTHER_KEY, APPID, previous_encoding_aes_key=KEY)
    encrypt = old.encrypt("hello")
    assert rotated.decrypt(encrypt) == crypto.Decrypted(
        "hello", used_previous_key=True, appid=APPID
    )
    assert rotated.decrypt(rotated.encrypt("hi")) == crypto.Decrypted(
        "hi", used_previous_key=False, appid=APPID
    )


def test_a_key_we_do_not_hold_is_rejected() -> None:
    stranger = MessageCrypto("token", OTHER_KEY, APPID)
    with pytest.raises((IllegalBufferError, AppIdMismatchError)):
        official().decrypt(stranger.encrypt("hello"))


def test_a_second_accepted_appid_is_reported_and_others_still_refused() -> None:
    # The message URL accepts the authorized account's appid too (UNCONFIRMED which).
    account = "wx00000000000000aa"
    by_account = MessageCrypto("token", KEY, account)
    c = MessageCrypto("token", KEY, APPID)
    assert c.decrypt(by_account.encrypt("hi"), also_accept=[account]).appid == account
    assert c.decrypt(c.encrypt("hi"), also_accept=[account]).appid == APPID
    with pytest.raises(AppIdMismatchError):
        c.decrypt(by_account.encrypt("hi"))
    with pytest.raises(AppIdMismatchError):
        c.decrypt(by_account.encrypt("hi"), also_accept=["wx00000000000000bb"])


def test_wrong_appid_under_previous_key_still_reports_appid() -> None:
    sender = MessageCrypto("token", KEY, "wx0000000000000009")
    rotated = MessageCrypto("token", OTHER_KEY, APPID, previous_encoding_aes_key=KEY)
    with pytest.raises(AppIdMismatchError):
        rotated.decrypt(sender.encrypt("hello"))


@pytest.mark.parametrize(
    "key",
    [
        "",
        "short",
        KEY + "A",
        KEY[:-1] + "!",
        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEF界",
    ],
)
def test_illegal_encoding_aes_keys(key: str) -> None:
    with pytest.raises(IllegalAesKeyError):
        MessageCrypto("token", key, APPID)


# --- malformed ciphertext ------------------------------------------------------------------


def _raw_encrypt(plain: bytes) -> str:

    key = crypto.decode_aes_key(KEY)
    return base64.b64encode(raw_aes(key).encryptor().update(plain)).decode()


@pytest.mark.parametrize(
    ("encrypt", "error"),
    [
        ("not base64!", Base64Error),
        ("", DecryptError),
        (base64.b64encode(b"x" * 15).decode(), DecryptError),
        (_raw_encrypt(b"\x00" * 32), IllegalBufferError),  # pad byte 0
        (_raw_encrypt(b"a" * 31 + b"\x21"), IllegalBufferError),  # pad 33 > 32
        (_raw_encrypt(b"a" * 30 + b"\x01\x02"), IllegalBufferError),  # inconsistent pad
        (
            _raw_encrypt(crypto.pkcs7_pad(b"r" * 16 + struct.pack(">I", 999) + b"x")),
            IllegalBufferError,
        ),
        (_raw_encrypt(crypto.pkcs7_pad(b"r" * 10)), IllegalBufferError),
        (
            _raw_encrypt(
                crypto.pkcs7_pad(b"r" * 16 + struct.pack(">I", 2) + b"\xff\xfe" + APPID.encode())
            ),
            IllegalBufferError,
        ),
    ],
)
def test_malformed_ciphertexts_are_rejected(encrypt: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        official().decrypt(encrypt)


def test_errors_never_carry_secrets() -> None:
    c = MessageCrypto("token-secret-value", KEY, APPID)
    sealed = c.seal("hello", "1", "2")
    try:
        c.verify_and_decrypt("0" * 40, "1", "2", sealed.encrypt)
    except SignatureError as exc:
        text = str(exc) + repr(exc)
    assert "token-secret-value" not in text and KEY not in text
    assert KEY not in repr(c) and "token-secret-value" not in repr(c)
