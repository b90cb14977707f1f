"""Control-plane JSON in, validated values out.

This module checks JSON types and unknown fields; value rules (URL shape, intervals, the
AES key) live in ``config`` and ``faults``. Every failure is an ``InvalidField`` whose text
names the field and the reason, and is answered as HTTP 400.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping
from typing import Any

from mock_wechat.config import ComponentConfig, ComponentPatch, InvalidField
from mock_wechat.faults import ANY_API, FaultRule

_COMPONENT_FIELDS = frozenset(
    {
        "appid",
        "secret",
        "token",
        "encoding_aes_key",
        "event_url",
        "auth_domain",
        "ticket_interval",
        "auto_push",
        "push_retries",
    }
)
_PATCH_FIELDS = frozenset({"ticket_interval", "auto_push", "push_retries", "event_url"})
_RULE_FIELDS = frozenset({"api", "errcode", "http_status", "delay", "drop", "times"})


def json_object(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, whatever the Content-Type."""
    try:
        data = json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError):
        raise InvalidField("body", "is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidField("body", "must be a JSON object")
    return data


def _only(data: Mapping[str, Any], allowed: Collection[str]) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise InvalidField(unknown[0], f"unknown field (allowed: {', '.join(sorted(allowed))})")


def _string(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidField(name, "is required and must be a non-empty string")
    return value


def _number(value: Any, name: str) -> float:
    # bool is an int in Python, but true/false is never a number of seconds.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidField(name, "must be a number")
    return float(value)


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidField(name, "must be an integer")
    return value


def _boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidField(name, "must be true or false")
    return value


def parse_component(data: Mapping[str, Any]) -> ComponentConfig:
    _only(data, _COMPONENT_FIELDS)
    names = ("appid", "secret", "token", "encoding_aes_key", "event_url", "auth_domain")
    strings = {name: _string(data, name) for name in names}
    return ComponentConfig(
        **strings,
        ticket_interval=_number(data.get("ticket_interval", 600), "ticket_interval"),
        auto_push=_boolean(data.get("auto_push", True), "auto_push"),
        push_retries=_integer(data.get("push_retries", 0), "push_retries"),
    )


def parse_component_patch(data: Mapping[str, Any]) -> ComponentPatch:
    _only(data, _PATCH_FIELDS)
    if not data:
        raise InvalidField("body", f"give at least one of {', '.join(sorted(_PATCH_FIELDS))}")
    return ComponentPatch(
        auto_push=_boolean(data["auto_push"], "auto_push") if "auto_push" in data else None,
        event_url=_string(data, "event_url") if "event_url" in data else None,
        push_retries=(
            _integer(data["push_retries"], "push_retries") if "push_retries" in data else None
        ),
        ticket_interval=(
            _number(data["ticket_interval"], "ticket_interval")
            if "ticket_interval" in data
            else None
        ),
    )


def _fault_rule(data: Any, known_apis: Collection[str]) -> FaultRule:
    if not isinstance(data, dict):
        raise InvalidField("rule", "must be a JSON object")
    _only(data, _RULE_FIELDS)
    api = _string(data, "api")
    if api != ANY_API and api not in known_apis:
        raise InvalidField(
            "api", f"unknown API (known: {ANY_API}, {', '.join(sorted(known_apis))})"
        )
    errcode, status, times = data.get("errcode"), data.get("http_status"), data.get("times")
    return FaultRule(
        api=api,
        errcode=None if errcode is None else _integer(errcode, "errcode"),
        http_status=None if status is None else _integer(status, "http_status"),
        delay=_number(data.get("delay", 0), "delay"),
        drop=_boolean(data.get("drop", False), "drop"),
        times=None if times is None else _integer(times, "times"),
    )


def parse_fault_rules(data: Mapping[str, Any], known_apis: Collection[str]) -> list[FaultRule]:
    _only(data, {"rules"})
    rules = data.get("rules")
    if not isinstance(rules, list):
        raise InvalidField("rules", "is required and must be a list of rules")
    parsed = []
    for index, rule in enumerate(rules):
        try:
            parsed.append(_fault_rule(rule, known_apis))
        except InvalidField as exc:
            raise InvalidField(f"rules[{index}].{exc.field}", exc.reason) from None
    return parsed


def parse_advance(data: Mapping[str, Any]) -> float:
    _only(data, {"advance"})
    if "advance" not in data:
        raise InvalidField("advance", "is required (seconds to move the clock forward)")
    seconds = _number(data["advance"], "advance")
    if seconds < 0:
        raise InvalidField("advance", "must be >= 0: the clock only moves forward")
    return seconds
