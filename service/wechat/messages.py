"""Safe XML for pushes: the encrypted envelope and the typed messages inside it.

Two URLs receive pushes: the 授权事件接收URL gets the platform's notices (protocol §2,
``parse_message``); the 消息与事件接收URL gets the authorized accounts' messages and events
(messages doc §2, §6, ``parse_account_message``), and answers with an encrypted passive
reply (``build_reply_envelope``).

Parsing goes through defusedxml with DTDs forbidden, so XXE, entity bombs and external
references are refused before anything is expanded. CDATA and plain text read the same.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

MAX_XML_BYTES = 256 * 1024


class MessageError(ValueError):
    """The push body or the decrypted message is not something we accept."""


class OversizedXmlError(MessageError):
    pass


class UnsafeXmlError(MessageError):
    pass


class MalformedXmlError(MessageError):
    pass


def _parse_root(body: bytes | str, max_bytes: int) -> ET.Element:
    raw = body.encode("utf-8") if isinstance(body, str) else body
    if len(raw) > max_bytes:
        raise OversizedXmlError(f"XML body is {len(raw)} bytes; the limit is {max_bytes}")
    try:
        root = SafeET.fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise UnsafeXmlError(
            f"refused unsafe XML ({type(exc).__name__}): DTDs, entities and external "
            "references are not allowed"
        ) from None
    except ET.ParseError as exc:
        raise MalformedXmlError(f"XML is not well-formed: {exc}") from None
    if root.tag != "xml":
        raise MalformedXmlError(f"root element is <{root.tag}>, expected <xml>")
    return root


def parse_xml(body: bytes | str, max_bytes: int = MAX_XML_BYTES) -> dict[str, str]:
    """Parse a flat ``<xml>`` document into ``{tag: text}``; nested elements keep their text."""
    return {child.tag: (child.text or "").strip() for child in _parse_root(body, max_bytes)}


def parse_xml_tree(body: bytes | str, max_bytes: int = MAX_XML_BYTES) -> dict[str, Any]:
    """Parse an ``<xml>`` document keeping its nesting: an element with children becomes a
    dict, and a tag repeated among siblings (``<item>``) a list."""
    return _element_fields(_parse_root(body, max_bytes))


def _element_fields(element: ET.Element) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for child in element:
        value: Any = _element_fields(child) if len(child) else (child.text or "").strip()
        if child.tag not in fields:
            fields[child.tag] = value
        elif isinstance(fields[child.tag], list):
            fields[child.tag].append(value)
        else:
            fields[child.tag] = [fields[child.tag], value]
    return fields


@dataclass(frozen=True)
class Envelope:
    """The outer, encrypted push body (protocol §1.5)."""

    encrypt: str
    app_id: str | None
    to_user_name: str | None


def parse_envelope(body: bytes | str, max_bytes: int = MAX_XML_BYTES) -> Envelope:
    fields = parse_xml(body, max_bytes)
    encrypt = fields.get("Encrypt")
    if not encrypt:
        raise MalformedXmlError("the envelope has no <Encrypt>")
    return Envelope(
        encrypt=encrypt, app_id=fields.get("AppId"), to_user_name=fields.get("ToUserName")
    )


@dataclass(frozen=True)
class PushMessage:
    """Fields common to every message pushed to the 授权事件接收URL."""

    app_id: str
    create_time: int
    info_type: str


@dataclass(frozen=True)
class ComponentVerifyTicket(PushMessage):
    ticket: str


@dataclass(frozen=True)
class AuthorizationGranted(PushMessage):
    """``authorized`` or ``updateauthorized``: both carry a fresh authorization code."""

    authorizer_appid: str
    authorization_code: str
    authorization_code_expired_time: int
    pre_auth_code: str | None


@dataclass(frozen=True)
class Authorized(AuthorizationGranted):
    pass


@dataclass(frozen=True)
class UpdateAuthorized(AuthorizationGranted):
    pass


@dataclass(frozen=True)
class Unauthorized(PushMessage):
    authorizer_appid: str


@dataclass(frozen=True)
class Notice(PushMessage):
    """A notice the gateway recognises but does not act on (yet): kept whole."""

    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def description(self) -> str:
        return KNOWN_NOTICES[self.info_type]


@dataclass(frozen=True)
class UnknownInfo(PushMessage):
    """An InfoType we do not know; kept whole so nothing is dropped."""

    fields: dict[str, Any] = field(default_factory=dict)


# InfoTypes WeChat sends to the 授权事件接收URL besides the ticket and the three
# authorization events (protocol §2.3; names as the SDKs and the newer documents list them).
KNOWN_NOTICES: Mapping[str, str] = {
    "notify_third_fasteregister": "快速注册小程序的结果 (fast-registered mini program)",
    "notify_third_fastregisterbetaapp": "创建试用小程序的结果 (trial mini program created)",
    "notify_third_fastverifybetaapp": "试用小程序快速认证的结果 (trial mini program verified)",
    "notify_3rd_wxa_auth": "小程序微信认证的进度 (mini program WeChat verification)",
    "notify_3rd_wxa_wxverify": "小程序认证年审或即将过期 (verification renewal due)",
    "notify_apply_icpfiling_result": "小程序备案审核结果 (ICP filing result)",
    "notify_icpfiling_verify_result": "备案管理员人脸核身结果 (ICP filing face check)",
    "wxa_nickname_audit": "小程序名称审核结果 (mini program name audit)",
}


def _required(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value:
        raise MalformedXmlError(f"<{name}> is missing or empty")
    return value


def _optional(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    return value if isinstance(value, str) and value else None


def _integer(fields: Mapping[str, Any], name: str) -> int:
    value = _required(fields, name)
    try:
        return int(value)
    except ValueError:
        raise MalformedXmlError(f"<{name}> is not an integer") from None


def parse_message(xml: str, max_bytes: int = MAX_XML_BYTES) -> PushMessage:
    """Turn a decrypted push into its typed message."""
    fields = parse_xml_tree(xml, max_bytes)
    app_id = _required(fields, "AppId")
    create_time = _integer(fields, "CreateTime")
    info_type = _required(fields, "InfoType")
    if info_type == "component_verify_ticket":
        return ComponentVerifyTicket(
            app_id, create_time, info_type, ticket=_required(fields, "ComponentVerifyTicket")
        )
    if info_type in ("authorized", "updateauthorized"):
        kind = Authorized if info_type == "authorized" else UpdateAuthorized
        return kind(
            app_id,
            create_time,
            info_type,
            authorizer_appid=_required(fields, "AuthorizerAppid"),
            authorization_code=_required(fields, "AuthorizationCode"),
            authorization_code_expired_time=_integer(fields, "AuthorizationCodeExpiredTime"),
            pre_auth_code=_optional(fields, "PreAuthCode"),
        )
    if info_type == "unauthorized":
        return Unauthorized(
            app_id, create_time, info_type, authorizer_appid=_required(fields, "AuthorizerAppid")
        )
    if info_type in KNOWN_NOTICES:
        return Notice(app_id, create_time, info_type, fields=fields)
    return UnknownInfo(app_id, create_time, info_type, fields=fields)


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def xml_elements(fields: Mapping[str, str | int]) -> str:
    """Elements as WeChat writes them: strings in CDATA, integers plain."""
    return "".join(
        f"<{tag}>{str(value) if isinstance(value, int) else _cdata(value)}</{tag}>"
        for tag, value in fields.items()
    )


def build_xml(fields: Mapping[str, str | int]) -> str:
    """Render a flat ``<xml>`` document as WeChat does."""
    return f"<xml>{xml_elements(fields)}</xml>"


def build_envelope(app_id: str, encrypt: str) -> str:
    return build_xml({"AppId": app_id, "Encrypt": encrypt})


# ----- the 消息与事件接收URL ---------------------------------------------------------------


@dataclass(frozen=True)
class AccountMessage:
    """A user's message, or an event, pushed for one authorized account (messages doc §4.3).

    ``fields`` holds every element, nested ones as dicts; the common ones have properties.
    """

    to_user_name: str  # the account's gh_ id
    from_user_name: str  # the user's openid (a system one for audit events)
    create_time: int
    msg_type: str
    fields: Mapping[str, Any]

    @property
    def event(self) -> str | None:
        return _optional(self.fields, "Event") if self.msg_type == "event" else None

    @property
    def msg_id(self) -> str | None:
        return _optional(self.fields, "MsgId")

    @property
    def content(self) -> str | None:
        return _optional(self.fields, "Content")

    @property
    def dedup_key(self) -> str:
        """What WeChat's retries of this message share: ``MsgId``, else for events the
        sender, ``CreateTime`` and ``Event`` (messages doc §3). It holds the openid."""
        if self.msg_id:
            return f"msg:{self.msg_id}"
        kind = self.event or self.msg_type
        return f"event:{self.from_user_name}:{self.create_time}:{kind}"


def parse_account_message(xml: str, max_bytes: int = MAX_XML_BYTES) -> AccountMessage:
    fields = parse_xml_tree(xml, max_bytes)
    message = AccountMessage(
        to_user_name=_required(fields, "ToUserName"),
        from_user_name=_required(fields, "FromUserName"),
        create_time=_integer(fields, "CreateTime"),
        msg_type=_required(fields, "MsgType"),
        fields=fields,
    )
    if message.msg_type == "event" and message.event is None:
        raise MalformedXmlError("<Event> is missing or empty in an event")
    return message


def text_reply(message: AccountMessage, content: str, create_time: int) -> str:
    """A passive text reply to ``message``: To and From swapped (messages doc §4.3)."""
    return build_xml(
        {
            "ToUserName": message.from_user_name,
            "FromUserName": message.to_user_name,
            "CreateTime": create_time,
            "MsgType": "text",
            "Content": content,
        }
    )


def build_reply_envelope(encrypt: str, msg_signature: str, timestamp: str, nonce: str) -> str:
    """The encrypted passive reply, as every official sample writes it (messages doc §2)."""
    return build_xml(
        {
            "Encrypt": encrypt,
            "MsgSignature": msg_signature,
            "TimeStamp": int(timestamp),
            "Nonce": nonce,
        }
    )
