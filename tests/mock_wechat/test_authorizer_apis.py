"""Authorization management, quotas and calls on an authorizer's behalf, without a server.

Every call goes through ``api_dispatch.call_api`` (caller check, quota, answer, call log),
as the HTTP layer does. Time is the mock ``Clock`` on a fixed wall: T0 is 06:13:20 in
Beijing (UTC+8), so the next WeChat midnight is T0 + 64000 s.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mock_wechat.api_dispatch import answer_latency, call_api, fault_outcome
from mock_wechat.api_handlers import HANDLERS
from mock_wechat.api_table import API_NAMES, API_TABLE
from mock_wechat.authorization import AuthRequest
from mock_wechat.authorizer_apis import OPEN_ACCOUNT_SETS
from mock_wechat.clock import Clock
from mock_wechat.config import ComponentPatch, InvalidField
from mock_wechat.control_inputs import SeedInput, parse_account, parse_quota_rules, parse_seed
from mock_wechat.faults import FaultRule
from mock_wechat.merchant_accounts import Account
from mock_wechat.models import MockWeChat, UnknownComponentError
from mock_wechat.protocol import AccountKind, sets_of
from mock_wechat.quotas import QuotaRule, beijing_day, next_midnight
from tests.mock_wechat.helpers import APPID, OTHER, SECRET, T0, config

MIDNIGHT = T0 + 64000  # 2023-11-16 00:00 UTC+8
OA_ALL = [1, 2, 3, 15, 24]
MP_ALL = [17, 18, 19, 25]


@pytest.fixture
def state() -> MockWeChat:
    mock = MockWeChat(Clock(wall=lambda: T0))
    mock.register_component(config(auto_push=False))
    return mock


def call(state: MockWeChat, api: str, query: dict[str, str] | None = None, /, **body: Any) -> Any:
    """One logged API call, as the HTTP layer makes it."""
    return call_api(state, api, json.dumps(body).encode(), query or {})


def ctoken(state: MockWeChat, appid: str = APPID) -> dict[str, str]:
    answer = call(
        state,
        "api_component_token",
        component_appid=appid,
        component_appsecret=SECRET,
        component_verify_ticket=state.issue_ticket(appid).value,
    )
    return {"component_access_token": answer["component_access_token"]}


def account(
    state: MockWeChat,
    kind: str = "official_account",
    principal: str = "某某有限公司",
    **fields: Any,
) -> Account:
    body = {"type": kind, "nick_name": f"{kind} 号", "principal_name": principal, "admin": "alice"}
    body.update(fields)
    return state.accounts.add(parse_account(body))


def authorize(state: MockWeChat, acct: Account, sets: list[int], component: str = APPID) -> str:
    """Authorize ``acct`` with ``sets`` headlessly; returns the authorization code."""
    code = call(
        state, "api_create_preauthcode", ctoken(state, component), component_appid=component
    )
    request = AuthRequest(
        component=component, pre_auth_code=code["pre_auth_code"], redirect_uri=None
    )
    done = state.authorizations.authorize(request, acct.appid, category_ids=sets)
    return done.auth_code


def exchange(state: MockWeChat, code: str, component: str = APPID) -> dict[str, Any]:
    answer = call(
        state,
        "api_query_auth",
        ctoken(state, component),
        component_appid=component,
        authorization_code=code,
    )
    info: dict[str, Any] = answer["authorization_info"]
    return info


def atoken(state: MockWeChat, acct: Account, sets: list[int]) -> dict[str, str]:
    """An authorizer access token for ``acct`` granted ``sets``, as a query."""
    info = exchange(state, authorize(state, acct, sets))
    return {"access_token": info["authorizer_access_token"]}


def errcode(answer: dict[str, Any]) -> int:
    return int(answer.get("errcode", 0))


# ----- the table -------------------------------------------------------------------------


def test_every_api_has_a_stable_name_and_one_route() -> None:
    paths = [(e.path, m) for e in API_TABLE.values() for m in e.methods]
    assert len(paths) == len(set(paths))
    assert {
        "api_get_authorizer_list",
        "api_get_authorizer_option",
        "api_set_authorizer_option",
        "get_authorizer_option",
        "set_authorizer_option",
        "component_clear_quota",
        "component_clear_quota_v2",
        "clear_quota",
        "getaccountbasicinfo",
        "message_custom_send",
        "getcategory",
        "get_category",
        "open_create",
        "open_bind",
        "open_unbind",
        "open_get",
    } <= API_NAMES
    assert API_TABLE["getcategory"].methods == ("GET",)
    assert API_TABLE["component_clear_quota_v2"].path == "/cgi-bin/component/clear_quota/v2"


def test_every_route_has_a_handler_and_every_handler_a_route() -> None:
    assert set(HANDLERS) == API_NAMES


# ----- api_get_authorizer_list -----------------------------------------------------------


def test_authorizer_list_orders_pages_and_hides_unexchanged_refresh_tokens(
    state: MockWeChat,
) -> None:
    late = account(state, appid="wx0000000000000001")
    first = account(state, appid="wx00000000000000ff")
    second = account(state, appid="wx0000000000000002")
    exchanged = exchange(state, authorize(state, first, [1]))
    authorize(state, second, [1])  # same auth_time as first: the appid orders them
    state.clock.advance(60)
    authorize(state, late, [1])
    token = ctoken(state)

    page = call(state, "api_get_authorizer_list", token, component_appid=APPID, offset=0, count=2)
    assert page["total_count"] == 3
    assert page["list"] == [
        {"authorizer_appid": second.appid, "refresh_token": "", "auth_time": int(T0)},
        {
            "authorizer_appid": first.appid,
            "refresh_token": exchanged["authorizer_refresh_token"],
            "auth_time": int(T0),
        },
    ]
    rest = call(state, "api_get_authorizer_list", token, component_appid=APPID, offset=2, count=2)
    assert rest == {
        "total_count": 3,
        "list": [{"authorizer_appid": late.appid, "refresh_token": "", "auth_time": int(T0) + 60}],
    }
    past = call(state, "api_get_authorizer_list", token, component_appid=APPID, offset=9, count=5)
    assert past == {"total_count": 3, "list": []}


def test_authorizer_list_refresh_token_appears_after_the_exchange_and_revoked_are_gone(
    state: MockWeChat,
) -> None:
    kept, gone = account(state), account(state)
    code = authorize(state, kept, [1])
    authorize(state, gone, [1])
    state.authorizations.unauthorize(APPID, gone.appid)
    listed = call(
        state, "api_get_authorizer_list", ctoken(state), component_appid=APPID, offset=0, count=500
    )
    assert [(i["authorizer_appid"], i["refresh_token"]) for i in listed["list"]] == [
        (kept.appid, "")
    ]
    refresh = exchange(state, code)["authorizer_refresh_token"]
    # A later update-authorization's code, not exchanged, keeps the refresh token listed.
    state.authorizations.update_authorization(APPID, kept.appid, [1, 2])
    listed = call(
        state, "api_get_authorizer_list", ctoken(state), component_appid=APPID, offset=0, count=1
    )
    assert listed["list"][0]["refresh_token"] == refresh
    assert listed["total_count"] == 1


@pytest.mark.parametrize(
    "paging",
    [
        {"offset": 0, "count": 0},
        {"offset": 0, "count": 501},
        {"offset": -1, "count": 10},
        {"offset": 0, "count": "10"},
        {"offset": 0, "count": True},
        {"offset": 0},
        {"count": 10},
    ],
)
def test_authorizer_list_paging_errors_are_47001(state: MockWeChat, paging: dict[str, Any]) -> None:
    answer = call(state, "api_get_authorizer_list", ctoken(state), component_appid=APPID, **paging)
    assert errcode(answer) == 47001


def test_authorizer_list_needs_the_component_token(state: MockWeChat) -> None:
    answer = call(state, "api_get_authorizer_list", {}, component_appid=APPID, offset=0, count=1)
    assert errcode(answer) == 41001
    other = call(
        state,
        "api_get_authorizer_list",
        {"access_token": "12_nope"},
        component_appid=APPID,
        offset=0,
        count=1,
    )
    assert errcode(other) == 40001


# ----- authorizer options ----------------------------------------------------------------


def test_options_old_paths_get_set_and_persist(state: MockWeChat) -> None:
    acct = account(state)
    authorize(state, acct, [1])
    token = ctoken(state)
    ask = {"component_appid": APPID, "authorizer_appid": acct.appid}

    got = call(state, "api_get_authorizer_option", token, option_name="location_report", **ask)
    assert got == {
        "authorizer_appid": acct.appid,
        "option_name": "location_report",
        "option_value": "0",
    }
    for name, value in [
        ("location_report", "2"),
        ("voice_recognize", 1),
        ("customer_service", "1"),
    ]:
        done = call(
            state, "api_set_authorizer_option", token, option_name=name, option_value=value, **ask
        )
        assert done == {"errcode": 0, "errmsg": "ok"}
    values = [
        call(state, "api_get_authorizer_option", token, option_name=n, **ask)["option_value"]
        for n in ("location_report", "voice_recognize", "customer_service")
    ]
    assert values == ["2", "1", "1"]

    # A re-authorization of a live authorization keeps them; a new one starts over.
    authorize(state, acct, [1, 2])
    again = call(state, "api_get_authorizer_option", token, option_name="location_report", **ask)
    assert again["option_value"] == "2"
    state.authorizations.unauthorize(APPID, acct.appid)
    authorize(state, acct, [1])
    fresh = call(state, "api_get_authorizer_option", token, option_name="location_report", **ask)
    assert fresh["option_value"] == "0"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"option_name": "nope", "option_value": "1"}, 61012),
        ({"option_value": "1"}, 61012),
        ({"option_name": 3, "option_value": "1"}, 61012),
        ({"option_name": "location_report", "option_value": "3"}, 61013),
        ({"option_name": "voice_recognize", "option_value": "2"}, 61013),
        ({"option_name": "voice_recognize", "option_value": "on"}, 61013),
        ({"option_name": "voice_recognize", "option_value": True}, 61013),
        ({"option_name": "voice_recognize", "option_value": "01"}, 61013),
        ({"option_name": "voice_recognize"}, 61013),
    ],
)
def test_option_errors(state: MockWeChat, fields: dict[str, Any], code: int) -> None:
    acct = account(state)
    authorize(state, acct, [1])
    answer = call(
        state,
        "api_set_authorizer_option",
        ctoken(state),
        component_appid=APPID,
        authorizer_appid=acct.appid,
        **fields,
    )
    assert errcode(answer) == code
    if code == 61012:
        got = call(
            state,
            "api_get_authorizer_option",
            ctoken(state),
            component_appid=APPID,
            authorizer_appid=acct.appid,
            **fields,
        )
        assert errcode(got) == 61012


def test_options_of_an_unauthorized_account_are_61003(state: MockWeChat) -> None:
    acct = account(state)
    for appid in (acct.appid, None):
        answer = call(
            state,
            "api_get_authorizer_option",
            ctoken(state),
            component_appid=APPID,
            authorizer_appid=appid,
            option_name="voice_recognize",
        )
        assert errcode(answer) == 61003


def test_options_new_paths_with_either_token(state: MockWeChat) -> None:
    acct = account(state)
    query = atoken(state, acct, [1])
    done = call(
        state, "set_authorizer_option", query, option_name="voice_recognize", option_value="1"
    )
    assert done == {"errcode": 0, "errmsg": "ok"}
    got = call(state, "get_authorizer_option", query, option_name="voice_recognize")
    assert got == {
        "errcode": 0,
        "errmsg": "ok",
        "option_name": "voice_recognize",
        "option_value": "1",
    }
    by_component = call(
        state,
        "get_authorizer_option",
        ctoken(state),
        component_appid=APPID,
        authorizer_appid=acct.appid,
        option_name="voice_recognize",
    )
    assert by_component["option_value"] == "1"
    assert errcode(call(state, "get_authorizer_option", {}, option_name="voice_recognize")) == 41001
    assert state.calls("set_authorizer_option")[-1]["appid"] == acct.appid


# ----- quotas ----------------------------------------------------------------------------


def test_quota_refuses_past_the_limit_with_45009_and_logs_it(state: MockWeChat) -> None:
    token = ctoken(state)
    state.quotas.set_rules([QuotaRule("api_create_preauthcode", 2)])
    answers = [
        call(state, "api_create_preauthcode", token, component_appid=APPID) for _ in range(3)
    ]
    assert [errcode(a) for a in answers] == [0, 0, 45009]
    assert answers[2]["errmsg"].startswith("reach max api daily quota limit rid: ")
    logged = state.calls("api_create_preauthcode")
    assert [(c["appid"], c["errcode"]) for c in logged] == [(APPID, 0), (APPID, 0), (APPID, 45009)]
    view = state.quotas.view()
    assert view["day"] == "2023-11-15" and view["resets_at"] == MIDNIGHT
    assert view["rules"] == [{"api": "api_create_preauthcode", "limit": 2, "appid": None}]
    usage = {(u["api"], u["appid"]): (u["count"], u["limit"]) for u in view["usage"]}
    assert usage[("api_create_preauthcode", APPID)] == (2, 2)  # the refused call is not counted
    assert usage[("api_component_token", APPID)] == (1, None)  # counted without a rule too


def test_calls_refused_before_the_caller_is_known_do_not_count(state: MockWeChat) -> None:
    state.quotas.set_rules([QuotaRule("api_create_preauthcode", 1)])
    for _ in range(3):
        assert errcode(call(state, "api_create_preauthcode", {}, component_appid=APPID)) == 41001
    ok = call(state, "api_create_preauthcode", ctoken(state), component_appid=APPID)
    assert "pre_auth_code" in ok


def test_general_rules_count_each_account_and_appid_rules_win(state: MockWeChat) -> None:
    state.register_component(config(OTHER, auto_push=False))
    state.quotas.set_rules(
        [
            QuotaRule("api_create_preauthcode", 1),
            QuotaRule("api_create_preauthcode", 3, appid=OTHER),
        ]
    )
    mine, theirs = ctoken(state), ctoken(state, OTHER)
    assert errcode(call(state, "api_create_preauthcode", mine, component_appid=APPID)) == 0
    assert errcode(call(state, "api_create_preauthcode", mine, component_appid=APPID)) == 45009
    for expected in (0, 0, 0, 45009):
        answer = call(state, "api_create_preauthcode", theirs, component_appid=OTHER)
        assert errcode(answer) == expected
    assert state.quotas.limit("api_create_preauthcode", OTHER) == 3
    assert state.quotas.limit("api_query_auth", OTHER) is None


def test_counters_reset_at_beijing_midnight(state: MockWeChat) -> None:
    state.quotas.set_rules([QuotaRule("api_create_preauthcode", 1)])

    def preauthcode() -> int:
        return errcode(call(state, "api_create_preauthcode", ctoken(state), component_appid=APPID))

    assert preauthcode() == 0
    state.clock.advance(MIDNIGHT - T0 - 1)  # 23:59:59
    assert preauthcode() == 45009
    state.clock.advance(1)  # 00:00:00 the next day
    assert preauthcode() == 0
    view = state.quotas.view()
    assert view["day"] == "2023-11-16" and view["resets_at"] == MIDNIGHT + 86400


def test_beijing_day_boundaries() -> None:
    assert beijing_day(MIDNIGHT - 1).isoformat() == "2023-11-15"
    assert beijing_day(MIDNIGHT).isoformat() == "2023-11-16"
    assert next_midnight(T0) == MIDNIGHT == next_midnight(MIDNIGHT - 1)
    assert next_midnight(MIDNIGHT) == MIDNIGHT + 86400


def test_component_clear_quota_forms(state: MockWeChat) -> None:
    state.quotas.set_rules([QuotaRule("api_create_preauthcode", 1)])
    token = ctoken(state)

    def exhaust() -> None:
        call(state, "api_create_preauthcode", token, component_appid=APPID)
        blocked = call(state, "api_create_preauthcode", token, component_appid=APPID)
        assert errcode(blocked) == 45009

    exhaust()
    v2 = call(state, "component_clear_quota_v2", component_appid=APPID, appsecret=SECRET)
    assert v2 == {"errcode": 0, "errmsg": "ok"}
    exhaust()
    legacy = call(state, "component_clear_quota", component_appid=APPID, appsecret=SECRET)
    assert errcode(legacy) == 0
    exhaust()
    by_token = call(state, "component_clear_quota", token, component_appid=APPID)
    assert errcode(by_token) == 0
    exhaust()
    cgi = call(state, "clear_quota", {"access_token": token["component_access_token"]}, appid=APPID)
    assert errcode(cgi) == 0
    assert "pre_auth_code" in call(state, "api_create_preauthcode", token, component_appid=APPID)


@pytest.mark.parametrize(
    ("api", "query", "fields", "code"),
    [
        ("component_clear_quota_v2", False, {"appsecret": "wrong"}, 40125),
        ("component_clear_quota_v2", False, {}, 41004),
        ("component_clear_quota_v2", False, {"appsecret": SECRET, "appid": "wxnope"}, 61003),
        ("component_clear_quota", False, {}, 41001),
        ("clear_quota", True, {}, 41002),
        ("clear_quota", True, {"appid": OTHER}, 40013),
        ("clear_quota", False, {"appid": APPID}, 41001),
    ],
)
def test_clear_quota_errors(
    state: MockWeChat, api: str, query: bool, fields: dict[str, Any], code: int
) -> None:
    token = ctoken(state)
    given = {"access_token": token["component_access_token"]} if query else {}
    body = {"component_appid": APPID, **fields} if api != "clear_quota" else fields
    assert errcode(call(state, api, given, **body)) == code


def test_clear_quota_is_limited_to_ten_a_month(state: MockWeChat) -> None:
    body = {"component_appid": APPID, "appsecret": SECRET}
    answers = [call(state, "component_clear_quota_v2", **body) for _ in range(11)]
    assert [errcode(a) for a in answers] == [0] * 10 + [48006]
    assert state.quotas.view()["clears"] == [{"appid": APPID, "count": 10, "left": 0}]
    state.clock.advance(17 * 86400)  # 2023-12-02 in Beijing: a new month
    assert errcode(call(state, "component_clear_quota_v2", **body)) == 0


def test_authorizer_apis_count_the_authorizer_and_its_resets(state: MockWeChat) -> None:
    first, second = account(state), account(state)
    q1, q2 = atoken(state, first, [1]), atoken(state, second, [1])
    state.quotas.set_rules([QuotaRule("getaccountbasicinfo", 1)])
    assert errcode(call(state, "getaccountbasicinfo", q1)) == 0
    assert errcode(call(state, "getaccountbasicinfo", q1)) == 45009
    assert errcode(call(state, "getaccountbasicinfo", q2)) == 0
    assert [(c["appid"], c["errcode"]) for c in state.calls("getaccountbasicinfo")] == [
        (first.appid, 0),
        (first.appid, 45009),
        (second.appid, 0),
    ]
    # The authorizer resets its own quota with its own token ...
    assert errcode(call(state, "clear_quota", q1, appid=first.appid)) == 0
    assert errcode(call(state, "getaccountbasicinfo", q1)) == 0
    # ... and the component on its behalf with clear_quota/v2 and appid.
    assert errcode(call(state, "getaccountbasicinfo", q2)) == 45009
    v2 = call(
        state,
        "component_clear_quota_v2",
        component_appid=APPID,
        appsecret=SECRET,
        appid=second.appid,
    )
    assert errcode(v2) == 0
    assert errcode(call(state, "getaccountbasicinfo", q2)) == 0
    assert errcode(call(state, "clear_quota", q1, appid=second.appid)) == 40013


def test_quota_rules_are_validated() -> None:
    with pytest.raises(InvalidField) as info:
        parse_quota_rules({"rules": [{"api": "nope", "limit": 1}]}, API_NAMES)
    assert info.value.field == "rules[0].api"
    for rule, field in [
        ({"api": "open_get"}, "rules[0].limit"),
        ({"api": "open_get", "limit": -1}, "rules[0].limit"),
        ({"api": "open_get", "limit": 1.5}, "rules[0].limit"),
        ({"api": "open_get", "limit": 1, "appid": ""}, "rules[0].appid"),
        ({"api": "open_get", "limit": 1, "colour": "red"}, "rules[0].colour"),
    ]:
        with pytest.raises(InvalidField) as info:
            parse_quota_rules({"rules": [rule]}, API_NAMES)
        assert info.value.field == field
    state = MockWeChat(Clock(wall=lambda: T0))
    with pytest.raises(InvalidField) as info:
        state.quotas.set_rules([QuotaRule("open_get", 1), QuotaRule("open_get", 2)])
    assert info.value.field == "rules[1]"


def test_reset_forgets_quotas(state: MockWeChat) -> None:
    state.quotas.set_rules([QuotaRule("open_get", 1)])
    ctoken(state)
    state.reset()
    assert state.quotas.view()["rules"] == [] and state.quotas.view()["usage"] == []


# ----- calls on an authorizer's behalf: the token ----------------------------------------


def test_authorizer_token_checks(state: MockWeChat) -> None:
    acct = account(state)
    old = atoken(state, acct, [1])
    new = atoken(state, acct, [1])  # a second exchange supersedes the first token
    assert errcode(call(state, "getaccountbasicinfo", {})) == 41001
    assert errcode(call(state, "getaccountbasicinfo", {"access_token": "12_nope"})) == 40001
    state.clock.advance(300)
    assert errcode(call(state, "getaccountbasicinfo", old)) == 0
    state.clock.advance(1)
    assert errcode(call(state, "getaccountbasicinfo", old)) == 40001
    assert errcode(call(state, "getaccountbasicinfo", new)) == 0
    state.clock.advance(7200 - 301)
    assert errcode(call(state, "getaccountbasicinfo", new)) == 42001
    # The token goes in ?access_token= only; a component token is not an authorizer's.
    value = new["access_token"]
    assert errcode(call(state, "getaccountbasicinfo", {"component_access_token": value})) == 41001
    component_token = {"access_token": ctoken(state)["component_access_token"]}
    assert errcode(call(state, "getaccountbasicinfo", component_token)) == 40001


def test_revoked_authorizations_tokens_are_40001(state: MockWeChat) -> None:
    acct = account(state)
    query = atoken(state, acct, [1])
    state.authorizations.unauthorize(APPID, acct.appid)
    assert errcode(call(state, "getaccountbasicinfo", query)) == 40001
    assert state.calls("getaccountbasicinfo")[-1]["appid"] is None


@pytest.mark.parametrize(
    ("kind", "sets", "api", "body", "code"),
    [
        ("official_account", [2], "message_custom_send", {"touser": "o1"}, 61007),
        ("mini_program", [18], "message_custom_send", {"touser": "o1"}, 61007),
        ("official_account", OA_ALL, "getcategory", {}, 61007),
        ("official_account", OA_ALL, "get_category", {}, 61007),
        ("mini_program", [19, 25], "getcategory", {}, 61007),
        ("official_account", [1], "open_get", {}, 61007),
        ("mini_program", [19], "open_create", {}, 61007),
    ],
)
def test_missing_permission_set_is_61007(
    state: MockWeChat, kind: str, sets: list[int], api: str, body: dict[str, Any], code: int
) -> None:
    query = atoken(state, account(state, kind), sets)
    assert errcode(call(state, api, query, **body)) == code


def test_the_token_is_checked_before_the_quota_and_the_quota_before_the_sets(
    state: MockWeChat,
) -> None:
    query = atoken(state, account(state), [2])
    state.quotas.set_rules([QuotaRule("open_get", 1)])
    assert errcode(call(state, "open_get", {"access_token": "12_nope"})) == 40001
    assert errcode(call(state, "open_get", query)) == 61007
    assert errcode(call(state, "open_get", query)) == 45009


# ----- calls on an authorizer's behalf: the answers --------------------------------------


def test_account_basic_info(state: MockWeChat) -> None:
    oa = account(state, signature="一句话介绍")
    mp = account(state, "mini_program", principal="个人", verify_type=-1)
    subscription = account(state, service_type=0)
    info = call(state, "getaccountbasicinfo", atoken(state, oa, [2]))
    assert info["errcode"] == 0 and info["errmsg"] == "ok"
    assert info["appid"] == oa.appid and info["account_type"] == 2
    assert (info["principal_type"], info["principal_name"]) == (1, "某某有限公司")
    assert len(info["credential"]) == 18 and info["realname_status"] == 1
    assert info["signature_info"]["signature"] == "一句话介绍"
    assert info["head_image_info"]["head_image_url"] == oa.head_img
    assert info["nickname"] == oa.nick_name == info["nickname_info"]["nickname"]
    assert info["wx_verify_info"]["qualification_verify"] is True and info["customer_type"] == 1
    small = call(state, "getaccountbasicinfo", atoken(state, mp, [17]))
    assert (small["account_type"], small["principal_type"], small["credential"]) == (3, 0, "")
    assert small["wx_verify_info"]["qualification_verify"] is False
    assert small["customer_type"] == 0
    sub = call(state, "getaccountbasicinfo", atoken(state, subscription, [1]))
    assert sub["account_type"] == 1


def test_custom_messages_are_sent_and_checked(state: MockWeChat) -> None:
    oa, mp = account(state), account(state, "mini_program")
    q_oa, q_mp = atoken(state, oa, [1]), atoken(state, mp, [19])
    state.deliveries.record_user_message(oa.appid, "oUser1")  # the users wrote first
    state.deliveries.record_user_message(mp.appid, "oUser2")
    text = {"touser": "oUser1", "msgtype": "text", "text": {"content": "你好"}}
    assert call(state, "message_custom_send", q_oa, **text) == {"errcode": 0, "errmsg": "ok"}
    page = {"touser": "oUser2", "msgtype": "link", "link": {"title": "t", "url": "https://x"}}
    assert errcode(call(state, "message_custom_send", q_mp, **page)) == 0
    sent = state.outbox.messages()
    assert [(m["authorizer_appid"], m["touser"], m["msgtype"]) for m in sent] == [
        (oa.appid, "oUser1", "text"),
        (mp.appid, "oUser2", "link"),
    ]
    assert sent[0]["text"] == {"content": "你好"} and sent[0]["component_appid"] == APPID
    assert (sent[0]["time"], sent[0]["before_reply"]) == (T0, False)
    bad: list[tuple[dict[str, Any], int]] = [
        ({"msgtype": "text", "text": {"content": "x"}}, 40003),
        ({"touser": "o", "msgtype": "fax", "fax": {}}, 40008),
        ({"touser": "o", "text": {"content": "x"}}, 40008),
        ({"touser": "o", "msgtype": "text"}, 44004),
        ({"touser": "o", "msgtype": "text", "text": {"content": ""}}, 44004),
        ({"touser": "o", "msgtype": "image", "image": "media"}, 47001),
    ]
    for body, code in bad:
        assert errcode(call(state, "message_custom_send", q_oa, **body)) == code, body
    assert len(state.outbox.messages()) == 2


def test_mini_program_categories_in_both_shapes(state: MockWeChat) -> None:
    query = atoken(state, account(state, "mini_program"), [18])
    wxopen = call_api(state, "getcategory", b"", query)
    assert wxopen["errcode"] == 0 and wxopen["category_limit"] == 20
    [category] = wxopen["categories"]
    assert (category["first_name"], category["second_name"]) == ("生活服务", "丽人服务")
    assert category["audit_status"] == 3
    wxa = call_api(state, "get_category", b"", query)
    assert wxa["category_list"] == [
        {
            "first_class": "生活服务",
            "second_class": "丽人服务",
            "first_id": category["first"],
            "second_id": category["second"],
        }
    ]


# ----- open platform accounts ------------------------------------------------------------


def test_open_account_create_bind_get_unbind(state: MockWeChat) -> None:
    oa = account(state)
    mp = account(state, "mini_program")
    stranger = account(state, "mini_program", principal="别的公司")
    q_oa, q_mp, q_stranger = (
        atoken(state, oa, [24]),
        atoken(state, mp, [25]),
        atoken(state, stranger, [25]),
    )
    assert errcode(call(state, "open_get", q_oa)) == 89002
    created = call(state, "open_create", q_oa, appid=oa.appid)
    open_appid = created["open_appid"]
    assert created == {"errcode": 0, "errmsg": "ok", "open_appid": open_appid}
    assert open_appid.startswith("wx") and len(open_appid) == 18
    assert call(state, "open_get", q_oa)["open_appid"] == open_appid
    assert errcode(call(state, "open_create", q_oa)) == 89000

    assert errcode(call(state, "open_bind", q_mp, open_appid="wx" + "0" * 16)) == 40013
    assert errcode(call(state, "open_bind", q_mp)) == 40013
    assert errcode(call(state, "open_bind", q_stranger, open_appid=open_appid)) == 89001
    assert errcode(call(state, "open_bind", q_mp, open_appid=open_appid, appid=oa.appid)) == 40013
    assert errcode(call(state, "open_bind", q_mp, open_appid=open_appid)) == 0
    assert errcode(call(state, "open_bind", q_mp, open_appid=open_appid)) == 89000
    assert call(state, "open_get", q_mp)["open_appid"] == open_appid
    assert state.open_accounts.all()[0]["appids"] == [oa.appid, mp.appid]

    assert errcode(call(state, "open_unbind", q_stranger, open_appid=open_appid)) == 89002
    assert errcode(call(state, "open_unbind", q_mp, open_appid=open_appid)) == 0
    assert errcode(call(state, "open_get", q_mp)) == 89002
    assert errcode(call(state, "open_unbind", q_mp, open_appid=open_appid)) == 89002
    # The stranger makes its own, and may not join the first.
    theirs = call(state, "open_create", q_stranger)["open_appid"]
    assert theirs != open_appid
    assert [c["appid"] for c in state.calls("open_create")] == [oa.appid, oa.appid, stranger.appid]


def test_open_accounts_made_on_the_website_are_89003(state: MockWeChat) -> None:
    oa, mp = account(state), account(state, "mini_program")
    q_oa, q_mp = atoken(state, oa, [24]), atoken(state, mp, [25])
    website = state.open_accounts.register_on_website("某某有限公司", [oa])
    assert not website.created_via_api and website.members == [oa.appid]
    assert call(state, "open_get", q_oa)["open_appid"] == website.open_appid
    assert errcode(call(state, "open_create", q_oa)) == 89000
    assert errcode(call(state, "open_bind", q_mp, open_appid=website.open_appid)) == 89003
    assert errcode(call(state, "open_unbind", q_oa, open_appid=website.open_appid)) == 89003


def test_an_open_account_holds_at_most_100_accounts(state: MockWeChat) -> None:
    owner = account(state)
    open_appid = call(state, "open_create", atoken(state, owner, [24]))["open_appid"]
    for _ in range(99):
        member = account(state, "mini_program")
        query = atoken(state, member, [25])
        assert errcode(call(state, "open_bind", query, open_appid=open_appid)) == 0
    late = atoken(state, account(state, "mini_program"), [25])
    assert errcode(call(state, "open_bind", late, open_appid=open_appid)) == 89004


OPEN_APIS = ("open_create", "open_bind", "open_unbind", "open_get")
# What each open platform API answers once past 61007, with an unknown open_appid.
PAST_THE_SETS = {"open_create": 0, "open_bind": 40013, "open_unbind": 40013, "open_get": 89002}


def test_open_account_management_is_permission_set_24_or_25() -> None:
    assert OPEN_ACCOUNT_SETS == {24, 25}
    oa = {s.id: s.name for s in sets_of(AccountKind.OFFICIAL_ACCOUNT)}
    mp = {s.id: s.name for s in sets_of(AccountKind.MINI_PROGRAM)}
    assert (oa[24], mp[25]) == ("开放平台账号管理", "开放平台账号管理")
    assert 25 not in oa and 24 not in mp  # each kind is offered its own


@pytest.mark.parametrize("api", OPEN_APIS)
@pytest.mark.parametrize(
    ("kind", "others", "needed"),
    [
        ("official_account", [1, 2, 3, 15, 22, 33], 24),
        ("mini_program", [17, 18, 19, 30], 25),
    ],
)
def test_every_open_account_api_is_61007_without_its_set(
    state: MockWeChat, api: str, kind: str, others: list[int], needed: int
) -> None:
    acct = account(state, kind)
    body = {} if api in ("open_create", "open_get") else {"open_appid": "wx" + "0" * 16}
    without = atoken(state, acct, others)
    assert errcode(call(state, api, without, **body)) == 61007
    # The permission set is checked before anything in the body (40013 for a wrong appid).
    assert errcode(call(state, api, without, appid="wx" + "1" * 16, **body)) == 61007
    granted = atoken(state, acct, [*others, needed])
    assert errcode(call(state, api, granted, **body)) == PAST_THE_SETS[api]


def test_an_account_is_bound_to_one_open_account_whichever_component_asks(
    state: MockWeChat,
) -> None:
    """The binding is the account's, not an authorization's: every component it authorized
    sees it, none may bind it twice, and it outlives a cancelled authorization."""
    state.register_component(config(OTHER, auto_push=False))
    merchant = account(state)
    via_a = exchange(state, authorize(state, merchant, [24]))
    via_b = exchange(state, authorize(state, merchant, [24], OTHER), OTHER)
    q_a = {"access_token": via_a["authorizer_access_token"]}
    q_b = {"access_token": via_b["authorizer_access_token"]}
    open_appid = call(state, "open_create", q_a)["open_appid"]
    assert call(state, "open_get", q_b)["open_appid"] == open_appid
    assert errcode(call(state, "open_bind", q_b, open_appid=open_appid)) == 89000
    assert errcode(call(state, "open_create", q_b)) == 89000
    # Bound to one open account, it cannot join another either.
    other = account(state, "mini_program")
    theirs = call(state, "open_create", atoken(state, other, [25]))["open_appid"]
    assert errcode(call(state, "open_bind", q_b, open_appid=theirs)) == 89000
    # The merchant cancels with A: the binding stays (it is the open platform's).
    state.authorizations.unauthorize(APPID, merchant.appid)
    assert errcode(call(state, "open_get", q_a)) == 40001
    assert call(state, "open_get", q_b)["open_appid"] == open_appid
    # An open account created through the API is not only its creator's (89003 is for
    # one made on the website): B may unbind what A created (the mock's reading).
    assert errcode(call(state, "open_unbind", q_b, open_appid=theirs)) == 89002
    assert errcode(call(state, "open_unbind", q_b, open_appid=open_appid)) == 0
    assert errcode(call(state, "open_get", q_b)) == 89002
    assert errcode(call(state, "open_unbind", q_b, open_appid=open_appid)) == 89002
    assert [a["appids"] for a in state.open_accounts.all()] == [[], [other.appid]]


# ----- faults, call log and latency ------------------------------------------------------


def test_fault_outcomes_of_authorizer_apis_log_the_authorizer(state: MockWeChat) -> None:
    acct = account(state)
    query = atoken(state, acct, [24])
    outcome = fault_outcome(state, "open_get", b"{}", FaultRule(api="open_get", errcode=-1), query)
    assert outcome is not None and outcome.body is not None and outcome.body["errcode"] == -1
    unknown = {"access_token": "x"}
    fault_outcome(state, "open_get", b"", FaultRule(api="*", http_status=503), unknown)
    assert [(c["appid"], c["errcode"], c["fault"]) for c in state.calls("open_get")] == [
        (acct.appid, -1, True),
        (None, None, True),
    ]


def test_authorizer_token_latency_is_per_component(state: MockWeChat) -> None:
    body = json.dumps({"component_appid": APPID}).encode()
    assert answer_latency(state, "api_authorizer_token", body) == 0
    state.update_component(APPID, ComponentPatch(authorizer_token_latency=0.05))
    assert answer_latency(state, "api_authorizer_token", body) == 0.05
    assert answer_latency(state, "api_query_auth", body) == 0
    assert answer_latency(state, "api_authorizer_token", b"{}") == 0
    assert state.get_component(APPID)["authorizer_token_latency"] == 0.05
    for bad in (-1.0, 31.0, float("nan")):
        with pytest.raises(InvalidField) as info:
            ComponentPatch(authorizer_token_latency=bad)
        assert info.value.field == "authorizer_token_latency"


def test_delay_after_rules_are_processed_and_a_lost_answer_is_logged(state: MockWeChat) -> None:
    raw = json.dumps({"component_appid": APPID}).encode()
    for rule in (FaultRule(api="*", delay_after=1), FaultRule(api="*", delay_after=1, drop=True)):
        # No fault answer: the HTTP layer processes the call, then waits (and drops).
        assert fault_outcome(state, "api_create_preauthcode", raw, rule) is None
    assert state.calls() == []
    query = ctoken(state)
    answered = call_api(state, "api_create_preauthcode", raw, query)
    lost = call_api(state, "api_create_preauthcode", raw, query, answer_lost=True)
    assert answered["pre_auth_code"] != lost["pre_auth_code"]  # both processed
    logged = state.calls("api_create_preauthcode")
    assert [(c["errcode"], c["http_status"], c["fault"]) for c in logged] == [
        (0, 200, False),
        (0, None, True),
    ]


# ----- seeded authorizers ----------------------------------------------------------------


def seeded_list(state: MockWeChat) -> dict[str, str]:
    answer = call(
        state, "api_get_authorizer_list", ctoken(state), component_appid=APPID, offset=0, count=500
    )
    return {i["authorizer_appid"]: i["refresh_token"] for i in answer["list"]}


def test_seeded_official_accounts_behave_like_authorized_ones(state: MockWeChat) -> None:
    seeded = state.seed_authorizers(APPID, AccountKind.OFFICIAL_ACCOUNT, 3)
    assert len({g.authorizer_appid for g in seeded}) == 3
    assert seeded_list(state) == {g.authorizer_appid: g.refresh_token for g in seeded}
    every_set = [s.id for s in sets_of(AccountKind.OFFICIAL_ACCOUNT)]
    first = seeded[0]
    view = state.authorizations.account_view(first.authorizer_appid)
    assert view["type"] == "official_account"
    [authorization] = view["authorizations"]
    assert authorization["func_info"] == every_set and authorization["code_exchanged"] is True
    assert state.pushes() == [] and state.held_pushes() == []

    answer = call(
        state,
        "api_authorizer_token",
        ctoken(state),
        component_appid=APPID,
        authorizer_appid=first.authorizer_appid,
        authorizer_refresh_token=first.refresh_token,
    )
    query = {"access_token": answer["authorizer_access_token"]}
    assert call(state, "getaccountbasicinfo", query)["appid"] == first.authorizer_appid
    state.deliveries.record_user_message(first.authorizer_appid, "oUser1")
    text = {"touser": "oUser1", "msgtype": "text", "text": {"content": "hi"}}
    assert errcode(call(state, "message_custom_send", query, **text)) == 0
    info = call(
        state,
        "api_get_authorizer_info",
        ctoken(state),
        component_appid=APPID,
        authorizer_appid=first.authorizer_appid,
    )
    assert info["authorization_info"]["authorizer_refresh_token"] == first.refresh_token


def test_seeded_mini_programs_get_the_mini_program_sets(state: MockWeChat) -> None:
    [seeded] = state.seed_authorizers(APPID, AccountKind.MINI_PROGRAM, 1)
    assert list(seeded.func_ids) == [s.id for s in sets_of(AccountKind.MINI_PROGRAM)]
    answer = call(
        state,
        "api_authorizer_token",
        ctoken(state),
        component_appid=APPID,
        authorizer_appid=seeded.authorizer_appid,
        authorizer_refresh_token=seeded.refresh_token,
    )
    categories = call(state, "getcategory", {"access_token": answer["authorizer_access_token"]})
    assert errcode(categories) == 0


def test_seeding_needs_a_registered_component(state: MockWeChat) -> None:
    with pytest.raises(UnknownComponentError):
        state.seed_authorizers(OTHER, AccountKind.OFFICIAL_ACCOUNT, 1)
    assert state.accounts.all() == []


def test_reset_forgets_seeded_authorizers(state: MockWeChat) -> None:
    state.seed_authorizers(APPID, AccountKind.OFFICIAL_ACCOUNT, 2)
    state.reset()
    state.register_component(config(auto_push=False))
    assert state.accounts.all() == [] and seeded_list(state) == {}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "count"),
        ({"count": 0}, "count"),
        ({"count": 20_001}, "count"),
        ({"count": "5"}, "count"),
        ({"count": True}, "count"),
        ({"count": 1.5}, "count"),
        ({"count": 1, "type": "channels"}, "type"),
        ({"count": 1, "type": 1}, "type"),
        ({"count": 1, "colour": "red"}, "colour"),
    ],
)
def test_seed_input_is_validated(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidField) as info:
        parse_seed(body)
    assert info.value.field == field


def test_seed_input_defaults_to_official_accounts() -> None:
    assert parse_seed({"count": 20_000}) == SeedInput(20_000, AccountKind.OFFICIAL_ACCOUNT)
    assert parse_seed({"count": 1, "type": "mini_program"}).type is AccountKind.MINI_PROGRAM
