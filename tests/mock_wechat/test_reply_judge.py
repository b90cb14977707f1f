"""Judging a service's HTTP 200 answer to a message push: every outcome, every refusal."""

from __future__ import annotations

from typing import Any

import pytest

from mock_wechat.reply_judge import EMPTY, INVALID, REPLY, SUCCESS, UNAVAILABLE, judge
from service.wechat.crypto import MessageCrypto
from service.wechat.messages import build_xml
from tests.mock_wechat.helpers import AES_KEY, APPID, OTHER, TOKEN

OPENID = "oUser_7fQk2x9LmNpQrStUvWxYz01"
GH = "gh_3c884a361561"
CRYPTO = MessageCrypto(TOKEN, AES_KEY, APPID)
# Another key, and a fixed prefix so the garbage it decrypts to is always the same.
WRONG_KEY = MessageCrypto(TOKEN, AES_KEY[::-1], APPID, random_prefix=lambda: b"0" * 16)


def reply_fields(**overrides: Any) -> dict[str, str | int]:
    fields: dict[str, str | int] = {
        "ToUserName": OPENID,
        "FromUserName": GH,
        "CreateTime": 1_700_000_000,
        "MsgType": "text",
        "Content": "TESTCOMPONENT_MSG_TYPE_TEXT_callback",
    }
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}


def sealed(
    fields: dict[str, str | int],
    crypto: MessageCrypto = CRYPTO,
    **envelope_overrides: str | int,
) -> bytes:
    """The encrypted reply envelope around ``fields``, as a service builds it."""
    seal = crypto.seal(build_xml(fields), "1700000000", "1320562132")
    envelope: dict[str, str | int] = {
        "Encrypt": seal.encrypt,
        "MsgSignature": seal.msg_signature,
        "TimeStamp": 1_700_000_000,
        "Nonce": "1320562132",
    }
    envelope.update(envelope_overrides)
    return build_xml(envelope).encode()


def verdict_of(body: bytes) -> Any:
    return judge(body, CRYPTO, OPENID, GH)


def test_empty_and_success_are_no_reply() -> None:
    empty, success = verdict_of(b""), verdict_of(b"success")
    assert (empty.outcome, empty.reason, empty.user_sees) == (EMPTY, None, None)
    assert (success.outcome, success.reason, success.user_sees) == (SUCCESS, None, None)


def test_an_encrypted_text_reply_is_shown_to_the_user() -> None:
    verdict = verdict_of(sealed(reply_fields()))
    assert verdict.outcome == REPLY and verdict.reason is None
    assert verdict.user_sees == "TESTCOMPONENT_MSG_TYPE_TEXT_callback"
    assert verdict.reply["MsgType"] == "text" and verdict.reply["ToUserName"] == OPENID
    assert "<Content><![CDATA[TESTCOMPONENT_MSG_TYPE_TEXT_callback]]>" in verdict.reply_xml


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        (reply_fields(MsgType="image", Content=None, Image="m"), "[image]"),
        (reply_fields(MsgType="news", Content=None, ArticleCount=1, Articles="a"), "[news]"),
        (reply_fields(MsgType="transfer_customer_service", Content=None), None),
    ],
)
def test_other_reply_types(fields: dict[str, str | int], shown: str | None) -> None:
    verdict = verdict_of(sealed(fields))
    assert (verdict.outcome, verdict.user_sees) == (REPLY, shown)


def test_a_plaintext_reply_is_invalid_because_it_is_not_encrypted() -> None:
    verdict = verdict_of(build_xml(reply_fields()).encode())
    assert verdict.outcome == INVALID and verdict.user_sees == UNAVAILABLE
    assert verdict.reason.startswith("被动回复未加密") and "not encrypted" in verdict.reason


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"errcode":0}', "JSON"),
        (b"ok", "neither empty"),
        (b"success\n", "neither empty"),
        (b" ", "neither empty"),
        (b"<xml><Content>x</Content></xml>", "without <Encrypt>"),
        (sealed(reply_fields(), MsgSignature="0" * 40), "MsgSignature"),
        (sealed(reply_fields(), Nonce="999"), "MsgSignature"),
        (sealed(reply_fields(), crypto=MessageCrypto(TOKEN, AES_KEY, OTHER)), "appid"),
        (sealed(reply_fields(), crypto=WRONG_KEY), "decrypt"),
        (
            sealed(reply_fields(), crypto=MessageCrypto("other-token", AES_KEY, APPID)),
            "MsgSignature",
        ),
        (sealed(reply_fields(ToUserName="oSomeoneElse")), "ToUserName"),
        (sealed(reply_fields(FromUserName="gh_000000000000")), "FromUserName"),
        (sealed(reply_fields(CreateTime="soon")), "CreateTime"),
        (sealed(reply_fields(MsgType="fax")), "MsgType"),
        (sealed(reply_fields(Content="")), "Content"),
        (sealed(reply_fields(MsgType="image", Content=None)), "Image"),
    ],
)
def test_anything_else_is_invalid_with_a_reason(body: bytes, words: str) -> None:
    verdict = verdict_of(body)
    assert verdict.outcome == INVALID and verdict.user_sees == UNAVAILABLE
    assert words in verdict.reason, verdict.reason
    assert verdict.reply is None


def test_an_envelope_missing_a_part_is_invalid() -> None:
    body = sealed(reply_fields()).replace(b"<Nonce><![CDATA[1320562132]]></Nonce>", b"")
    assert "no <Nonce>" in verdict_of(body).reason
