"""Run one WeChat API call on the state: caller check, quota, answer, call log; and faults.

From a call's raw body and query string: the caller check, the quota, the answer and the
call log; and what a fault rule answers instead. No Flask here: ``api`` does the HTTP,
this module decides what it answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from mock_wechat import errcodes as ec
from mock_wechat.api_bodies import appid_in, parse_body
from mock_wechat.api_handlers import HANDLERS
from mock_wechat.api_table import API_NAMES, API_TABLE
from mock_wechat.errcodes import MockApiError
from mock_wechat.faults import FaultRule
from mock_wechat.models import MockWeChat

API_AUTHORIZER_TOKEN = "api_authorizer_token"  # the one API with a latency setting

_NO_QUERY: Mapping[str, str] = MappingProxyType({})

if set(HANDLERS) != API_NAMES:  # a route without an answer, or an answer without a route
    raise RuntimeError(f"api_handlers and api_table differ: {sorted(set(HANDLERS) ^ API_NAMES)}")


@dataclass(frozen=True)
class FaultOutcome:
    """How the HTTP layer must answer a call a fault rule took over."""

    drop: bool
    http_status: int
    body: dict[str, Any] | None


def call_api(
    state: MockWeChat,
    api: str,
    raw_body: bytes,
    query: Mapping[str, str],
    answer_lost: bool = False,
) -> dict[str, Any]:
    """Run one API call from its raw body and query; always logged, never raises.

    The caller is checked first, then the quota rules (45009), then the API answers, all
    with the state held. ``answer_lost``: a fault rule will drop the connection instead of
    sending the answer, so the log shows the call processed (its errcode) but no HTTP
    status.
    """
    route = API_TABLE.get(api)
    if route is None:
        raise KeyError(f"no such API: {api}")
    handler = HANDLERS[api]
    appid: str | None = None
    with state.atomic():
        try:
            body = parse_body(raw_body) if route.reads_body else {}
            given = body.get("component_appid")
            if isinstance(given, str) and not route.for_authorizer:
                appid = given
            appid = handler.caller(state, body, query).appid
            state.quotas.consume(api, appid)
            answer = handler.answer(state, body, query)
            errcode = int(answer.get("errcode", 0))
        except MockApiError as exc:
            answer, errcode = exc.body(), exc.errcode
        status = None if answer_lost else 200
        state.record_call(api, appid or None, errcode, status, fault=answer_lost)
    return answer


def fault_outcome(
    state: MockWeChat,
    api: str,
    raw_body: bytes,
    rule: FaultRule,
    query: Mapping[str, str] = _NO_QUERY,
) -> FaultOutcome | None:
    """What to answer for a call ``rule`` took, logged; None means process it normally
    (a rule with only delays, or one dropping the answer after ``delay_after``).

    Called after the rule's delay has been slept.
    """
    appid = _fault_appid(state, raw_body, query)
    if rule.drops_unprocessed:
        state.record_call(api, appid, None, None, fault=True)
        return FaultOutcome(drop=True, http_status=0, body=None)
    if rule.errcode is not None:
        state.record_call(api, appid, rule.errcode, 200, fault=True)
        return FaultOutcome(drop=False, http_status=200, body=ec.error_body(rule.errcode))
    if rule.http_status is not None:
        state.record_call(api, appid, None, rule.http_status, fault=True)
        return FaultOutcome(drop=False, http_status=rule.http_status, body=None)
    return None


def _fault_appid(state: MockWeChat, raw_body: bytes, query: Mapping[str, str]) -> str | None:
    """Best effort, for the call log: the body's component_appid, else the authorizer
    an authorizer access token acts for."""
    appid = appid_in(raw_body)
    if appid is not None:
        return appid
    try:
        return state.check_authorizer_token(query.get("access_token"))
    except MockApiError:
        return None


def answer_latency(state: MockWeChat, api: str, raw_body: bytes) -> float:
    """Seconds to wait before answering: the component's ``authorizer_token_latency``
    for api_authorizer_token (a benchmark's network), else 0. Slept outside the lock."""
    if api != API_AUTHORIZER_TOKEN:
        return 0.0
    config = state.component_config(appid_in(raw_body) or "")
    return config.authorizer_token_latency if config is not None else 0.0


def wait_for_reply(
    state: MockWeChat, raw_body: bytes, query: Mapping[str, str], timeout: float
) -> None:
    """Before a custom message is processed: wait, the state not held, until no message
    push to its ``touser`` is waiting for the service's answer, at most ``timeout`` s.

    A service that answers first and then sends may still have its send scheduled
    before the mock has read the answer; this wait keeps that from counting as
    ``before_reply``. A call the API will refuse anyway waits for nothing.
    """
    try:
        touser = parse_body(raw_body).get("touser")
        authorizer = state.check_authorizer_token(query.get("access_token"))
    except MockApiError:
        return
    if isinstance(touser, str) and touser:
        state.deliveries.wait_until_answered(authorizer, touser, timeout)
