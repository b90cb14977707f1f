"""Control-plane JSON in, validated values out.

This module checks JSON types and unknown fields; value rules (URL shape, intervals, the
AES key) live in ``config`` and ``faults``. Every failure is an ``InvalidField`` whose text
names the field and the reason, and is answered as HTTP 400.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from mock_wechat.auth_rules import parse_category_id_list
from mock_wechat.authorization import AuthRequest
from mock_wechat.config import ComponentConfig, ComponentPatch, InvalidField
from mock_wechat.faults import ANY_API, FaultRule
from mock_wechat.merchant_accounts import AccountSpec, parse_account_type
from mock_wechat.protocol import RELEASE_GROUP_NUMBERS, AccountKind
from mock_wechat.quotas import QuotaRule
from mock_wechat.release_check import DEFAULT_SEND_DEADLINE, MAX_SEND_DEADLINE
from mock_wechat.user_messages import UserMessage

_Rule = TypeVar("_Rule")

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
        "auth_push",
        "rotate_refresh_tokens",
        "authorizer_token_latency",
        "message_url",
    }
)
_PATCH_FIELDS = frozenset(
    {
        "ticket_interval",
        "auto_push",
        "push_retries",
        "event_url",
        "auth_push",
        "rotate_refresh_tokens",
        "authorizer_token_latency",
        "message_url",
    }
)
_ACCOUNT_FIELDS = frozenset(
    {
        "appid",
        "type",
        "nick_name",
        "principal_name",
        "admin",
        "user_name",
        "alias",
        "head_img",
        "signature",
        "service_type",
        "verify_type",
        "account_status",
    }
)
_AUTHORIZE_FIELDS = frozenset(
    {
        "component_appid",
        "pre_auth_code",
        "authorizer_appid",
        "admin",
        "category_ids",
        "redirect_uri",
        "auth_type",
        "biz_appid",
        "category_id_list",
    }
)
_RULE_FIELDS = frozenset({"api", "errcode", "http_status", "delay", "delay_after", "drop", "times"})
_QUOTA_FIELDS = frozenset({"api", "limit", "appid"})
_MESSAGE_FIELDS = frozenset(
    {
        "component_appid",
        "msg_type",
        "content",
        "event",
        "from_user",
        "fields",
        "msg_id",
        "create_time",
    }
)
MAX_SEED_COUNT = 20_000  # a benchmark's worth; more would hold the state's lock too long
SEED_TYPES = (AccountKind.OFFICIAL_ACCOUNT, AccountKind.MINI_PROGRAM)


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


def _optional_string(data: Mapping[str, Any], name: str, empty_ok: bool = False) -> str | None:
    """An optional string field; null counts as absent."""
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not (value or empty_ok):
        kind = "a string" if empty_ok else "a non-empty string"
        raise InvalidField(name, f"must be {kind}")
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
        appid=strings["appid"],
        secret=strings["secret"],
        token=strings["token"],
        encoding_aes_key=strings["encoding_aes_key"],
        event_url=strings["event_url"],
        auth_domain=strings["auth_domain"],
        ticket_interval=_number(data.get("ticket_interval", 600), "ticket_interval"),
        auto_push=_boolean(data.get("auto_push", True), "auto_push"),
        push_retries=_integer(data.get("push_retries", 0), "push_retries"),
        auth_push=_string(data, "auth_push") if "auth_push" in data else "sync",
        rotate_refresh_tokens=_boolean(
            data.get("rotate_refresh_tokens", False), "rotate_refresh_tokens"
        ),
        authorizer_token_latency=_number(
            data.get("authorizer_token_latency", 0), "authorizer_token_latency"
        ),
        message_url=_optional_string(data, "message_url"),
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
        auth_push=_string(data, "auth_push") if "auth_push" in data else None,
        rotate_refresh_tokens=(
            _boolean(data["rotate_refresh_tokens"], "rotate_refresh_tokens")
            if "rotate_refresh_tokens" in data
            else None
        ),
        authorizer_token_latency=(
            _number(data["authorizer_token_latency"], "authorizer_token_latency")
            if "authorizer_token_latency" in data
            else None
        ),
        message_url=_string(data, "message_url") if "message_url" in data else None,
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
        delay_after=_number(data.get("delay_after", 0), "delay_after"),
        drop=_boolean(data.get("drop", False), "drop"),
        times=None if times is None else _integer(times, "times"),
    )


def _rules(data: Mapping[str, Any], parse_rule: Callable[[Any], _Rule]) -> list[_Rule]:
    """``{"rules": [...]}``, each parsed by ``parse_rule``; errors name the rule's index."""
    _only(data, {"rules"})
    rules = data.get("rules")
    if not isinstance(rules, list):
        raise InvalidField("rules", "is required and must be a list of rules")
    parsed = []
    for index, rule in enumerate(rules):
        try:
            parsed.append(parse_rule(rule))
        except InvalidField as exc:
            raise InvalidField(f"rules[{index}].{exc.field}", exc.reason) from None
    return parsed


