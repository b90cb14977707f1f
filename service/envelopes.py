"""What a subscriber gets: one JSON envelope for a message and for an events-URL notice.

::

    {"component_appid": "wx…", "authorizer_appid": "wx…" | null,
     "account_type": "official_account" | null,
     "source": "messages" | "events",
     "msg_type": "text" | null, "event": "CLICK" | null, "info_type": "authorized" | null,
     "fields": {…every element of the decrypted XML, nested ones as objects…},
     "xml": "<xml>…</xml>",
     "received_at": "2026-12-01T12:00:00.123456+00:00",
     "dedup_key": "…",
     "result": {…} | null}

``dedup_key`` is the same for WeChat's retries of one push: a hash of ``MsgId`` (or of
sender, ``CreateTime`` and ``Event``) for messages, of the whole push for notices.
``result``: for the authorization notices the gateway applies itself (``authorized``,
``updateauthorized``, ``unauthorized``), the authorizer as it stands after applying them:
its status, account type and permission sets, never a token. Credentials in a notice (an
authorization code, a fast registration's ``auth_code``) are removed from ``fields`` and
``xml``; the ticket push is never delivered at all.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from service.store.records import AuthorizerRecord
from service.wechat.accounts import permission_set_name
from service.wechat.messages import AccountMessage, PushMessage, parse_xml_tree

# Elements of a notice that hold a credential: never delivered.
CREDENTIAL_ELEMENTS = ("AuthorizationCode", "PreAuthCode", "auth_code", "ComponentVerifyTicket")
_CREDENTIAL_XML = re.compile(r"<(" + "|".join(CREDENTIAL_ELEMENTS) + r")>.*?</\1>\s*", re.DOTALL)
ATTRIBUTES = ("component_appid", "authorizer_appid", "source", "msg_type", "event", "info_type")


def message_dedup_key(component_appid: str, authorizer_appid: str, message: AccountMessage) -> str:
    """The same for WeChat's retries of one message; no openid readable in it."""
    key = "\n".join((component_appid, authorizer_appid, message.dedup_key))
    return hashlib.sha256(key.encode()).hexdigest()


def message_envelope(
    component_appid: str,
    authorizer_appid: str,
    account_type: str | None,
    message: AccountMessage,
    xml: str,
    received_at: float,
) -> dict[str, Any]:
    return {
        "component_appid": component_appid,
        "authorizer_appid": authorizer_appid,
        "account_type": account_type,
        "source": "messages",
        "msg_type": message.msg_type,
        "event": message.event,
        "info_type": None,
        "fields": dict(message.fields),
        "xml": xml,
        "received_at": _iso(received_at),
        "dedup_key": message_dedup_key(component_appid, authorizer_appid, message),
        "result": None,
    }


def notice_envelope(
    message: PushMessage,
    xml: str,
    received_at: float,
    dedup_key: str,
    authorizer: AuthorizerRecord | None,
) -> dict[str, Any]:
    fields = _without_credentials(parse_xml_tree(xml))
    applied = message.info_type in ("authorized", "updateauthorized", "unauthorized")
    return {
        "component_appid": message.app_id,
        "authorizer_appid": _authorizer_appid(message, fields),
        "account_type": authorizer.account_type if authorizer is not None else None,
        "source": "events",
        "msg_type": None,
        "event": None,
        "info_type": message.info_type,
        "fields": fields,
        "xml": _CREDENTIAL_XML.sub("", xml),
        "received_at": _iso(received_at),
        "dedup_key": dedup_key,
        "result": _result(authorizer) if applied and authorizer is not None else None,
    }


def attributes(envelope: Mapping[str, Any]) -> dict[str, str]:
    """Pub/Sub attributes, for subscriptions' filters: the routing fields that are set."""
    return {name: str(envelope[name]) for name in ATTRIBUTES if envelope.get(name)}


def encode(envelope: Mapping[str, Any]) -> bytes:
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def _result(record: AuthorizerRecord) -> dict[str, Any]:
    return {
        "status": record.status,
        "account_type": record.account_type,
        "nick_name": record.nick_name,
        "func_info": list(record.func_info),
        "permission_sets": [{"id": i, "name": permission_set_name(i)} for i in record.func_info],
    }


def _authorizer_appid(message: PushMessage, fields: Mapping[str, Any]) -> str | None:
    named = getattr(message, "authorizer_appid", None)
    if isinstance(named, str):
        return named
    # Notices name the mini program in their own words.
    for key in ("authorizer_appid", "appid"):
        value = fields.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _without_credentials(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        key: _without_credentials(value) if isinstance(value, dict) else value
        for key, value in fields.items()
        if key not in CREDENTIAL_ELEMENTS
    }


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()
