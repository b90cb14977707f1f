"""Scene 2: every authorizer of the deployment against GROUP_OPEN_APPID, on the real
Firestore emulator, WeChat's open/* APIs faked in-process (tests/service/open_wechat.py)."""

from __future__ import annotations

import time

import pytest

from service.open_account_group import GroupPolicy, OpenAccountGroup, State
from service.open_accounts import OpenAccountManager
from service.store.firestore import FirestoreStore
from service.store.records import AuthorizerRecord, AuthorizerStatus
from tests.service.open_wechat import FakeOpenWeChat, Fault

C1 = "wx00000000000000c1"
C2 = "wx00000000000000c2"
PRINCIPAL = "示例集团有限公司"


def appid(n: int) -> str:
    return f"wx{n:016x}"


def stored(
    store: FirestoreStore,
    component: str,
    account: str,
    status: AuthorizerStatus = AuthorizerStatus.AUTHORIZED,
    release_test: bool = False,
) -> None:
    record = AuthorizerRecord(
        release_test=release_test,
        component_appid=component,
        appid=account,
        status=status.value,
        account_type="official_account",
        nick_name=f"号 {account[-2:]}",
        principal_name=PRINCIPAL,
        authorized_at=time.time(),
        refresh_token="refresh",
    )
    store.modify_authorizer(component, account, lambda _: record)


@pytest.fixture
def wechat() -> FakeOpenWeChat:
    return FakeOpenWeChat()


def group_of(
    store: FirestoreStore, wechat: FakeOpenWeChat, open_appid: str, **policy: int
) -> OpenAccountGroup:
    manager = OpenAccountManager(wechat, sleep=lambda _: None)
    return OpenAccountGroup(store, manager, (C1, C2), open_appid, GroupPolicy(**policy))


def authorized(
    store: FirestoreStore, wechat: FakeOpenWeChat, n: int, *components: str, **kw: str
) -> str:
    account = wechat.account(appid(n), kw.get("principal", PRINCIPAL), components)
    for component in components:
        stored(store, component, account)
    return account


def test_the_report_sorts_every_account_once_across_components(
    store: FirestoreStore, wechat: FakeOpenWeChat
) -> None:
    hq = authorized(store, wechat, 1, C1)
    group = wechat.website_account(PRINCIPAL)
    wechat.opens[group] = (PRINCIPAL, True)  # made through the API, by hq's earlier create
    wechat.bound[hq] = group
    both = authorized(store, wechat, 2, C1, C2)  # one account, two components: asked once
    elsewhere = authorized(store, wechat, 3, C2)
    theirs = wechat.website_account(PRINCIPAL, elsewhere)
    # No permission set through C1: asked through C2.
    late = authorized(store, wechat, 4, C1, C2)
    wechat.granted[(C1, late)] = False
    # Nobody may ask: unchecked, with the reason.
    mute = authorized(store, wechat, 5, C1)
    wechat.granted[(C1, mute)] = False
    # Must authorize again: no token to ask with, and no call made.
    stale = wechat.account(appid(6), PRINCIPAL)
    stored(store, C2, stale, AuthorizerStatus.NEEDS_REAUTHORIZATION)
    # Left: not the group's concern, not listed.
    gone = wechat.account(appid(7), PRINCIPAL)
    stored(store, C1, gone, AuthorizerStatus.REVOKED)
    # One of WeChat's 全网发布 test accounts: not the group's either.
    tester = authorized(store, wechat, 8, C2)
    stored(store, C2, tester, release_test=True)

    report = group_of(store, wechat, group).report()
    body = report.to_json()
    assert body["clean"] is False
    assert body["counts"] == {
        "accounts": 6,
        "bound": 1,
        "bound_elsewhere": 1,
        "unbound": 2,
        "unchecked": 2,
    }
    assert body["bound"] == [hq]
    assert [(a["appid"], a["open_appid"]) for a in body["bound_elsewhere"]] == [(elsewhere, theirs)]
    assert [(a["appid"], a["components"]) for a in body["unbound"]] == [
        (both, [C1, C2]),
        (late, [C1, C2]),
    ]
    assert report.accounts[late].checked_via == C2
    unchecked = {a["appid"]: a for a in body["unchecked"]}
    assert set(unchecked) == {mute, stale}
    assert unchecked[mute]["errcode"] == 61007 and "开放平台帐号管理" in unchecked[mute]["reason"]
    assert "authorize again" in unchecked[stale]["reason"]
    # One open/get per account asked, the 61007 one through C1 and again through C2.
    gets = wechat.api_calls("open/get")
    assert sorted(a for _, _, a in gets) == sorted([hq, both, elsewhere, late, late, mute])
    assert body["asked"] == 6
    assert [c for c in wechat.calls if c[0] != "open/get"] == []


