"""Judge a service's answer to a message push, as WeChat does (messages doc §2, §3).

Only an HTTP 200 answer is judged (anything else is a failed try, retried by the caller):

- zero bytes: ``empty``, no reply; the user sees nothing;
- exactly ``success``: ``success``, no reply; the user sees nothing;
- the encrypted reply envelope ``<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>``,
  signed with the component's token and sealed with its key and appid, around a reply
  whose ``ToUserName`` is the user, ``FromUserName`` the account's gh_ id, ``CreateTime``
  an integer and ``MsgType`` one WeChat accepts: ``reply``; the user sees it;
- anything else (plaintext XML, JSON, garbage, a bad signature, the wrong appid, bad
  fields): ``invalid``, with a reason; the user sees "该公众号暂时无法提供服务，请稍后再试".

Reasons are Chinese first, English in brackets, as the release check shows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mock_wechat.crypto import AppIdMismatchError, CryptoError, MessageCrypto, SignatureError
from mock_wechat.wire import XmlRefused, read_xml

REPLY = "reply"
SUCCESS = "success"
EMPTY = "empty"
INVALID = "invalid"
NO_ANSWER = "no_answer"  # every try failed; decided by the deliverer, not here
VALID_OUTCOMES = frozenset({REPLY, SUCCESS, EMPTY})

UNAVAILABLE = "该公众号暂时无法提供服务，请稍后再试"

# Passive reply MsgType -> the element its content lives in (None: none needed).
REPLY_TYPES: Mapping[str, str | None] = {
    "text": "Content",
    "image": "Image",
    "voice": "Voice",
    "video": "Video",
    "music": "Music",
    "news": "Articles",
    "transfer_customer_service": None,  # handed to a human agent: the user sees nothing yet
}
_ENVELOPE = ("MsgSignature", "TimeStamp", "Nonce")
_EXCERPT = 40


@dataclass(frozen=True)
class Verdict:
    outcome: str
    reason: str | None = None
    reply: dict[str, str] | None = None  # the decrypted reply's fields
    reply_xml: str | None = None
    user_sees: str | None = None  # None: nothing is shown

    @staticmethod
    def invalid(reason: str) -> Verdict:
        return Verdict(INVALID, reason=reason, user_sees=UNAVAILABLE)


def _excerpt(body: bytes) -> str:
    text = body[:_EXCERPT].decode("utf-8", "replace")
    return repr(text) + ("…" if len(body) > _EXCERPT else "")


def _not_xml(body: bytes) -> str:
    if body.lstrip()[:1] in (b"{", b"["):
        return f"应答不是XML (the answer is JSON, not XML: {_excerpt(body)})"
    return f"应答无法识别 (the answer is neither empty, 'success' nor XML: {_excerpt(body)})"


def _shown(reply: Mapping[str, str]) -> str | None:
    msg_type = reply["MsgType"]
    if msg_type == "text":
        return reply["Content"]
    if msg_type == "transfer_customer_service":
        return None
    return f"[{msg_type}]"


def reply_problem(reply: Mapping[str, str], openid: str, user_name: str) -> str | None:
    """Why a decrypted passive reply would be refused, or None."""
    to_user, from_user = reply.get("ToUserName", ""), reply.get("FromUserName", "")
    if to_user != openid:
        return f"回复的接收方不正确 (ToUserName must be the user {openid}, got {to_user!r})"
    if from_user != user_name:
        return (
            f"回复的发送方不正确 (FromUserName must be the account {user_name}, got {from_user!r})"
        )
    try:
        int(reply.get("CreateTime", ""))
    except ValueError:
        return "回复的 CreateTime 不是整数 (CreateTime must be an integer)"
    msg_type = reply.get("MsgType", "")
    if msg_type not in REPLY_TYPES:
        allowed = ", ".join(REPLY_TYPES)
        return f"不支持的回复类型 (MsgType must be one of {allowed}, got {msg_type!r})"
    element = REPLY_TYPES[msg_type]
    if element is not None and not (element in reply and (element != "Content" or reply[element])):
        return f"回复缺少 <{element}> (a {msg_type} reply needs a non-empty <{element}>)"
    return None


def judge(body: bytes, crypto: MessageCrypto, openid: str, user_name: str) -> Verdict:
    """The outcome of an HTTP 200 answer ``body`` to a message from ``openid`` to the account
    ``user_name``; ``crypto`` is the component's (its token, key and appid)."""
    if body == b"":
        return Verdict(EMPTY)
    if body == b"success":
        return Verdict(SUCCESS)
    try:
        envelope = read_xml(body)
    except XmlRefused:
        return Verdict.invalid(_not_xml(body))
    if "Encrypt" not in envelope:
        if "MsgType" in envelope:
            return Verdict.invalid(
                "被动回复未加密 (the reply was not encrypted: plaintext XML with MsgType)"
            )
        return Verdict.invalid("应答不是加密回复包 (the answer is XML without <Encrypt>)")
    missing = [name for name in _ENVELOPE if not envelope.get(name)]
    if missing:
        return Verdict.invalid(f"加密回复包不完整 (the encrypted reply has no <{missing[0]}>)")
    encrypt = envelope["Encrypt"]
    try:
        crypto.verify_msg_signature(
            envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"], encrypt
        )
    except SignatureError:
        return Verdict.invalid(
            "回复签名错误 (MsgSignature is not sha1 of the sorted token, TimeStamp, Nonce, Encrypt)"
        )
    try:
        inner = crypto.decrypt(encrypt).message
    except AppIdMismatchError:
        return Verdict.invalid(
            "回复的 AppId 不正确 (the decrypted reply does not end with the component appid)"
        )
    except CryptoError as exc:
        return Verdict.invalid(f"回复解密失败 (cannot decrypt the reply: {exc.reason})")
    try:
        reply = read_xml(inner)
    except XmlRefused:
        return Verdict.invalid("解密后的回复不是XML (the decrypted reply is not XML)")
    problem = reply_problem(reply, openid, user_name)
    if problem is not None:
        return Verdict.invalid(problem)
    return Verdict(REPLY, reply=reply, reply_xml=inner, user_sees=_shown(reply))
