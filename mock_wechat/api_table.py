"""The WeChat API table: every API's stable name, route, caller check and answer.

The stable name keys fault rules, quota rules and the call log. ``MockWeChat.call_api``
runs an entry with the state's lock held, in three steps:

1. ``caller`` checks the credential (component secret, component token or authorizer
   access token) and names the account acting: the quota it uses, the call log's appid;
2. the quota rules (45009);
3. ``answer`` is the API itself. It checks the credential again, so it also stands alone.

Component APIs act as the component; APIs called with an authorizer access token act as
that authorizer (protocol §5: 代调用 uses the authorizer's own quota). Answers that need
more than a line live in ``management`` (§3.7, §3.8), ``authorizer_apis`` and
``open_accounts`` (§8) and ``quotas`` (§3.9); this module only wires them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mock_wechat import authorizer_apis as ext
from mock_wechat import errcodes as ec
from mock_wechat import management
from mock_wechat.bodies import text_field
from mock_wechat.errcodes import MockApiError
from mock_wechat.grants import Grant
from mock_wechat.merchants import Account

if TYPE_CHECKING:
    from mock_wechat.models import MockWeChat

Body = Mapping[str, Any]
Query = Mapping[str, str]


@dataclass(frozen=True)
class Caller:
    appid: str  # the account acting: whose quota the call uses, what the call log shows


CallerCheck = Callable[["MockWeChat", Body, Query], Caller]
Answer = Callable[["MockWeChat", Body, Query], dict[str, Any]]


@dataclass(frozen=True)
class ApiEntry:
    name: str
    path: str
    caller: CallerCheck
    answer: Answer
    methods: tuple[str, ...] = ("POST",)
    reads_body: bool = True  # False: any body is ignored (the GET APIs)
    for_authorizer: bool = False  # called with an authorizer access token


# ----- caller checks ---------------------------------------------------------------------


def _by_secret(secret_field: str) -> CallerCheck:
    def caller(state: MockWeChat, body: Body, query: Query) -> Caller:
        return Caller(state.check_secret(body, secret_field).appid)

    return caller


def _by_component_token(state: MockWeChat, body: Body, query: Query) -> Caller:
    return Caller(state.token_component(body, query))


def _token_value(query: Query) -> str | None:
    return query.get("component_access_token") or query.get("access_token")


def _acting(
    state: MockWeChat, value: str | None, needed: frozenset[int] = ext.NO_SETS
) -> tuple[Grant, Account]:
    """The live authorization an authorizer access token acts for, and its account.

    41001/40001/42001 for the token (a revoked authorization's tokens are gone: 40001),
    then 61007 when the authorization holds none of the ``needed`` permission sets.
    """
    grants = state.authorizations.grants
    token = grants.check_token(value, state.now())
    grant = grants.active(token.component, token.authorizer_appid)
    account = state.accounts.find(grant.authorizer_appid)
    if account is None:  # cannot happen while accounts and grants reset together
        raise MockApiError(ec.NOT_AUTHORIZED)
    ext.require_sets(grant.func_ids, needed)
    return grant, account


def _by_authorizer_token(state: MockWeChat, body: Body, query: Query) -> Caller:
    grant, _ = _acting(state, query.get("access_token"))
    return Caller(grant.authorizer_appid)


def _by_either_token(state: MockWeChat, body: Body, query: Query) -> Caller:
    """A component token acts as the component; anything else must be an authorizer's."""
    value = _token_value(query)
    if state.is_component_token(value):
        return Caller(state.check_component_token(query, None).component)
    grant, _ = _acting(state, value)
    return Caller(grant.authorizer_appid)


def _by_secret_or_component_token(state: MockWeChat, body: Body, query: Query) -> Caller:
    if "appsecret" in body:
        return _by_secret("appsecret")(state, body, query)
    return _by_component_token(state, body, query)


# ----- authorization management (§3.7, §3.8) ---------------------------------------------


def _authorizer_list(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    component = state.token_component(body, query)
    return management.authorizer_list(state.authorizations.grants.of_component(component), body)


def _component_grant(state: MockWeChat, body: Body, query: Query) -> Grant:
    component = state.token_component(body, query)
    return state.authorizations.grants.active(component, text_field(body, "authorizer_appid"))


def _get_option_v1(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    grant = _component_grant(state, body, query)
    name, value = management.get_option(grant, body)
    return {"authorizer_appid": grant.authorizer_appid, "option_name": name, "option_value": value}


def _set_option_v1(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    management.set_option(_component_grant(state, body, query), body)
    return ext.ok()


def _option_grant(state: MockWeChat, body: Body, query: Query) -> Grant:
    """The newer option APIs take the authorizer's token (or, with a component token,
    ``component_appid`` and ``authorizer_appid`` in the body: protocol §3.8's conflict)."""
    value = _token_value(query)
    if state.is_component_token(value):
        return _component_grant(state, body, query)
    grant, _ = _acting(state, value)
    return grant


def _get_option_v2(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    name, value = management.get_option(_option_grant(state, body, query), body)
    return ext.ok(option_name=name, option_value=value)


def _set_option_v2(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    management.set_option(_option_grant(state, body, query), body)
    return ext.ok()


# ----- quota resets (§3.9) ----------------------------------------------------------------


def _clear_component_quota(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    """The legacy form: ``component_appid`` with ``appsecret`` or a component token."""
    state.quotas.reset_account(_by_secret_or_component_token(state, body, query).appid)
    return ext.ok()


def _clear_quota_v2(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    """``component_appid`` + ``appsecret``; an ``appid`` resets that authorizer instead."""
    component = state.check_secret(body, "appsecret").appid
    target = text_field(body, "appid") or component
    if target != component:
        state.authorizations.grants.active(component, target)  # 61003 unless authorized
    state.quotas.reset_account(target)
    return ext.ok()


def _clear_quota(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    """/cgi-bin/clear_quota: the token's own account, named again in ``appid``."""
    acting = _by_either_token(state, body, query).appid
    appid = text_field(body, "appid")
    if appid is None:
        raise MockApiError(ec.APPID_MISSING)
    if appid != acting:
        raise MockApiError(ec.INVALID_APPID)
    state.quotas.reset_account(appid)
    return ext.ok()


# ----- on an authorizer's behalf (§8) ----------------------------------------------------


def _basic_info(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    _, account = _acting(state, query.get("access_token"))
    return ext.basic_info(account)


def _custom_send(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    grant, account = _acting(state, query.get("access_token"), ext.CUSTOM_MESSAGE_SETS)
    message = ext.parse_custom_message(body)
    state.deliveries.check_window(account.appid, message.touser)
    before_reply = state.deliveries.in_flight(account.appid, message.touser)
    state.outbox.send(grant.component, account.appid, message, before_reply)
    return ext.ok()


def _wxopen_category(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    _acting(state, query.get("access_token"), ext.CATEGORY_SETS)
    return ext.wxopen_categories()


def _wxa_category(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    _acting(state, query.get("access_token"), ext.CATEGORY_SETS)
    return ext.wxa_categories()


def _open_account(state: MockWeChat, body: Body, query: Query) -> Account:
    _, account = _acting(state, query.get("access_token"), ext.OPEN_ACCOUNT_SETS)
    ext.check_appid(body, account.appid)
    return account


def _open_create(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    account = _open_account(state, body, query)
    return ext.ok(open_appid=state.open_accounts.create(account))


def _open_bind(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    account = _open_account(state, body, query)
    state.open_accounts.bind(account, text_field(body, "open_appid"))
    return ext.ok()


def _open_unbind(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    account = _open_account(state, body, query)
    state.open_accounts.unbind(account, text_field(body, "open_appid"))
    return ext.ok()


def _open_get(state: MockWeChat, body: Body, query: Query) -> dict[str, Any]:
    account = _open_account(state, body, query)
    return ext.ok(open_appid=state.open_accounts.bound_to(account))


# ----- the table ---------------------------------------------------------------------------


def _component(name: str, answer: Answer, caller: CallerCheck = _by_component_token) -> ApiEntry:
    return ApiEntry(name, f"/cgi-bin/component/{name}", caller, answer)


def _authorizer(
    name: str, path: str, answer: Answer, methods: tuple[str, ...] = ("POST",)
) -> ApiEntry:
    return ApiEntry(
        name,
        path,
        _by_authorizer_token,
        answer,
        methods=methods,
        reads_body="GET" not in methods,
        for_authorizer=True,
    )


API_ENTRIES: tuple[ApiEntry, ...] = (
    _component(
        "api_component_token",
        lambda s, b, q: s.api_component_token(b, q),
        _by_secret("component_appsecret"),
    ),
    _component(
        "api_start_push_ticket",
        lambda s, b, q: s.api_start_push_ticket(b, q),
        _by_secret("component_secret"),
    ),
    _component("api_create_preauthcode", lambda s, b, q: s.api_create_preauthcode(b, q)),
    _component("api_query_auth", lambda s, b, q: s.api_query_auth(b, q)),
    _component("api_get_authorizer_info", lambda s, b, q: s.api_get_authorizer_info(b, q)),
    _component("api_authorizer_token", lambda s, b, q: s.api_authorizer_token(b, q)),
    _component("api_get_authorizer_list", _authorizer_list),
    _component("api_get_authorizer_option", _get_option_v1),
    _component("api_set_authorizer_option", _set_option_v1),
    ApiEntry(
        "get_authorizer_option",
        "/cgi-bin/component/get_authorizer_option",
        _by_either_token,
        _get_option_v2,
    ),
    ApiEntry(
        "set_authorizer_option",
        "/cgi-bin/component/set_authorizer_option",
        _by_either_token,
        _set_option_v2,
    ),
    ApiEntry(
        "component_clear_quota",
        "/cgi-bin/component/clear_quota",
        _by_secret_or_component_token,
        _clear_component_quota,
    ),
    ApiEntry(
        "component_clear_quota_v2",
        "/cgi-bin/component/clear_quota/v2",
        _by_secret("appsecret"),
        _clear_quota_v2,
    ),
    ApiEntry("clear_quota", "/cgi-bin/clear_quota", _by_either_token, _clear_quota),
    # The newer document says POST, protocol §8 and WxJava say GET: both are answered.
    _authorizer(
        "getaccountbasicinfo",
        "/cgi-bin/account/getaccountbasicinfo",
        _basic_info,
        ("GET", "POST"),
    ),
    _authorizer("message_custom_send", "/cgi-bin/message/custom/send", _custom_send),
    _authorizer("getcategory", "/cgi-bin/wxopen/getcategory", _wxopen_category, ("GET",)),
    _authorizer("get_category", "/wxa/get_category", _wxa_category, ("GET",)),
    _authorizer("open_create", "/cgi-bin/open/create", _open_create),
    _authorizer("open_bind", "/cgi-bin/open/bind", _open_bind),
    _authorizer("open_unbind", "/cgi-bin/open/unbind", _open_unbind),
    _authorizer("open_get", "/cgi-bin/open/get", _open_get),
)

API_TABLE: Mapping[str, ApiEntry] = {entry.name: entry for entry in API_ENTRIES}
API_NAMES: frozenset[str] = frozenset(API_TABLE)
