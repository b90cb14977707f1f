"""Each WeChat API's caller check and answer: read the request, ask the state, shape the JSON.

The state's rules live in ``models`` and its parts; this module only reads bodies and
query strings and wires the state's methods to the APIs of ``api_table``.

``api_dispatch.call_api`` runs a handler with the state held (``MockWeChat.atomic``) in
three steps:

1. ``caller`` checks the credential (component secret, component token or authorizer
   access token) and names the account acting: the quota it uses, the call log's appid;
2. the quota rules (45009);
3. ``answer`` is the API itself. It checks the credential again, so it also stands alone.

Component APIs act as the component; APIs called with an authorizer access token act as
that authorizer (protocol §5: 代调用 uses the authorizer's own quota). Reading a field
raises 47001 when it has the wrong type, so fields are read in the order WeChat checks
them. Answers that need more than a line live in ``authorization_management`` (§3.7,
§3.8) and ``authorizer_apis`` (§8).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from mock_wechat import authorization_management, authorizer_apis
from mock_wechat import errcodes as ec
from mock_wechat.api_bodies import text_field
from mock_wechat.authorization import PRE_AUTH_CODE_TTL
from mock_wechat.errcodes import MockApiError
from mock_wechat.grants import Grant
from mock_wechat.merchant_accounts import Account
from mock_wechat.models import COMPONENT_TOKEN_TTL, MockWeChat

Body = Mapping[str, Any]
Query = Mapping[str, str]

_NO_QUERY: Query = MappingProxyType({})


@dataclass(frozen=True)
class Caller:
    appid: str  # the account acting: whose quota the call uses, what the call log shows


CallerCheck = Callable[[MockWeChat, Body, Query], Caller]
Answer = Callable[[MockWeChat, Body, Query], dict[str, Any]]


@dataclass(frozen=True)
class ApiHandler:
    caller: CallerCheck
    answer: Answer


# ----- credentials -------------------------------------------------------------------------


def _required(body: Body, name: str, missing: int) -> str:
    value = text_field(body, name)
    if value is None:
        raise MockApiError(missing)
    return value


def secret_component(state: MockWeChat, body: Body, secret_field: str) -> str:
    """The component a secret API acts for: 41002, 40013, 41004, 40125 in that order."""
    appid = _required(body, "component_appid", ec.APPID_MISSING)
    state.api_component(appid)
    state.check_secret(appid, _required(body, secret_field, ec.APPSECRET_MISSING))
    return appid


def token_value(query: Query) -> str | None:
    """A token is read from the query only (WeChat ignores one in the body)."""
    return query.get("component_access_token") or query.get("access_token")


def token_component(state: MockWeChat, body: Body, query: Query) -> str:
    """The component a token API acts for: the token checked first, then the appid."""
    appid = text_field(body, "component_appid")
    state.check_component_token(token_value(query), appid)
    if appid is None:
        raise MockApiError(ec.APPID_MISSING)
    return appid


def _acting(
    state: MockWeChat, value: str | None, needed: frozenset[int] = authorizer_apis.NO_SETS
) -> tuple[Grant, Account]:
    """The live authorization an authorizer access token acts for, and its account:
    41001/40001/42001 for the token, then 61007 when it holds none of ``needed``."""
    grant, account = state.authorizations.acting(value)
    authorizer_apis.require_sets(grant.func_ids, needed)
    return grant, account


# ----- caller checks -------------------------------------------------------------------------


def _by_secret(secret_field: str) -> CallerCheck:
    def caller(state: MockWeChat, body: Body, query: Query) -> Caller:
        return Caller(secret_component(state, body, secret_field))

    return caller


def _by_component_token(state: MockWeChat, body: Body, query: Query) -> Caller:
    return Caller(token_component(state, body, query))


def _by_authorizer_token(state: MockWeChat, body: Body, query: Query) -> Caller:
    grant, _ = _acting(state, query.get("access_token"))
    return Caller(grant.authorizer_appid)


def _by_either_token(state: MockWeChat, body: Body, query: Query) -> Caller:
    """A component token acts as the component; anything else must be an authorizer's."""
    value = token_value(query)
    if state.is_component_token(value):
        return Caller(state.check_component_token(value, None).component)
    grant, _ = _acting(state, value)
    return Caller(grant.authorizer_appid)


