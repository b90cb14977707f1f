"""Safe XML for pushes: the encrypted envelope and the typed messages inside it (protocol §2).

Parsing goes through defusedxml with DTDs forbidden, so XXE, entity bombs and external
references are refused before anything is expanded. CDATA and plain text read the same.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

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


def parse_xml(body: bytes | str, max_bytes: int = MAX_XML_BYTES) -> dict[str, str]:
    """Parse a flat ``<xml>`` document into ``{tag: text}``; nested elements keep their text."""
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
    return {child.tag: (child.text or "").strip() for child in root}


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
class UnknownInfo(PushMessage):
    """An InfoType we do not model yet; kept whole so nothing is dropped."""

    fields: dict[str, str] = field(default_factory=dict)


def _required(fields: dict[str, str], name: str) -> str:
    value = fields.get(name)
    if not value:
        raise MalformedXmlError(f"<{name}> is missing or empty")
    return value


def _integer(fields: dict[str, str], name: str) -> int:
    value = _required(fields, name)
    try:
        return int(value)
    except ValueError:
        raise MalformedXmlError(f"<{name}> is not an integer") from None


def parse_message(xml: str, max_bytes: int = MAX_XML_BYTES) -> PushMessage:
    """Turn a decrypted push into its typed message."""
    fields = parse_xml(xml, max_bytes)
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
            pre_auth_code=fields.get("PreAuthCode") or None,
        )
    if info_type == "unauthorized":
        return Unauthorized(
            app_id, create_time, info_type, authorizer_appid=_required(fields, "AuthorizerAppid")
        )
    return UnknownInfo(app_id, create_time, info_type, fields=fields)


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def build_xml(fields: dict[str, str | int]) -> str:
    """Render a flat ``<xml>`` document as WeChat does: strings in CDATA, integers plain."""
    parts = ["<xml>"]
    for tag, value in fields.items():
        text = str(value) if isinstance(value, int) else _cdata(value)
        parts.append(f"<{tag}>{text}</{tag}>")
    parts.append("</xml>")
    return "".join(parts)


def build_envelope(app_id: str, encrypt: str) -> str:
    return build_xml({"AppId": app_id, "Encrypt": encrypt})