def parse_fault_rules(data: Mapping[str, Any], known_apis: Collection[str]) -> list[FaultRule]:
    return _rules(data, lambda rule: _fault_rule(rule, known_apis))


def parse_advance(data: Mapping[str, Any]) -> float:
    _only(data, {"advance"})
    if "advance" not in data:
        raise InvalidField("advance", "is required (seconds to move the clock forward)")
    seconds = _number(data["advance"], "advance")
    if seconds < 0:
        raise InvalidField("advance", "must be >= 0: the clock only moves forward")
    return seconds


def parse_account(data: Mapping[str, Any]) -> AccountSpec:
    _only(data, _ACCOUNT_FIELDS)
    fields: dict[str, Any] = {
        "type": parse_account_type(_string(data, "type")),
        "nick_name": _string(data, "nick_name"),
        "principal_name": _string(data, "principal_name"),
        "admin": _string(data, "admin"),
    }
    for name in ("appid", "user_name", "head_img"):
        fields[name] = _optional_string(data, name)
    for name in ("alias", "signature"):
        fields[name] = _optional_string(data, name, empty_ok=True) or ""
    for name in ("service_type", "verify_type", "account_status"):
        if data.get(name) is not None:
            fields[name] = _integer(data[name], name)
    return AccountSpec(**fields)


@dataclass(frozen=True)
class AuthorizeInput:
    """``POST /_mock/authorize``: what the pages would have asked, and the admin's answer."""

    request: AuthRequest
    authorizer_appid: str
    admin: str | None
    category_ids: list[int] | None


def _category_ids(value: Any, name: str) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in value
    ):
        raise InvalidField(name, "must be a list of permission-set ids (integers > 0)")
    return value


def _category_filter(value: Any) -> frozenset[int] | None:
    """category_id_list as the pages take it ("1|15") or as a list of ids."""
    if value is None:
        return None
    if isinstance(value, str):
        return parse_category_id_list(value)
    return frozenset(_category_ids(value, "category_id_list"))


def parse_authorize(data: Mapping[str, Any]) -> AuthorizeInput:
    _only(data, _AUTHORIZE_FIELDS)
    auth_type = data.get("auth_type")
    ids = data.get("category_ids")
    request = AuthRequest(
        component=_string(data, "component_appid"),
        pre_auth_code=_string(data, "pre_auth_code"),
        redirect_uri=_optional_string(data, "redirect_uri"),
        auth_type=None if auth_type is None else _integer(auth_type, "auth_type"),
        biz_appid=_optional_string(data, "biz_appid"),
        category_filter=_category_filter(data.get("category_id_list")),
    )
    return AuthorizeInput(
        request=request,
        authorizer_appid=_string(data, "authorizer_appid"),
        admin=_optional_string(data, "admin"),
        category_ids=None if ids is None else _category_ids(ids, "category_ids"),
    )


@dataclass(frozen=True)
class SeedInput:
    """``POST /_mock/components/<appid>/authorizers/seed``."""

    count: int
    type: AccountKind


def parse_seed(data: Mapping[str, Any]) -> SeedInput:
    _only(data, {"count", "type"})
    if "count" not in data:
        raise InvalidField("count", f"is required (1 to {MAX_SEED_COUNT} authorizers)")
    count = _integer(data["count"], "count")
    if not 1 <= count <= MAX_SEED_COUNT:
        raise InvalidField("count", f"must be from 1 to {MAX_SEED_COUNT}")
    kind = data.get("type", SEED_TYPES[0].value)
    if kind not in SEED_TYPES:  # a StrEnum member equals its value
        allowed = ", ".join(t.value for t in SEED_TYPES)
        raise InvalidField("type", f"must be one of {allowed}")
    return SeedInput(count=count, type=AccountKind(kind))


def parse_component_ref(data: Mapping[str, Any]) -> str:
    _only(data, {"component_appid"})
    return _string(data, "component_appid")