def test_bind_unbound_binds_only_the_unbound_and_never_touches_the_others(
    store: FirestoreStore, wechat: FakeOpenWeChat
) -> None:
    hq = authorized(store, wechat, 1, C1)
    group = wechat.website_account(PRINCIPAL)
    wechat.opens[group] = (PRINCIPAL, True)
    wechat.bound[hq] = group
    first = authorized(store, wechat, 2, C1, C2)
    second = authorized(store, wechat, 3, C2)
    elsewhere = authorized(store, wechat, 4, C1)
    theirs = wechat.website_account(PRINCIPAL, elsewhere)
    other = authorized(store, wechat, 5, C1, principal="另一家有限公司")

    binding = group_of(store, wechat, group).bind_unbound().to_json()
    assert [(b["appid"], b["result"]) for b in binding["bound"]] == [
        (first, "bound"),
        (second, "bound"),
    ]
    assert [(f["appid"], f["errcode"]) for f in binding["failed"]] == [(other, 89001)]
    assert "主体" in binding["failed"][0]["meaning_zh"]
    assert [a["appid"] for a in binding["bound_elsewhere"]] == [elsewhere]
    assert wechat.bound == {hq: group, first: group, second: group, elsewhere: theirs}
    assert wechat.api_calls("open/unbind") == []
    assert [a for _, _, a in wechat.api_calls("open/bind")] == [first, second, other]

    after = group_of(store, wechat, group).report().to_json()
    assert after["counts"]["bound"] == 3 and after["counts"]["unbound"] == 1


def test_an_account_bound_to_the_group_meanwhile_counts_as_bound(
    store: FirestoreStore, wechat: FakeOpenWeChat
) -> None:
    group = wechat.website_account(PRINCIPAL)
    wechat.opens[group] = (PRINCIPAL, True)
    account = authorized(store, wechat, 1, C1)
    # Another bind-unbound won the race: WeChat bound it, and answers this one 89000.
    raced = {"errcode": 89000, "errmsg": "account has bound open"}
    wechat.faults.append(Fault("open/bind", answer=raced, processed=True))
    binding = group_of(store, wechat, group).bind_unbound().to_json()
    assert binding["bound"] == [
        {"appid": account, "component_appid": C1, "result": "already_bound", "recovered": False}
    ]
    assert binding["failed"] == [] and wechat.bound[account] == group


def test_a_full_group_account_stops_the_rest_without_calls(
    store: FirestoreStore, wechat: FakeOpenWeChat
) -> None:
    group = wechat.website_account(PRINCIPAL)
    wechat.opens[group] = (PRINCIPAL, True)
    for n in range(100):
        wechat.bound[f"wxfe{n:014x}"] = group
    waiting = [authorized(store, wechat, n, C1) for n in (1, 2, 3)]
    binding = group_of(store, wechat, group).bind_unbound().to_json()
    assert binding["bound"] == []
    assert [(f["appid"], f["errcode"], f["tried"]) for f in binding["failed"]] == [
        (waiting[0], 89004, True),
        (waiting[1], 89004, False),
        (waiting[2], 89004, False),
    ]
    assert binding["failed"][1]["error"].startswith("not tried: ")
    assert len(wechat.api_calls("open/bind")) == 1


def test_the_report_pages_through_the_store_with_bounded_concurrency(
    store: FirestoreStore, wechat: FakeOpenWeChat
) -> None:
    group = wechat.website_account(PRINCIPAL)
    wechat.opens[group] = (PRINCIPAL, True)
    accounts = [authorized(store, wechat, n, C1) for n in range(1, 24)]
    wechat.latency = 0.02
    report = group_of(store, wechat, group, concurrency=4, page_size=5).report()
    assert sorted(report.accounts) == accounts
    assert [a.appid for a in report.of_state(State.UNBOUND)] == accounts
    assert 2 <= wechat.most_in_flight <= 4
