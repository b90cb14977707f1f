"""Accounts, authorization pages' rules, authorizations and authorizer tokens, with no HTTP.

Time is the mock ``Clock`` on a fixed wall, so lifetimes are tested by advancing it.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from mock_wechat.api_handlers import answer as api_answer
from mock_wechat.auth_rules import REFERER_ERROR, AuthRuleError, Refusal
from mock_wechat.authorization import AuthRequest, Confirmation, PageSession
from mock_wechat.clock import Clock
from mock_wechat.config import ComponentConfig, ComponentPatch, InvalidField
from mock_wechat.control_inputs import parse_account
from mock_wechat.merchant_accounts import Account, DuplicateAccountError, UnknownAccountError
from mock_wechat.models import MockWeChat
from mock_wechat.protocol import AUTH_TYPE_LISTS, AUTH_TYPE_OF_KIND, AccountKind, sets_of
from service.wechat.accounts import AccountType, account_type_of
from service.wechat.messages import Authorized, Unauthorized, UpdateAuthorized, parse_message
from tests.mock_wechat.helpers import APPID, OTHER, SECRET, T0, config, errcode_of

DOMAIN = "gw.example.com"
ENTRY = f"https://{DOMAIN}/authorize/start"
CALLBACK = f"https://{DOMAIN}/authorize/callback"
OA_SETS = [s.id for s in sets_of(AccountKind.OFFICIAL_ACCOUNT)]
MP_SETS = [s.id for s in sets_of(AccountKind.MINI_PROGRAM)]


def component(appid: str = APPID) -> ComponentConfig:
    """A component whose pages are on DOMAIN, with no automatic ticket pushes."""
    return config(appid, auth_domain=DOMAIN, auto_push=False)


@pytest.fixture
def state() -> MockWeChat:
    mock = MockWeChat(Clock(wall=lambda: T0))
    mock.register_component(component())
    return mock


def rule_of(call: Any) -> AuthRuleError:
    with pytest.raises(AuthRuleError) as info:
        call()
    return info.value


def component_token(state: MockWeChat, appid: str = APPID) -> dict[str, str]:
    body = {
        "component_appid": appid,
        "component_appsecret": SECRET,
        "component_verify_ticket": state.issue_ticket(appid).value,
    }
    token = api_answer(state, "api_component_token", body)["component_access_token"]
    return {"component_access_token": token}


def pre_auth_code(state: MockWeChat, appid: str = APPID) -> str:
    body = {"component_appid": appid}
    answer = api_answer(state, "api_create_preauthcode", body, component_token(state, appid))
    code: str = answer["pre_auth_code"]
    return code


def account(
    state: MockWeChat, kind: str = "official_account", admin: str = "alice", **fields: Any
) -> Account:
    body = {
        "type": kind,
        "nick_name": f"{kind} of {admin}",
        "principal_name": "某公司",
        "admin": admin,
    }
    body.update(fields)
    return state.accounts.add(parse_account(body))


def open_page(
    state: MockWeChat, code: str | None = None, referer: str | None = ENTRY, **query: str
) -> PageSession:
    link = {
        "component_appid": APPID,
        "pre_auth_code": code if code is not None else pre_auth_code(state),
        "redirect_uri": CALLBACK,
    }
    link.update(query)
    return state.authorizations.open_session("pc", link, referer)


def confirm(
    state: MockWeChat, acct: Account, sets: list[int] | None = None, **query: str
) -> Confirmation:
    query.setdefault("auth_type", str(AUTH_TYPE_OF_KIND[acct.type]))
    session = open_page(state, **query)
    chosen = sets if sets is not None else [s.id for s in sets_of(acct.type)]
    return state.authorizations.confirm(session.id, acct.admin, acct.appid, chosen)


def message_of(done: Confirmation) -> Any:
    return parse_message(done.notice.push.message)


def api(state: MockWeChat, name: str, **body: Any) -> dict[str, Any]:
    return api_answer(state, name, {"component_appid": APPID, **body}, component_token(state))


def query_auth(state: MockWeChat, code: str) -> dict[str, Any]:
    info: dict[str, Any] = api(state, "api_query_auth", authorization_code=code)[
        "authorization_info"
    ]
    return info


# ----- accounts --------------------------------------------------------------------------


def test_account_defaults_and_generated_ids(state: MockWeChat) -> None:
    created = account(state)
    assert re.fullmatch(r"wx[0-9a-f]{16}", created.appid)
    assert re.fullmatch(r"gh_[0-9a-f]{12}", created.user_name)
    assert (created.account_status, created.service_type, created.verify_type) == (1, 2, 0)
    assert created.public()["type"] == "official_account"
    assert [a.appid for a in state.accounts.all()] == [created.appid]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"type": "store"}, "type"),  # a real type, but no page lists it
        ({"type": "nope"}, "type"),
        ({"type": 1}, "type"),
        ({"nick_name": ""}, "nick_name"),
        ({"principal_name": None}, "principal_name"),
        ({"admin": ""}, "admin"),
        ({"appid": "wx0123"}, "appid"),
        ({"appid": "wx0123456789ABCDEF"}, "appid"),
        ({"appid": "ab0123456789abcdef"}, "appid"),
        ({"user_name": "gh_xyz"}, "user_name"),
        ({"alias": 5}, "alias"),
        ({"service_type": 7}, "service_type"),
        ({"service_type": "2"}, "service_type"),
        ({"verify_type": 6}, "verify_type"),
        ({"account_status": 2}, "account_status"),
        ({"account_status": True}, "account_status"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_account_input_is_validated(overrides: dict[str, Any], field: str) -> None:
    body = {"type": "official_account", "nick_name": "n", "principal_name": "p", "admin": "a"}
    body.update(overrides)
    with pytest.raises(InvalidField) as info:
        parse_account(body)
    assert info.value.field == field


def test_mini_program_service_types_differ(state: MockWeChat) -> None:
    assert account(state, "mini_program", service_type=4).service_type == 4
    with pytest.raises(InvalidField):
        account(state, "mini_program", service_type=2)


def test_duplicate_and_unknown_accounts(state: MockWeChat) -> None:
    account(state, appid=OTHER)
    with pytest.raises(DuplicateAccountError):
        account(state, appid=OTHER)
    with pytest.raises(UnknownAccountError):
        state.accounts.get("wx0000000000000000")


def test_reset_forgets_accounts_and_authorizations(state: MockWeChat) -> None:
    acct = account(state)
    confirm(state, acct)
    state.reset()
    assert state.accounts.all() == []
    with pytest.raises(UnknownAccountError):
        state.authorizations.account_view(acct.appid)


# ----- the pages' checks -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("referer", "shown"),
    [
        (None, "空"),
        ("", "空"),
        ("https://evil.example.net/page", "evil.example.net"),
        (f"https://sub.{DOMAIN}/page", f"sub.{DOMAIN}"),
    ],
)
def test_referer_must_be_on_the_auth_domain(
    state: MockWeChat, referer: str | None, shown: str
) -> None:
    error = rule_of(lambda: open_page(state, referer=referer))
    assert (error.code, error.refusal) == ("referer", Refusal.FORBIDDEN)
    assert error.message == REFERER_ERROR + shown
    assert error.message == (
        "请确认授权入口页所在域名，与授权后回调页所在域名相同，并且，此两者都必须与申请第三方平台"
        "时填写的授权发起页域名相同。授权入口页所在域名：" + shown
    )


@pytest.mark.parametrize(
    "redirect_uri",
    ["https://evil.example.net/cb", "", "javascript:alert(1)", f"ftp://{DOMAIN}/cb", "/relative"],
)
def test_redirect_uri_must_be_on_the_auth_domain(state: MockWeChat, redirect_uri: str) -> None:
    error = rule_of(lambda: open_page(state, redirect_uri=redirect_uri))
    assert error.code == "referer"
    assert error.message == REFERER_ERROR + DOMAIN  # the Referer itself was fine


def test_referer_with_port_and_upper_case_host_is_accepted(state: MockWeChat) -> None:
    session = open_page(
        state, referer="https://GW.example.com:8443/x", redirect_uri=f"http://{DOMAIN}:8080/cb"
    )
    assert session.kind == "pc" and session.request.redirect_uri == f"http://{DOMAIN}:8080/cb"


def test_checks_run_in_order(state: MockWeChat) -> None:
    everything_wrong = {"auth_type": "7", "biz_appid": OTHER, "category_id_list": "x"}
    assert rule_of(lambda: open_page(state, component_appid="wxnope")).code == "component"
    assert rule_of(lambda: open_page(state, referer=None, **everything_wrong)).code == "referer"
    bad_code = rule_of(lambda: open_page(state, code="preauthcode@@@nope", **everything_wrong))
    assert bad_code.code == "pre_auth_code_invalid"
    assert rule_of(lambda: open_page(state, **everything_wrong)).code == "auth_type"
    biz_first = rule_of(lambda: open_page(state, biz_appid=OTHER, category_id_list="x"))
    assert biz_first.code == "biz_appid"
    assert rule_of(lambda: open_page(state, category_id_list="x")).code == "category_id_list"


def test_pre_auth_code_expired_used_and_foreign(state: MockWeChat) -> None:
    state.register_component(component(OTHER))
    foreign = pre_auth_code(state, OTHER)
    assert rule_of(lambda: open_page(state, code=foreign)).code == "pre_auth_code_invalid"

    code = pre_auth_code(state)
    state.clock.advance(1799)
    open_page(state, code=code)
    state.clock.advance(1)  # 1800 s: gone
    assert rule_of(lambda: open_page(state, code=code)).code == "pre_auth_code_expired"

    acct = account(state)
    code = pre_auth_code(state)
    session = open_page(state, code=code)
    state.authorizations.confirm(session.id, "alice", acct.appid, [1])
    assert rule_of(lambda: open_page(state, code=code)).code == "pre_auth_code_used"
    # the page opened before is finished too
    used = rule_of(lambda: state.authorizations.listing(session.id, "alice"))
    assert used.code == "pre_auth_code_used" and used.refusal is Refusal.CONFLICT


def test_sessions_end_with_their_pre_auth_code(state: MockWeChat) -> None:
    account(state)
    session = open_page(state)
    assert session.expires_at == T0 + 1800
    state.clock.advance(1801)
    expired = rule_of(lambda: state.authorizations.listing(session.id, "alice"))
    assert expired.code == "pre_auth_code_expired"
    assert rule_of(lambda: state.authorizations.session("nope")).code == "session"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"auth_type": "7"}, "auth_type"),
        ({"auth_type": "0"}, "auth_type"),
        ({"auth_type": "x"}, "auth_type"),
        ({"auth_type": "²"}, "auth_type"),
        ({"biz_appid": "wx0000000000000000"}, "biz_appid"),
        ({"category_id_list": "1|x"}, "category_id_list"),
        ({"category_id_list": "1||2"}, "category_id_list"),
        ({"category_id_list": "0"}, "category_id_list"),
        ({"category_id_list": "1,2"}, "category_id_list"),
    ],
)
def test_bad_link_parameters(state: MockWeChat, query: dict[str, str], code: str) -> None:
    assert rule_of(lambda: open_page(state, **query)).code == code


def test_empty_optional_parameters_are_absent(state: MockWeChat) -> None:
    request = open_page(state, auth_type="", biz_appid="", category_id_list="").request
    assert (request.auth_type, request.biz_appid, request.category_filter) == (None, None, None)


# ----- which accounts are listed ---------------------------------------------------------


@pytest.fixture
def every_type(state: MockWeChat) -> dict[AccountKind, Account]:
    kinds = ("official_account", "mini_program", "promoter", "channels", "talent")
    mine = {AccountKind(k): account(state, k) for k in kinds}
    account(state, "official_account", admin="bob")  # someone else's
    for status in (14, 16, 19):  # cancelled, banned, frozen: never listed
        account(state, "official_account", account_status=status)
    return mine


@pytest.mark.parametrize("auth_type", [1, 2, 3, 4, 5, 6, 8, None])
def test_each_auth_type_lists_its_account_types(
    state: MockWeChat, every_type: dict[AccountKind, Account], auth_type: int | None
) -> None:
    query = {} if auth_type is None else {"auth_type": str(auth_type)}
    session = open_page(state, **query)
    listed = state.authorizations.listing(session.id, "alice")
    shows = AUTH_TYPE_LISTS[auth_type or 3]
    assert sorted(a.appid for a in listed) == sorted(every_type[k].appid for k in shows)


def test_warned_accounts_are_still_listed(state: MockWeChat) -> None:
    warned = account(state, account_status=18)
    listed = state.authorizations.listing(open_page(state).id, "alice")
    assert [a.appid for a in listed] == [warned.appid]


def test_no_accounts_for_this_admin(
    state: MockWeChat, every_type: dict[AccountKind, Account]
) -> None:
    session = open_page(state)
    assert rule_of(lambda: state.authorizations.listing(session.id, "carol")).code == "no_accounts"
    promoter_page = open_page(state, auth_type="4")
    assert [a.type for a in state.authorizations.listing(promoter_page.id, "alice")] == [
        AccountKind.PROMOTER
    ]


def test_biz_appid_wins_over_auth_type(
    state: MockWeChat, every_type: dict[AccountKind, Account]
) -> None:
    mini = every_type[AccountKind.MINI_PROGRAM]
    session = open_page(state, auth_type="1", biz_appid=mini.appid)
    assert [a.appid for a in state.authorizations.listing(session.id, "alice")] == [mini.appid]
    offer = state.authorizations.offer(session.id, "alice", mini.appid)
    assert [s.id for s in offer.sets] == MP_SETS
    # the official account the auth_type asked for is not allowed with this biz_appid
    oa = every_type[AccountKind.OFFICIAL_ACCOUNT]
    refused = rule_of(lambda: state.authorizations.offer(session.id, "alice", oa.appid))
    assert (refused.code, refused.refusal) == ("account", Refusal.CONFLICT)


def test_biz_appid_only_for_its_admin(
    state: MockWeChat, every_type: dict[AccountKind, Account]
) -> None:
    mini = every_type[AccountKind.MINI_PROGRAM]
    session = open_page(state, biz_appid=mini.appid)
    for call in (
        lambda: state.authorizations.listing(session.id, "bob"),
        lambda: state.authorizations.offer(session.id, "bob", mini.appid),
        lambda: state.authorizations.confirm(session.id, "bob", mini.appid, [17]),
    ):
        assert rule_of(call).code == "biz_appid_admin"


def test_banned_biz_appid_lists_nothing(state: MockWeChat) -> None:
    banned = account(state, account_status=16)
    session = open_page(state, biz_appid=banned.appid)
    assert rule_of(lambda: state.authorizations.listing(session.id, "alice")).code == "no_accounts"


def test_category_id_list_narrows_the_offer(state: MockWeChat) -> None:
    oa, mini = account(state), account(state, "mini_program")
    session = open_page(state, category_id_list="1|15|18|99")
    assert [s.id for s in state.authorizations.offer(session.id, "alice", oa.appid).sets] == [
        1,
        15,
    ]
    assert [s.id for s in state.authorizations.offer(session.id, "alice", mini.appid).sets] == [18]
    not_offered = rule_of(lambda: state.authorizations.confirm(session.id, "alice", oa.appid, [2]))
    assert not_offered.code == "categories"


def test_nothing_offered_cannot_be_confirmed(state: MockWeChat) -> None:
    oa = account(state)
    session = open_page(state, category_id_list="18")
    assert state.authorizations.offer(session.id, "alice", oa.appid).sets == []
    error = rule_of(lambda: state.authorizations.confirm(session.id, "alice", oa.appid, []))
    assert error.code == "categories"


# ----- confirming ------------------------------------------------------------------------


def test_confirm_redirects_with_the_code_and_pushes_authorized(state: MockWeChat) -> None:
    acct = account(state)
    code = pre_auth_code(state)
    state.clock.advance(42)
    done = confirm(state, acct, [1, 15], code=code)

    assert done.info_type == "authorized" and done.expires_in == 3600
    assert done.auth_code.startswith("queryauthcode@@@") and len(done.auth_code) == 100
    assert done.redirect_url == f"{CALLBACK}?auth_code={done.auth_code}&expires_in=3600"
    assert not done.notice.held
    message = message_of(done)
    assert isinstance(message, Authorized)
    assert (message.app_id, message.authorizer_appid) == (APPID, acct.appid)
    assert message.create_time == int(T0 + 42)
    assert message.authorization_code_expired_time == message.create_time + 3600
    assert (message.authorization_code, message.pre_auth_code) == (done.auth_code, code)

    pre = state.pre_auth_code(code)
    assert pre is not None and pre.used
    [grant] = state.authorizations.account_view(acct.appid)["authorizations"]
    assert grant == {
        "component_appid": APPID,
        "status": "active",
        "func_info": [1, 15],
        "auth_time": T0 + 42,
        "code_exchanged": False,
    }


@pytest.mark.parametrize(
    ("redirect_uri", "expected"),
    [
        (f"{CALLBACK}?state=x", f"{CALLBACK}?state=x&auth_code=CODE&expires_in=3600"),
        (f"{CALLBACK}?", f"{CALLBACK}?auth_code=CODE&expires_in=3600"),
        (f"{CALLBACK}#top", f"{CALLBACK}?auth_code=CODE&expires_in=3600#top"),
    ],
)
def test_redirect_keeps_the_callbacks_own_query(
    state: MockWeChat, redirect_uri: str, expected: str
) -> None:
    done = confirm(state, account(state), redirect_uri=redirect_uri)
    assert done.redirect_url == expected.replace("CODE", done.auth_code)


def test_reauthorizing_with_other_sets_is_updateauthorized(state: MockWeChat) -> None:
    acct = account(state)
    first = confirm(state, acct, [1, 2])
    refresh = query_auth(state, first.auth_code)["authorizer_refresh_token"]

    same = confirm(state, acct, [2, 1])
    assert same.info_type == "authorized" and isinstance(message_of(same), Authorized)

    changed = confirm(state, acct, [1, 2, 3])
    assert changed.info_type == "updateauthorized"
    assert isinstance(message_of(changed), UpdateAuthorized)
    info = query_auth(state, changed.auth_code)
    assert info["authorizer_refresh_token"] == refresh  # a live authorization keeps its own
    assert [f["funcscope_category"]["id"] for f in info["func_info"]] == [1, 2, 3]


def test_deny_changes_nothing(state: MockWeChat) -> None:
    acct = account(state)
    code = pre_auth_code(state)
    session = open_page(state, code=code)
    assert state.authorizations.deny(session.id, "alice", acct.appid) == CALLBACK
    pre = state.pre_auth_code(code)
    assert pre is not None and not pre.used
    assert state.authorizations.account_view(acct.appid)["authorizations"] == []
    assert state.authorizations.confirm(session.id, "alice", acct.appid, [1]).auth_code


def test_confirm_rechecks_the_account(state: MockWeChat) -> None:
    acct, bobs = account(state), account(state, admin="bob")
    session = open_page(state)
    flow = state.authorizations
    assert rule_of(lambda: flow.confirm(session.id, "alice", bobs.appid, [1])).code == "account"
    unknown = rule_of(lambda: flow.confirm(session.id, "alice", "wx0000000000000000", [1]))
    assert (unknown.code, unknown.refusal) == ("account", Refusal.UNKNOWN)
    assert rule_of(lambda: flow.confirm(session.id, "alice", acct.appid, [])).code == "categories"
    # nothing above used the code
    assert flow.confirm(session.id, "alice", acct.appid, [1]).auth_code


def test_held_pushes_wait_in_order(state: MockWeChat) -> None:
    state.update_component(APPID, ComponentPatch(auth_push="hold"))
    first, second = account(state), account(state, "mini_program")
    done = [confirm(state, first), confirm(state, second)]
    assert all(d.notice.held for d in done)
    held = state.held_pushes()
    assert [p.message for p in held] == [d.notice.push.message for d in done]
    assert [p.info_type for p in held] == ["authorized", "authorized"]
    assert state.take_held_pushes() == held and state.held_pushes() == []


# ----- headless authorize ----------------------------------------------------------------


def test_headless_authorize_defaults(state: MockWeChat) -> None:
    mini = account(state, "mini_program", admin="bob")
    request = AuthRequest(APPID, pre_auth_code(state), None, auth_type=2)
    done = state.authorizations.authorize(request, mini.appid)
    assert done.redirect_url is None
    assert [
        f["funcscope_category"]["id"] for f in query_auth(state, done.auth_code)["func_info"]
    ] == (MP_SETS)


@pytest.mark.parametrize(
    ("change", "code", "refusal"),
    [
        ({"component": OTHER}, "component", Refusal.UNKNOWN),
        ({"redirect_uri": "https://evil.example.net/cb"}, "redirect_uri", Refusal.INVALID),
        ({"pre_auth_code": "preauthcode@@@nope"}, "pre_auth_code_invalid", Refusal.UNKNOWN),
        ({"auth_type": 7}, "auth_type", Refusal.INVALID),
        ({"auth_type": 2}, "account", Refusal.CONFLICT),
        ({"biz_appid": "wx0000000000000000"}, "biz_appid", Refusal.UNKNOWN),
    ],
)
def test_headless_authorize_rules(
    state: MockWeChat, change: dict[str, Any], code: str, refusal: Refusal
) -> None:
    acct = account(state)
    fields: dict[str, Any] = {
        "component": APPID,
        "pre_auth_code": pre_auth_code(state),
        "redirect_uri": CALLBACK,
    }
    fields.update(change)
    error = rule_of(lambda: state.authorizations.authorize(AuthRequest(**fields), acct.appid))
    assert (error.code, error.refusal) == (code, refusal)


def test_headless_authorize_wrong_admin_and_used_code(state: MockWeChat) -> None:
    acct = account(state)
    request = AuthRequest(APPID, pre_auth_code(state), CALLBACK)
    wrong = rule_of(lambda: state.authorizations.authorize(request, acct.appid, admin="bob"))
    assert (wrong.code, wrong.refusal) == ("account", Refusal.CONFLICT)
    state.authorizations.authorize(request, acct.appid)
    used = rule_of(lambda: state.authorizations.authorize(request, acct.appid))
    assert (used.code, used.refusal) == ("pre_auth_code_used", Refusal.CONFLICT)


# ----- api_query_auth --------------------------------------------------------------------


def test_query_auth_answers_the_tokens(state: MockWeChat) -> None:
    acct = account(state)
    done = confirm(state, acct, [1, 15])
    info = query_auth(state, done.auth_code)
    assert list(info) == [
        "authorizer_appid",
        "authorizer_access_token",
        "expires_in",
        "authorizer_refresh_token",
        "func_info",
    ]
    assert info["authorizer_appid"] == acct.appid and info["expires_in"] == 7200
    assert re.fullmatch(r"\d{2}_[A-Za-z0-9_-]{120}", info["authorizer_access_token"])
    assert info["authorizer_refresh_token"].startswith("refreshtoken@@@")
    assert info["func_info"] == [
        {"funcscope_category": {"id": 1}},
        {"funcscope_category": {"id": 15}},
    ]
    assert state.check_authorizer_token(info["authorizer_access_token"]) == acct.appid
    assert state.authorizations.account_view(acct.appid)["authorizations"][0]["code_exchanged"]


def test_query_auth_code_is_single_use_and_lives_an_hour(state: MockWeChat) -> None:
    acct = account(state)
    done = confirm(state, acct)
    query_auth(state, done.auth_code)
    assert errcode_of(lambda: query_auth(state, done.auth_code)) == 61010

    late = confirm(state, acct)
    state.clock.advance(3599)
    fresh = confirm(state, acct)
    state.clock.advance(2)
    assert errcode_of(lambda: query_auth(state, late.auth_code)) == 61010
    assert query_auth(state, fresh.auth_code)["authorizer_appid"] == acct.appid


def test_query_auth_invalid_codes(state: MockWeChat) -> None:
    state.register_component(component(OTHER))
    acct = account(state)
    assert errcode_of(lambda: query_auth(state, "queryauthcode@@@nope")) == 61009
    assert errcode_of(lambda: query_auth(state, pre_auth_code(state))) == 61009
    session = state.authorizations.open_session(
        "h5",
        {
            "component_appid": OTHER,
            "pre_auth_code": pre_auth_code(state, OTHER),
            "redirect_uri": CALLBACK,
        },
        ENTRY,
    )
    foreign = state.authorizations.confirm(session.id, "alice", acct.appid, [1])
    assert errcode_of(lambda: query_auth(state, foreign.auth_code)) == 61009
    no_token = {"component_appid": APPID, "authorization_code": foreign.auth_code}
    assert errcode_of(lambda: api_answer(state, "api_query_auth", no_token, {})) == 41001


def test_a_new_access_token_supersedes_the_old_after_300_seconds(state: MockWeChat) -> None:
    acct = account(state)
    first = query_auth(state, confirm(state, acct).auth_code)
    second = query_auth(state, confirm(state, acct).auth_code)
    old, new = first["authorizer_access_token"], second["authorizer_access_token"]
    state.clock.advance(300)
    assert state.check_authorizer_token(old) == acct.appid
    state.clock.advance(1)
    assert errcode_of(lambda: state.check_authorizer_token(old)) == 40001
    assert state.check_authorizer_token(new) == acct.appid
    state.clock.advance(7200 - 301)
    assert errcode_of(lambda: state.check_authorizer_token(new)) == 42001
    assert errcode_of(lambda: state.check_authorizer_token(None)) == 41001
    assert errcode_of(lambda: state.check_authorizer_token("12_nope")) == 40001


# ----- api_get_authorizer_info -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "marker"),
    [
        ("official_account", None),
        ("mini_program", "MiniProgramInfo"),
        ("channels", "channels_info"),
        ("talent", "talent_info"),
        ("promoter", "promoter_info"),
    ],
)
def test_authorizer_info_per_type(state: MockWeChat, kind: str, marker: str | None) -> None:
    acct = account(state, kind, alias="alias1", signature="签名")
    confirm(state, acct)
    answer = api(state, "api_get_authorizer_info", authorizer_appid=acct.appid)
    info = answer["authorizer_info"]
    markers = {"MiniProgramInfo", "channels_info", "talent_info", "promoter_info"}
    assert markers & set(info) == ({marker} if marker else set())
    assert account_type_of(info) is AccountType(kind)  # what the service reads it by
    assert info["nick_name"] == acct.nick_name and info["user_name"] == acct.user_name
    assert (info["alias"], info["signature"], info["principal_name"]) == (
        "alias1",
        "签名",
        "某公司",
    )
    assert info["service_type_info"] == {"id": acct.service_type}
    assert info["verify_type_info"] == {"id": 0} and info["account_status"] == 1
    assert info["qrcode_url"].startswith("http://mmbiz.qpic.cn/")
    for key in ("head_img", "business_info", "idc", "register_type", "basic_config"):
        assert key in info
    if marker == "MiniProgramInfo":
        assert set(info[marker]) == {"network", "categories", "visit_status"}
    authorization = answer["authorization_info"]
    assert authorization["authorizer_appid"] == acct.appid
    assert authorization["authorizer_refresh_token"].startswith("refreshtoken@@@")
    assert len(authorization["func_info"]) == len(sets_of(AccountKind(kind)))


def test_authorizer_info_needs_an_authorization(state: MockWeChat) -> None:
    acct = account(state)
    for appid in (acct.appid, "wx0000000000000000", None):
        body = {} if appid is None else {"authorizer_appid": appid}
        assert errcode_of(lambda b=body: api(state, "api_get_authorizer_info", **b)) == 61003


# ----- api_authorizer_token --------------------------------------------------------------


def refresh(state: MockWeChat, appid: str, token: str) -> dict[str, Any]:
    return api(
        state, "api_authorizer_token", authorizer_appid=appid, authorizer_refresh_token=token
    )


def test_refresh_keeps_the_refresh_token_and_supersedes_the_access_token(
    state: MockWeChat,
) -> None:
    acct = account(state)
    info = query_auth(state, confirm(state, acct).auth_code)
    answer = refresh(state, acct.appid, info["authorizer_refresh_token"])
    assert list(answer) == ["authorizer_access_token", "expires_in", "authorizer_refresh_token"]
    assert answer["authorizer_refresh_token"] == info["authorizer_refresh_token"]
    assert answer["expires_in"] == 7200
    assert answer["authorizer_access_token"] != info["authorizer_access_token"]
    state.clock.advance(301)
    assert (
        errcode_of(lambda: state.check_authorizer_token(info["authorizer_access_token"])) == 40001
    )
    assert state.check_authorizer_token(answer["authorizer_access_token"]) == acct.appid
    again = refresh(state, acct.appid, info["authorizer_refresh_token"])
    assert again["authorizer_refresh_token"] == info["authorizer_refresh_token"]


def test_rotating_refresh_tokens_overlap_300_seconds(state: MockWeChat) -> None:
    state.update_component(APPID, ComponentPatch(rotate_refresh_tokens=True))
    acct = account(state)
    first = query_auth(state, confirm(state, acct).auth_code)["authorizer_refresh_token"]
    second = refresh(state, acct.appid, first)["authorizer_refresh_token"]
    assert second != first and second.startswith("refreshtoken@@@")
    state.clock.advance(300)
    third = refresh(state, acct.appid, first)["authorizer_refresh_token"]  # still in its grace
    assert third not in (first, second)
    assert errcode_of(lambda: refresh(state, acct.appid, first)) == 61023  # two rotations back
    state.clock.advance(301)
    assert errcode_of(lambda: refresh(state, acct.appid, second)) == 61023
    assert refresh(state, acct.appid, third)["authorizer_refresh_token"] != third


def test_refresh_errors(state: MockWeChat) -> None:
    acct, other = account(state), account(state)
    token = query_auth(state, confirm(state, acct).auth_code)["authorizer_refresh_token"]
    assert errcode_of(lambda: refresh(state, acct.appid, "refreshtoken@@@wrong")) == 61023
    body = {"authorizer_appid": acct.appid}
    assert errcode_of(lambda: api(state, "api_authorizer_token", **body)) == 61023
    assert errcode_of(lambda: refresh(state, other.appid, token)) == 61003
    assert errcode_of(lambda: refresh(state, "wx0000000000000000", token)) == 61003


# ----- the merchant's own actions --------------------------------------------------------


def test_unauthorize_revokes_everything_and_pushes(state: MockWeChat) -> None:
    acct = account(state)
    pending = confirm(state, acct)  # a code never exchanged dies too
    info = query_auth(state, confirm(state, acct).auth_code)
    state.clock.advance(7)

    notice = state.authorizations.unauthorize(APPID, acct.appid)

    message = parse_message(notice.push.message)
    assert isinstance(message, Unauthorized)
    assert (message.app_id, message.authorizer_appid) == (APPID, acct.appid)
    assert message.create_time == int(T0 + 7)
    assert errcode_of(lambda: refresh(state, acct.appid, info["authorizer_refresh_token"])) == 61003
    assert (
        errcode_of(lambda: state.check_authorizer_token(info["authorizer_access_token"])) == 40001
    )
    assert errcode_of(lambda: query_auth(state, pending.auth_code)) == 61009
    [grant] = state.authorizations.account_view(acct.appid)["authorizations"]
    assert grant["status"] == "revoked"
    again = rule_of(lambda: state.authorizations.unauthorize(APPID, acct.appid))
    assert (again.code, again.refusal) == ("authorization", Refusal.CONFLICT)

    back = confirm(state, acct)
    assert back.info_type == "authorized"  # a revoked authorization is not updated
    renewed = query_auth(state, back.auth_code)["authorizer_refresh_token"]
    assert renewed != info["authorizer_refresh_token"]


def test_unauthorize_needs_known_things(state: MockWeChat) -> None:
    acct = account(state)
    assert rule_of(lambda: state.authorizations.unauthorize(OTHER, acct.appid)).code == "component"
    with pytest.raises(AuthRuleError) as info:
        state.authorizations.unauthorize(APPID, "wx0000000000000000")
    assert info.value.refusal is Refusal.UNKNOWN
    again = rule_of(lambda: state.authorizations.unauthorize(APPID, acct.appid))
    assert again.refusal is Refusal.CONFLICT


def test_update_authorization(state: MockWeChat) -> None:
    acct = account(state)
    info = query_auth(state, confirm(state, acct, [1]).auth_code)
    done = state.authorizations.update_authorization(APPID, acct.appid, [1, 2, 7])
    message = message_of(done)
    assert isinstance(message, UpdateAuthorized)
    assert message.authorization_code == done.auth_code and message.pre_auth_code is None
    assert "<PreAuthCode><![CDATA[]]></PreAuthCode>" in done.notice.push.message
    updated = query_auth(state, done.auth_code)
    assert [f["funcscope_category"]["id"] for f in updated["func_info"]] == [1, 2, 7]
    assert updated["authorizer_refresh_token"] == info["authorizer_refresh_token"]

    update = state.authorizations.update_authorization
    assert rule_of(lambda: update(APPID, acct.appid, [])).code == "categories"
    assert rule_of(lambda: update(APPID, acct.appid, [17])).code == "categories"  # a mini set
    stranger = account(state)
    assert rule_of(lambda: update(APPID, stranger.appid, [1])).refusal is Refusal.CONFLICT


def test_account_view_lists_each_components_authorization(state: MockWeChat) -> None:
    state.register_component(component(OTHER))
    acct = account(state)
    confirm(state, acct, [1])
    request = AuthRequest(OTHER, pre_auth_code(state, OTHER), None)
    state.authorizations.authorize(request, acct.appid, category_ids=[2])
    view = state.authorizations.account_view(acct.appid)
    assert view["appid"] == acct.appid and view["admin"] == "alice"
    assert [(g["component_appid"], g["func_info"]) for g in view["authorizations"]] == [
        (APPID, [1]),
        (OTHER, [2]),
    ]
    assert not any(word in str(view) for word in ("pre_auth_code", "auth_code", "refresh"))
