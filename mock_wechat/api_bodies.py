"""WeChat API request bodies: raw JSON in, fields read the way WeChat reads them.

Errors are WeChat's own (44002 empty body, 47001 bad JSON or a field of the wrong type),
raised as ``MockApiError`` so the API layer answers them like any business error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mock_wechat import errcodes as ec
from mock_wechat.errcodes import MockApiError


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object in a request body, whatever the Content-Type said."""
    if not raw.strip():
        raise MockApiError(ec.EMPTY_POST_DATA)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise MockApiError(ec.DATA_FORMAT_ERROR) from None
    if not isinstance(data, dict):
        raise MockApiError(ec.DATA_FORMAT_ERROR)
    return data


def text_field(body: Mapping[str, Any], name: str) -> str | None:
    """A string field; absent, null and "" all count as missing."""
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MockApiError(ec.DATA_FORMAT_ERROR)
    return value


def appid_in(raw: bytes) -> str | None:
    """Best-effort component_appid of a request, for the call log only."""
    try:
        value = parse_body(raw).get("component_appid")
    except MockApiError:
        return None
    return value if isinstance(value, str) and value else None
