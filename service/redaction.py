"""Masking credentials in log lines, whichever library wrote them.

urllib3 logs the URL of a call it retries, and WeChat's URLs carry ``access_token`` or
``component_access_token``; an exception's text may quote a request body. Every log record
goes through ``redact`` on its way out (``service.jsonlog``): the message, every ``extra``
field and the exception text. What it masks:

- ``name=value`` and ``"name": "value"`` (or ``'name': 'value'``) for every name that holds
  a credential (tokens, tickets, codes, secrets, keys);
- ``<Name>value</Name>`` for the push fields that hold one (the ticket, the codes);
- WeChat's prefixed credentials wherever they stand (``queryauthcode@@@…``, ``ticket@@@…``);
- a ``Bearer`` credential;
- every secret value the service was configured with (``register_secrets``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

MASK = "[redacted]"

# Names whose value is a credential, in URLs, form bodies, JSON and reprs.
_NAMES = (
    "access_token|component_access_token|authorizer_access_token|authorizer_refresh_token"
    "|refresh_token|component_verify_ticket|ticket|pre_auth_code|preauthcode|auth_code"
    "|authorization_code|code|query_auth_code|appsecret|component_appsecret|component_secret"
    "|secret|encoding_aes_key|aes_key|token|api_key|key|password"
)
_NAME_SET = frozenset(_NAMES.split("|"))
_ASSIGNED = re.compile(rf"(?<![A-Za-z0-9_])({_NAMES})=([^&\s\"'<>,;)]+)", re.IGNORECASE)
_QUOTED = re.compile(
    rf"([\"'])({_NAMES})\1(\s*:\s*)([\"'])(.*?)(?<!\\)\4", re.IGNORECASE | re.DOTALL
)
_XML = re.compile(
    r"<(ComponentVerifyTicket|AuthorizationCode|PreAuthCode|auth_code)>(.*?)</\1>", re.DOTALL
)
_PREFIXED = re.compile(r"\b(queryauthcode|preauthcode|refreshtoken|ticket)@@@[^\s\"'&<>,;)\]]+")
_BEARER = re.compile(r"\b(Bearer)\s+[^\s\"',;]+", re.IGNORECASE)

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()


def register_secrets(values: Iterable[str | None]) -> None:
    """Mask these exact values too (the configured app secrets, Tokens, keys, API keys)."""
    global _secrets
    with _lock:
        known = set(_secrets) | {v for v in values if v and len(v) >= 6}
        # Longest first, so a secret containing another is masked whole.
        _secrets = tuple(sorted(known, key=len, reverse=True))


def redact(text: str) -> str:
    # Each pattern only where its telltale character is: most log strings are short words
    # and appids, and a message line must stay cheap.
    if "=" in text:
        text = _ASSIGNED.sub(rf"\1={MASK}", text)
    if '"' in text or "'" in text:
        text = _QUOTED.sub(rf"\1\2\1\3\4{MASK}\4", text)
    if "<" in text:
        text = _XML.sub(rf"<\1>{MASK}</\1>", text)
    if "@@@" in text:
        text = _PREFIXED.sub(rf"\1@@@{MASK}", text)
    if "earer" in text or "EARER" in text:
        text = _BEARER.sub(rf"\1 {MASK}", text)
    # Last: a configured value may also occur inside a name the patterns look for.
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_value(value: Any, name: str = "") -> Any:
    """``redact`` through strings and the strings inside lists, tuples and dicts; the value
    of a field named like a credential (``name``, or a dict's key) is masked whole."""
    if name and name.lower() in _NAME_SET and isinstance(value, str | bytes) and value:
        return MASK
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value