def _by_secret_or_component_token(state: MockWeChat, body: Body, query: Query) -> Caller:
    if "appsecret" in body:
        return _by_secret("appsecret")(state, body, query)
    return _by_component_token(state, body, query)


# ----- tokens and authorization (§3.1-§3.6) ------------------------------------------------


def _component_token(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    """A component token for the secret and a live ticket."""
    appid = secret_component(state, body, "component_appsecret")
    token = state.issue_component_token(appid, text_field(body, "component_verify_ticket"))
    return {"component_access_token": token.value, "expires_in": COMPONENT_TOKEN_TTL}


def _start_push_ticket(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    """Turn automatic pushes on and make one due now (the pusher sends it)."""
    was_on = state.start_ticket_pushes(secret_component(state, body, "component_secret"))
    return {"errcode": 0, "errmsg": "in a normal state" if was_on else "ok"}


def _create_preauthcode(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    """A single-use pre-auth code living 1800 s (protocol §3.3)."""
    code = state.authorizations.create_pre_auth_code(token_component(state, body, query))
    return {"pre_auth_code": code.value, "expires_in": PRE_AUTH_CODE_TTL}


def _query_auth(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    component = token_component(state, body, query)
    return state.authorizations.exchange_code(component, text_field(body, "authorization_code"))


def _get_authorizer_info(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    component = token_component(state, body, query)
    return state.authorizations.authorizer_info(component, text_field(body, "authorizer_appid"))


def _authorizer_token(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    component = token_component(state, body, query)
    return state.authorizations.refresh_authorizer_token(
        component,
        text_field(body, "authorizer_appid"),
        text_field(body, "authorizer_refresh_token"),
    )


# ----- authorization management (§3.7, §3.8) ---------------------------------------------


def _authorizer_list(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    component = token_component(state, body, query)
    grants = state.authorizations.grants.of_component(component)
    return authorization_management.authorizer_list(grants, body)


def _component_grant(state: MockWeChat, body: Body, query: Query) -> Grant:
    component = token_component(state, body, query)
    return state.authorizations.grants.active(component, text_field(body, "authorizer_appid"))


def _option_grant(state: MockWeChat, body: Body, query: Query) -> Grant:
    """The newer option APIs take the authorizer's token (or, with a component token,
    ``component_appid`` and ``authorizer_appid`` in the body: protocol §3.8's conflict)."""
    value = token_value(query)
    if state.is_component_token(value):
        return _component_grant(state, body, query)
    grant, _ = _acting(state, value)
    return grant


def _set_option(state: MockWeChat, grant: Grant, body: Body) -> None:
    name = authorization_management.option_name(body)
    value = authorization_management.option_value(body, name)
    state.authorizations.set_option(grant.component, grant.authorizer_appid, name, value)


def _get_option_v1(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    grant = _component_grant(state, body, query)
    name = authorization_management.option_name(body)
    return {
        "authorizer_appid": grant.authorizer_appid,
        "option_name": name,
        "option_value": str(grant.option(name)),
    }


def _set_option_v1(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    _set_option(state, _component_grant(state, body, query), body)
    return authorizer_apis.ok()


def _get_option_v2(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    grant = _option_grant(state, body, query)
    name = authorization_management.option_name(body)
    return authorizer_apis.ok(option_name=name, option_value=str(grant.option(name)))


def _set_option_v2(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    _set_option(state, _option_grant(state, body, query), body)
    return authorizer_apis.ok()


# ----- quota resets (§3.9) ----------------------------------------------------------------


def _clear_component_quota(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    """The legacy form: ``component_appid`` with ``appsecret`` or a component token."""
    state.quotas.reset_account(_by_secret_or_component_token(state, body, query).appid)
    return authorizer_apis.ok()


def _clear_quota_v2(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    """``component_appid`` + ``appsecret``; an ``appid`` resets that authorizer instead."""
    component = secret_component(state, body, "appsecret")
    target = text_field(body, "appid") or component
    if target != component:
        state.authorizations.grants.active(component, target)  # 61003 unless authorized
    state.quotas.reset_account(target)
    return authorizer_apis.ok()


def _clear_quota(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    """/cgi-bin/clear_quota: the token's own account, named again in ``appid``."""
    acting = _by_either_token(state, body, query).appid
    appid = text_field(body, "appid")
    if appid is None:
        raise MockApiError(ec.APPID_MISSING)
    if appid != acting:
        raise MockApiError(ec.INVALID_APPID)
    state.quotas.reset_account(appid)
    return authorizer_apis.ok()


# ----- on an authorizer's behalf (§8) ----------------------------------------------------


def _basic_info(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    _, account = _acting(state, query.get("access_token"))
    return authorizer_apis.basic_info(account)


def _custom_send(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    grant, account = _acting(state, query.get("access_token"), authorizer_apis.CUSTOM_MESSAGE_SETS)
    message = authorizer_apis.parse_custom_message(body)
    state.deliveries.check_window(account.appid, message.touser)
    before_reply = state.deliveries.in_flight(account.appid, message.touser)
    state.outbox.send(grant.component, account.appid, message, before_reply)
    return authorizer_apis.ok()


def _wxopen_category(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    _acting(state, query.get("access_token"), authorizer_apis.CATEGORY_SETS)
    return authorizer_apis.wxopen_categories()


def _wxa_category(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    _acting(state, query.get("access_token"), authorizer_apis.CATEGORY_SETS)
    return authorizer_apis.wxa_categories()


def _open_account(state: MockWeChat, body: Body, query: Query) -> Account:
    _, account = _acting(state, query.get("access_token"), authorizer_apis.OPEN_ACCOUNT_SETS)
    authorizer_apis.check_appid(body, account.appid)
    return account


def _open_create(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    account = _open_account(state, body, query)
    return authorizer_apis.ok(open_appid=state.open_accounts.create(account))


def _open_bind(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    account = _open_account(state, body, query)
    state.open_accounts.bind(account, text_field(body, "open_appid"))
    return authorizer_apis.ok()


def _open_unbind(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    account = _open_account(state, body, query)
    state.open_accounts.unbind(account, text_field(body, "open_appid"))
    return authorizer_apis.ok()


def _open_get(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    account = _open_account(state, body, query)
    return authorizer_apis.ok(open_appid=state.open_accounts.bound_to(account))


# ----- by API name -----------------------------------------------------------------------


def _component_api(answer: Answer) -> ApiHandler:
    return ApiHandler(_by_component_token, answer)


def _authorizer_api(answer: Answer) -> ApiHandler:
    return ApiHandler(_by_authorizer_token, answer)


HANDLERS: Mapping[str, ApiHandler] = {
    "api_component_token": ApiHandler(_by_secret("component_appsecret"), _component_token),
    "api_start_push_ticket": ApiHandler(_by_secret("component_secret"), _start_push_ticket),
    "api_create_preauthcode": _component_api(_create_preauthcode),
    "api_query_auth": _component_api(_query_auth),
    "api_get_authorizer_info": _component_api(_get_authorizer_info),
    "api_authorizer_token": _component_api(_authorizer_token),
    "api_get_authorizer_list": _component_api(_authorizer_list),
    "api_get_authorizer_option": _component_api(_get_option_v1),
    "api_set_authorizer_option": _component_api(_set_option_v1),
    "get_authorizer_option": ApiHandler(_by_either_token, _get_option_v2),
    "set_authorizer_option": ApiHandler(_by_either_token, _set_option_v2),
    "component_clear_quota": ApiHandler(_by_secret_or_component_token, _clear_component_quota),
    "component_clear_quota_v2": ApiHandler(_by_secret("appsecret"), _clear_quota_v2),
    "clear_quota": ApiHandler(_by_either_token, _clear_quota),
    "getaccountbasicinfo": _authorizer_api(_basic_info),
    "message_custom_send": _authorizer_api(_custom_send),
    "getcategory": _authorizer_api(_wxopen_category),
    "get_category": _authorizer_api(_wxa_category),
    "open_create": _authorizer_api(_open_create),
    "open_bind": _authorizer_api(_open_bind),
    "open_unbind": _authorizer_api(_open_unbind),
    "open_get": _authorizer_api(_open_get),
}


def answer(state: MockWeChat, api: str, body: Body, query: Query = _NO_QUERY) -> dict[str, Any]:
    """One API's answer alone (no caller step, quota or call log), with the state held;
    raises ``MockApiError`` as WeChat would answer it."""
    with state.atomic():
        return HANDLERS[api].answer(state, body, query)
