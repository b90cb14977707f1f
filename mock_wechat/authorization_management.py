"""The authorization management APIs' requests and answers: the authorizer list, the options.

Protocol §3.7, §3.8: the authorizer list's paging and answer, and the authorizer options'
names and values as a request gives them. The HTTP side's helpers: the options themselves
are stored by the state.

Choices where WeChat's documents say nothing (UNCONFIRMED):

- ``offset`` and ``count`` of ``api_get_authorizer_list`` must be integers, ``offset`` >= 0
  and ``count`` 1..500; anything else, or a missing one, is 47001 (data format error).
- An option never set reads as ``"0"`` (``grants.DEFAULT_OPTION_VALUE``). ``option_value``
  is accepted as a one-digit string (what the documents send) or an integer, and answered
  as a string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from mock_wechat import errcodes as ec
from mock_wechat.errcodes import MockApiError
from mock_wechat.grants import Grant

MAX_LIST_COUNT = 500

# option_name -> the values it takes (protocol §3.8).
OPTION_VALUES: Mapping[str, frozenset[int]] = {
    "location_report": frozenset({0, 1, 2}),  # 0 off, 1 on entering a chat, 2 every 5 s
    "voice_recognize": frozenset({0, 1}),
    "customer_service": frozenset({0, 1}),
}

_DIGIT = re.compile(r"[0-9]")


def _integer(body: Mapping[str, Any], name: str, low: int, high: int | None = None) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MockApiError(ec.DATA_FORMAT_ERROR)
    if value < low or (high is not None and value > high):
        raise MockApiError(ec.DATA_FORMAT_ERROR)
    return value


def authorizer_list(grants: Iterable[Grant], body: Mapping[str, Any]) -> dict[str, Any]:
    """api_get_authorizer_list (§3.7): live authorizations by auth_time, then appid.

    ``refresh_token`` is "" until one of the authorization's codes has been exchanged.
    """
    offset = _integer(body, "offset", 0)
    count = _integer(body, "count", 1, MAX_LIST_COUNT)
    live = sorted((g for g in grants if g.active), key=lambda g: (g.auth_time, g.authorizer_appid))
    return {
        "total_count": len(live),
        "list": [
            {
                "authorizer_appid": g.authorizer_appid,
                "refresh_token": g.refresh_token if g.exchanged else "",
                "auth_time": int(g.auth_time),
            }
            for g in live[offset : offset + count]
        ],
    }


def option_name(body: Mapping[str, Any]) -> str:
    """The body's ``option_name``, or 61012."""
    name = body.get("option_name")
    if not isinstance(name, str) or name not in OPTION_VALUES:
        raise MockApiError(ec.INVALID_OPTION_NAME)
    return name


def option_value(body: Mapping[str, Any], name: str) -> int:
    """The body's ``option_value`` for option ``name``, or 61013."""
    given = body.get("option_value")
    value: int | None = None
    if isinstance(given, str) and _DIGIT.fullmatch(given):
        value = int(given)
    elif isinstance(given, int) and not isinstance(given, bool):
        value = given
    if value is None or value not in OPTION_VALUES[name]:
        raise MockApiError(ec.INVALID_OPTION_VALUE)
    return value
