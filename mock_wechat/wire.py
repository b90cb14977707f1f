"""The XML WeChat puts on the wire, written and read by the mock itself.

WeChat writes flat ``<xml>`` documents: string values in CDATA, integers bare (protocol
§2, messages doc §4.3). The mock writes its pushes and users' messages that way, and reads
what a service answers with defusedxml, DTDs, entities and external references refused:
the service's answer is untrusted input to the mock as much as WeChat's push is to it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

# The most of an answer the mock reads and parses; a longer one is refused as invalid.
MAX_XML_BYTES = 256 * 1024


class XmlRefused(ValueError):
    """An answer the mock cannot read as a flat ``<xml>`` document."""


def _cdata(text: str) -> str:
    # A literal "]]>" ends one CDATA section and the rest goes on in the next.
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def to_xml(fields: Mapping[str, str | int]) -> str:
    """``<xml>`` with one element per field, in order: strings in CDATA, integers bare."""
    body = "".join(
        f"<{tag}>{value if isinstance(value, int) else _cdata(value)}</{tag}>"
        for tag, value in fields.items()
    )
    return f"<xml>{body}</xml>"


def push_envelope(component_appid: str, encrypt: str) -> str:
    """The body of a push to the 授权事件接收URL (protocol §1.5)."""
    return to_xml({"AppId": component_appid, "Encrypt": encrypt})


def message_envelope(user_name: str, encrypt: str) -> str:
    """The body of a push to the 消息与事件接收URL (messages doc §2)."""
    return to_xml({"ToUserName": user_name, "Encrypt": encrypt})


def read_xml(body: bytes | str, max_bytes: int = MAX_XML_BYTES) -> dict[str, str]:
    """A flat ``<xml>`` document as ``{tag: text}`` (CDATA or not, stripped; an element with
    children reads as its own text, usually ""). Raises ``XmlRefused``."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    if len(raw) > max_bytes:
        raise XmlRefused(f"{len(raw)} bytes, more than {max_bytes}")
    try:
        root = SafeET.fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise XmlRefused(f"unsafe XML refused ({type(exc).__name__})") from None
    except ET.ParseError as exc:
        raise XmlRefused(f"not well-formed: {exc}") from None
    if root.tag != "xml":
        raise XmlRefused(f"the root is <{root.tag}>, not <xml>")
    return {child.tag: (child.text or "").strip() for child in root}