def parse_update_authorization(data: Mapping[str, Any]) -> tuple[str, list[int]]:
    _only(data, {"component_appid", "category_ids"})
    component = _string(data, "component_appid")
    if "category_ids" not in data:
        raise InvalidField("category_ids", "is required (the permission-set ids now granted)")
    return component, _category_ids(data["category_ids"], "category_ids")


def parse_redeliver(data: Mapping[str, Any]) -> int:
    _only(data, {"index"})
    if "index" not in data:
        raise InvalidField("index", "is required (0-based position in GET /_mock/pushes)")
    index = _integer(data["index"], "index")
    if index < 0:
        raise InvalidField("index", "must be >= 0")
    return index


def _quota_rule(data: Any, known_apis: Collection[str]) -> QuotaRule:
    if not isinstance(data, dict):
        raise InvalidField("rule", "must be a JSON object")
    _only(data, _QUOTA_FIELDS)
    api = _string(data, "api")
    if api not in known_apis:
        raise InvalidField("api", f"unknown API (known: {', '.join(sorted(known_apis))})")
    if "limit" not in data:
        raise InvalidField("limit", "is required (calls a day)")
    return QuotaRule(
        api=api,
        limit=_integer(data["limit"], "limit"),
        appid=_optional_string(data, "appid"),
    )


def parse_quota_rules(data: Mapping[str, Any], known_apis: Collection[str]) -> list[QuotaRule]:
    """``POST /_mock/quotas``: ``{"rules": [{"api", "limit", "appid"?}]}``."""
    return _rules(data, lambda rule: _quota_rule(rule, known_apis))


def parse_open_account(data: Mapping[str, Any]) -> tuple[str, list[str]]:
    """``POST /_mock/open-accounts``: ``{"principal_name", "appids"?: [...]}``."""
    _only(data, {"principal_name", "appids"})
    appids = data.get("appids", [])
    if not isinstance(appids, list) or not all(isinstance(a, str) and a for a in appids):
        raise InvalidField("appids", "must be a list of account appids")
    return _string(data, "principal_name"), appids


def _msg_id(value: Any) -> str | None:
    """MsgId as decimal digits, given as a string or an integer (it is 64-bit)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and value:
        return value  # its digits are checked by UserMessage
    raise InvalidField("msg_id", "must be decimal digits, as a string or an integer")


def parse_user_message(data: Mapping[str, Any]) -> UserMessage:
    """``POST /_mock/authorizers/<appid>/messages``: a user's message or event."""
    _only(data, _MESSAGE_FIELDS)
    fields = data.get("fields", {})
    if not isinstance(fields, dict):
        raise InvalidField("fields", "must be an object of XML element names and values")
    create_time = data.get("create_time")
    return UserMessage(
        component_appid=_string(data, "component_appid"),
        msg_type=_string(data, "msg_type"),
        content=_optional_string(data, "content"),
        event=_optional_string(data, "event"),
        from_user=_optional_string(data, "from_user"),
        fields=dict(fields),
        msg_id=_msg_id(data.get("msg_id")),
        create_time=None if create_time is None else _integer(create_time, "create_time"),
    )


@dataclass(frozen=True)
class ReleaseCheckInput:
    """``POST /_mock/components/<appid>/release-check``."""

    group: int | None  # None with all_groups false: one group at random
    all_groups: bool
    send_deadline: float


def parse_release_check(data: Mapping[str, Any]) -> ReleaseCheckInput:
    _only(data, {"group", "all_groups", "send_deadline"})
    group = data.get("group")
    if group is not None and (
        isinstance(group, bool) or not isinstance(group, int) or group not in RELEASE_GROUP_NUMBERS
    ):
        groups = ", ".join(str(g) for g in RELEASE_GROUP_NUMBERS)
        raise InvalidField("group", f"must be one of {groups}")
    all_groups = _boolean(data.get("all_groups", False), "all_groups")
    if all_groups and group is not None:
        raise InvalidField("group", "give group or all_groups, not both")
    deadline = _number(data.get("send_deadline", DEFAULT_SEND_DEADLINE), "send_deadline")
    if not 0 < deadline <= MAX_SEND_DEADLINE:
        raise InvalidField(
            "send_deadline", f"must be seconds above 0, at most {MAX_SEND_DEADLINE:g}"
        )
    return ReleaseCheckInput(group=group, all_groups=all_groups, send_deadline=deadline)
