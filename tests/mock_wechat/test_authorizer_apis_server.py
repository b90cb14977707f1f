"""Authorization management, quotas and calls on an authorizer's behalf, over real HTTP.

The mock runs as a process (one per module, reset per test). The component holds its
authorization pushes (``auth_push: "hold"``), so nothing is delivered anywhere.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from tests.mock_wechat.helpers import APPID, OTHER, SECRET, MockClient

EVENTS = "http://127.0.0.1:9/events"
MESSAGES = "http://127.0.0.1:9/messages/$APPID$"  # nothing listens: every try fails at once


class Platform:
    """One registered component with a token, and helpers to authorize merchants."""

    def __init__(self, mock: MockClient, appid: str = APPID) -> None:
        self.mock = mock
        self.appid = appid
        mock.register(EVENTS, appid=appid, auth_push="hold", message_url=MESSAGES)
        self.token = mock.component_token(appid)

    def component(self, name: str, **body: Any) -> dict[str, Any]:
        """A component API with the component token and ``component_appid``."""
        query = {"component_access_token": self.token}
        answer: dict[str, Any] = self.mock.api(
            name, {"component_appid": self.appid, **body}, query
        ).json()
        return answer

    def account(self, kind: str = "official_account", principal: str = "某某有限公司") -> str:
        body = {"type": kind, "nick_name": "测试号", "principal_name": principal, "admin": "alice"}
        created = self.mock.post("/_mock/accounts", body)
        appid: str = created["appid"]
        return appid

    def authorize(self, appid: str, sets: list[int]) -> str:
        code = self.component("api_create_preauthcode")["pre_auth_code"]
        body = {
            "component_appid": self.appid,
            "pre_auth_code": code,
            "authorizer_appid": appid,
            "category_ids": sets,
        }
        auth_code: str = self.mock.post("/_mock/authorize", body)["auth_code"]
        return auth_code

    def exchange(self, code: str) -> dict[str, Any]:
        info: dict[str, Any] = self.component("api_query_auth", authorization_code=code)[
            "authorization_info"
        ]
        return info

    def authorizer_token(self, appid: str, sets: list[int]) -> str:
        token: str = self.exchange(self.authorize(appid, sets))["authorizer_access_token"]
        return token

    def on_behalf(
        self, path: str, token: str | None, body: Any = None, method: str = "POST"
    ) -> dict[str, Any]:
        """An authorizer API with ``?access_token=``."""
        params = {"access_token": token} if token is not None else {}
        response = requests.request(
            method, self.mock.base + path, params=params, json=body, timeout=10
        )
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def user_writes(self, appid: str, openid: str) -> dict[str, Any]:
        """``openid`` sends the account a text: the customer-service window opens."""
        body = {"component_appid": self.appid, "msg_type": "text", "from_user": openid}
        record: dict[str, Any] = self.mock.post(f"/_mock/authorizers/{appid}/messages", body)
        return record

    def advance(self, seconds: float) -> None:
        self.mock.post("/_mock/clock", {"advance": seconds})


@pytest.fixture
def platform(mock: MockClient) -> Platform:
    return Platform(mock)


def errcode(answer: dict[str, Any]) -> int:
    return int(answer.get("errcode", 0))


# ----- api_get_authorizer_list and options ------------------------------------------------


def test_authorizer_list_pages_with_empty_refresh_token_before_the_exchange(
    platform: Platform,
) -> None:
    first, second, third = (platform.account() for _ in range(3))
    code = platform.authorize(first, [1])
    platform.advance(10)
    platform.authorize(second, [1])
    platform.advance(10)
    platform.authorize(third, [1])

    page = platform.component("api_get_authorizer_list", offset=0, count=2)
    assert page["total_count"] == 3
    assert [(i["authorizer_appid"], i["refresh_token"]) for i in page["list"]] == [
        (first, ""),
        (second, ""),
    ]
    assert page["list"][1]["auth_time"] - page["list"][0]["auth_time"] in (9, 10, 11)
    refresh = platform.exchange(code)["authorizer_refresh_token"]
    again = platform.component("api_get_authorizer_list", offset=0, count=2)
    assert again["list"][0]["refresh_token"] == refresh
    rest = platform.component("api_get_authorizer_list", offset=2, count=500)
    assert [i["authorizer_appid"] for i in rest["list"]] == [third]
    assert errcode(platform.component("api_get_authorizer_list", offset=0, count=501)) == 47001


def test_options_get_set_and_invalid(platform: Platform) -> None:
    appid = platform.account()
    token = platform.authorizer_token(appid, [1])
    ask = {"authorizer_appid": appid}
    got = platform.component("api_get_authorizer_option", option_name="voice_recognize", **ask)
    assert got == {"authorizer_appid": appid, "option_name": "voice_recognize", "option_value": "0"}
    set_ = platform.component(
        "api_set_authorizer_option", option_name="voice_recognize", option_value="1", **ask
    )
    assert set_ == {"errcode": 0, "errmsg": "ok"}
    newer = platform.on_behalf(
        "/cgi-bin/component/get_authorizer_option", token, {"option_name": "voice_recognize"}
    )
    assert (newer["errcode"], newer["option_value"]) == (0, "1")
    platform.on_behalf(
        "/cgi-bin/component/set_authorizer_option",
        token,
        {"option_name": "location_report", "option_value": "2"},
    )
    got = platform.component("api_get_authorizer_option", option_name="location_report", **ask)
    assert got["option_value"] == "2"

    bad_name = platform.component("api_get_authorizer_option", option_name="colour", **ask)
    assert errcode(bad_name) == 61012
    bad_value = platform.component(
        "api_set_authorizer_option", option_name="location_report", option_value="3", **ask
    )
    assert errcode(bad_value) == 61013
    stranger = platform.component(
        "api_get_authorizer_option", authorizer_appid=platform.account(), option_name="x"
    )
    assert errcode(stranger) == 61003


# ----- quotas ----------------------------------------------------------------------------


def test_quota_hit_is_45009_until_clear_quota(platform: Platform) -> None:
    mock = platform.mock
    appid = platform.account()
    platform.authorize(appid, [1])
    rules = mock.post("/_mock/quotas", {"rules": [{"api": "api_get_authorizer_info", "limit": 2}]})
    assert rules["rules"] == [{"api": "api_get_authorizer_info", "limit": 2, "appid": None}]
    answers = [
        platform.component("api_get_authorizer_info", authorizer_appid=appid) for _ in range(3)
    ]
    assert [errcode(a) for a in answers] == [0, 0, 45009]
    assert " rid: " in answers[2]["errmsg"]
    usage = mock.get("/_mock/quotas")["usage"]
    assert {"api": "api_get_authorizer_info", "appid": APPID, "count": 2, "limit": 2} in usage
    logged = mock.get("/_mock/calls?api=api_get_authorizer_info")["calls"]
    assert [(c["appid"], c["errcode"]) for c in logged][-1] == (APPID, 45009)

    cleared = mock.api("clear_quota/v2", {"component_appid": APPID, "appsecret": SECRET}).json()
    assert cleared == {"errcode": 0, "errmsg": "ok"}
    assert errcode(platform.component("api_get_authorizer_info", authorizer_appid=appid)) == 0
    assert mock.get("/_mock/calls?api=component_clear_quota_v2")["calls"][0]["appid"] == APPID

    # The authorizer's own quota, reset with its own token at /cgi-bin/clear_quota.
    token = platform.authorizer_token(appid, [1])
    mock.post("/_mock/quotas", {"rules": [{"api": "getaccountbasicinfo", "limit": 0}]})
    basic = platform.on_behalf("/cgi-bin/account/getaccountbasicinfo", token, method="GET")
    assert errcode(basic) == 45009
    assert errcode(platform.on_behalf("/cgi-bin/clear_quota", token, {"appid": appid})) == 0
    clears = mock.get("/_mock/quotas")["clears"]
    assert sorted(clears, key=lambda c: c["appid"] != APPID) == [
        {"appid": APPID, "count": 1, "left": 9},
        {"appid": appid, "count": 1, "left": 9},
    ]

    cleared_all = requests.delete(mock.base + "/_mock/quotas", timeout=5).json()
    assert cleared_all["rules"] == [] and cleared_all["usage"] == []


def test_quotas_reset_at_midnight_beijing_time(platform: Platform) -> None:
    mock = platform.mock
    mock.post("/_mock/quotas", {"rules": [{"api": "api_create_preauthcode", "limit": 1}]})
    assert errcode(platform.component("api_create_preauthcode")) == 0
    assert errcode(platform.component("api_create_preauthcode")) == 45009
    view = mock.get("/_mock/quotas")
    now = mock.get("/_mock/clock")["now"]
    platform.advance(view["resets_at"] - now + 0.5)
    platform.token = mock.component_token()  # the old one expired on the way, perhaps
    assert errcode(platform.component("api_create_preauthcode")) == 0
    later = mock.get("/_mock/quotas")
    assert later["day"] > view["day"] and later["resets_at"] == view["resets_at"] + 86400


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({}, "rules"),
        ({"rules": [{"api": "nope", "limit": 1}]}, "rules[0].api"),
        ({"rules": [{"api": "open_get"}]}, "rules[0].limit"),
        ({"rules": [{"api": "open_get", "limit": -1}]}, "rules[0].limit"),
        ({"rules": [{"api": "open_get", "limit": 1}, {"api": "open_get", "limit": 2}]}, "rules[1]"),
    ],
)
def test_bad_quota_rules_are_400_and_change_nothing(
    mock: MockClient, body: dict[str, Any], reason: str
) -> None:
    mock.post("/_mock/quotas", {"rules": [{"api": "open_get", "limit": 5}]})
    response = requests.post(mock.base + "/_mock/quotas", json=body, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"].startswith(reason)
    assert mock.get("/_mock/quotas")["rules"] == [{"api": "open_get", "limit": 5, "appid": None}]


# ----- calls on an authorizer's behalf ---------------------------------------------------


def test_authorizer_token_checks_over_http(platform: Platform) -> None:
    appid = platform.account()
    old = platform.authorizer_token(appid, [1, 24])
    new = platform.authorizer_token(appid, [1, 24])
    path = "/cgi-bin/account/getaccountbasicinfo"
    assert errcode(platform.on_behalf(path, None, method="GET")) == 41001
    assert errcode(platform.on_behalf(path, "12_nope", method="GET")) == 40001
    info = platform.on_behalf(path, old, method="GET")
    assert (info["errcode"], info["appid"], info["account_type"]) == (0, appid, 2)
    platform.advance(301)
    assert errcode(platform.on_behalf(path, old, method="GET")) == 40001
    assert errcode(platform.on_behalf(path, new)) == 0  # POST is answered too
    assert errcode(platform.on_behalf("/cgi-bin/wxopen/getcategory", new, method="GET")) == 61007
    platform.advance(7200 - 301)
    assert errcode(platform.on_behalf(path, new, method="GET")) == 42001
    calls = platform.mock.get("/_mock/calls?api=getaccountbasicinfo")["calls"]
    assert [c["appid"] for c in calls] == [None, None, appid, None, appid, None]
    wrong_method = requests.post(platform.mock.base + "/wxa/get_category", timeout=5)
    assert wrong_method.status_code == 405


def test_categories_and_custom_messages(platform: Platform) -> None:
    mini = platform.account("mini_program")
    token = platform.authorizer_token(mini, [18, 19])
    wxopen = platform.on_behalf("/cgi-bin/wxopen/getcategory", token, method="GET")
    assert wxopen["categories"][0]["second_name"] == "丽人服务"
    wxa = platform.on_behalf("/wxa/get_category", token, method="GET")
    assert wxa["category_list"][0]["first_class"] == "生活服务"
    message = {"touser": "oUser", "msgtype": "text", "text": {"content": "hello"}}
    path = "/cgi-bin/message/custom/send"
    assert errcode(platform.on_behalf(path, token, message)) == 45015  # oUser never wrote
    written = platform.user_writes(mini, "oUser")
    assert (written["outcome"], len(written["tries"])) == ("no_answer", 3)
    sent = platform.on_behalf(path, token, message)
    assert sent == {"errcode": 0, "errmsg": "ok"}
    [logged] = platform.mock.get("/_mock/messages")["messages"]
    assert (logged["authorizer_appid"], logged["text"]) == (mini, {"content": "hello"})


def test_open_account_codes_over_http(platform: Platform) -> None:
    mock = platform.mock
    oa, mini = platform.account(), platform.account("mini_program")
    stranger = platform.account("mini_program", principal="别的公司")
    website_member = platform.account()
    t_oa, t_mini = platform.authorizer_token(oa, [24]), platform.authorizer_token(mini, [25])
    t_stranger = platform.authorizer_token(stranger, [25])
    t_member = platform.authorizer_token(website_member, [24])

    assert errcode(platform.on_behalf("/cgi-bin/open/get", t_oa, {})) == 89002
    created = platform.on_behalf("/cgi-bin/open/create", t_oa, {"appid": oa})
    open_appid = created["open_appid"]
    assert errcode(platform.on_behalf("/cgi-bin/open/create", t_oa, {})) == 89000
    bind = {"open_appid": open_appid}
    assert errcode(platform.on_behalf("/cgi-bin/open/bind", t_mini, bind)) == 0
    assert errcode(platform.on_behalf("/cgi-bin/open/bind", t_mini, bind)) == 89000
    assert errcode(platform.on_behalf("/cgi-bin/open/bind", t_stranger, bind)) == 89001
    assert platform.on_behalf("/cgi-bin/open/get", t_mini, {})["open_appid"] == open_appid
    assert errcode(platform.on_behalf("/cgi-bin/open/unbind", t_mini, bind)) == 0
    assert errcode(platform.on_behalf("/cgi-bin/open/get", t_mini, {})) == 89002

    response = requests.post(
        mock.base + "/_mock/open-accounts",
        json={"principal_name": "某某有限公司", "appids": [website_member]},
        timeout=5,
    )
    assert response.status_code == 201, response.text
    website = response.json()
    assert website["created_via_api"] is False and website["appids"] == [website_member]
    on_website = {"open_appid": website["open_appid"]}
    assert errcode(platform.on_behalf("/cgi-bin/open/bind", t_mini, on_website)) == 89003
    assert errcode(platform.on_behalf("/cgi-bin/open/unbind", t_member, on_website)) == 89003
    listed = mock.get("/_mock/open-accounts")["open_accounts"]
    assert [(a["open_appid"], a["appids"]) for a in listed] == [
        (open_appid, [oa]),
        (website["open_appid"], [website_member]),
    ]
    taken = requests.post(
        mock.base + "/_mock/open-accounts",
        json={"principal_name": "x", "appids": [oa]},
        timeout=5,
    )
    assert taken.status_code == 409
    unknown = requests.post(
        mock.base + "/_mock/open-accounts",
        json={"principal_name": "x", "appids": ["wx0000000000000000"]},
        timeout=5,
    )
    assert unknown.status_code == 404
    calls = mock.get("/_mock/calls?api=open_bind")["calls"]
    assert [c["appid"] for c in calls] == [mini, mini, stranger, mini]


def test_faults_apply_to_authorizer_apis(platform: Platform) -> None:
    mock = platform.mock
    appid = platform.account()
    token = platform.authorizer_token(appid, [1])
    platform.user_writes(appid, "oUser")
    mock.post(
        "/_mock/faults", {"rules": [{"api": "message_custom_send", "errcode": -1, "times": 1}]}
    )
    message = {"touser": "oUser", "msgtype": "text", "text": {"content": "hi"}}
    assert errcode(platform.on_behalf("/cgi-bin/message/custom/send", token, message)) == -1
    assert errcode(platform.on_behalf("/cgi-bin/message/custom/send", token, message)) == 0
    calls = mock.get("/_mock/calls?api=message_custom_send")["calls"]
    assert [(c["appid"], c["errcode"], c["fault"]) for c in calls] == [
        (appid, -1, True),
        (appid, 0, False),
    ]
    assert len(mock.get("/_mock/messages")["messages"]) == 1


# ----- api_authorizer_token latency ------------------------------------------------------


def test_authorizer_token_latency_and_delay_faults(platform: Platform) -> None:
    mock = platform.mock
    appid = platform.account()
    refresh = platform.exchange(platform.authorize(appid, [1]))["authorizer_refresh_token"]
    body = {"authorizer_appid": appid, "authorizer_refresh_token": refresh}

    def timed() -> float:
        started = time.monotonic()
        answer = platform.component("api_authorizer_token", **body)
        assert "authorizer_access_token" in answer, answer
        return time.monotonic() - started

    response = requests.patch(
        f"{mock.base}/_mock/components/{APPID}", json={"authorizer_token_latency": 0.25}, timeout=5
    )
    assert response.status_code == 200 and response.json()["authorizer_token_latency"] == 0.25
    assert timed() >= 0.25
    started = time.monotonic()
    platform.component("api_get_authorizer_info", authorizer_appid=appid)
    assert time.monotonic() - started < 0.25  # only api_authorizer_token waits

    requests.patch(
        f"{mock.base}/_mock/components/{APPID}", json={"authorizer_token_latency": 0}, timeout=5
    )
    mock.post("/_mock/faults", {"rules": [{"api": "api_authorizer_token", "delay": 0.2}]})
    assert timed() >= 0.2
    bad = requests.patch(
        f"{mock.base}/_mock/components/{APPID}", json={"authorizer_token_latency": -1}, timeout=5
    )
    assert bad.status_code == 400 and bad.json()["error"].startswith("authorizer_token_latency")


# ----- seeded authorizers and late answers -----------------------------------------------


def seed(mock: MockClient, body: Any, component: str = APPID) -> requests.Response:
    return requests.post(
        f"{mock.base}/_mock/components/{component}/authorizers/seed", json=body, timeout=30
    )


def test_seeding_thousands_of_authorizers_is_fast_and_they_work(platform: Platform) -> None:
    started = time.monotonic()
    response = seed(platform.mock, {"count": 5000})
    elapsed = time.monotonic() - started
    assert response.status_code == 201, response.text
    assert elapsed < 2.0, f"seeding 5000 took {elapsed:.2f}s"
    seeded = response.json()["authorizers"]
    assert len(seeded) == 5000 and len({s["authorizer_appid"] for s in seeded}) == 5000
    listed = platform.component("api_get_authorizer_list", offset=0, count=500)
    assert listed["total_count"] == 5000
    refresh = {s["authorizer_appid"]: s["refresh_token"] for s in seeded}
    assert all(refresh[i["authorizer_appid"]] == i["refresh_token"] for i in listed["list"])

    last = seeded[-1]
    answer = platform.component(
        "api_authorizer_token",
        authorizer_appid=last["authorizer_appid"],
        authorizer_refresh_token=last["refresh_token"],
    )
    info = platform.on_behalf(
        "/cgi-bin/account/getaccountbasicinfo", answer["authorizer_access_token"]
    )
    assert info["appid"] == last["authorizer_appid"]
    pushes = platform.mock.get("/_mock/pushes")["pushes"]
    assert [p["info_type"] for p in pushes] == ["component_verify_ticket"]  # no authorized
    assert platform.mock.get("/_mock/pushes/held")["held"] == []


def test_seeding_mini_programs(platform: Platform) -> None:
    response = seed(platform.mock, {"count": 2, "type": "mini_program"})
    assert response.status_code == 201
    appid = response.json()["authorizers"][0]["authorizer_appid"]
    assert platform.mock.get(f"/_mock/accounts/{appid}")["type"] == "mini_program"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"count": 0}, "count"),
        ({"count": 20_001}, "count"),
        ({"count": "10"}, "count"),
        ({}, "count"),
        ({"count": 1, "type": "channels"}, "type"),
        ([], "body"),
    ],
)
def test_bad_seed_input_is_400_and_seeds_nothing(
    platform: Platform, body: Any, reason: str
) -> None:
    response = seed(platform.mock, body)
    assert response.status_code == 400
    assert response.json()["error"].startswith(reason), response.json()
    assert platform.mock.get("/_mock/accounts")["accounts"] == []


def test_seeding_an_unknown_component_is_404(platform: Platform) -> None:
    response = seed(platform.mock, {"count": 1}, component="wx00000000000000aa")
    assert response.status_code == 404 and "wx00000000000000aa" in response.json()["error"]


def test_delay_after_rotates_even_when_the_client_times_out(platform: Platform) -> None:
    mock = platform.mock
    response = requests.patch(
        f"{mock.base}/_mock/components/{APPID}", json={"rotate_refresh_tokens": True}, timeout=5
    )
    assert response.status_code == 200
    [seeded] = seed(mock, {"count": 1}).json()["authorizers"]
    appid, old = seeded["authorizer_appid"], seeded["refresh_token"]
    rule = {"api": "api_authorizer_token", "delay_after": 1.5, "times": 1}
    mock.post("/_mock/faults", {"rules": [rule]})
    body = {"component_appid": APPID, "authorizer_appid": appid, "authorizer_refresh_token": old}
    query = {"component_access_token": platform.token}

    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        mock.api("api_authorizer_token", body, query, timeout=0.4)
    assert time.monotonic() - started < 1.5  # the client gave up before the answer

    def listed() -> str:
        page = platform.component("api_get_authorizer_list", offset=0, count=1)
        token: str = page["list"][0]["refresh_token"]
        return token

    # WeChat rotated while the client waited: only the list tells the client so.
    new = listed()
    assert new != old and new.startswith("refreshtoken@@@")
    [call] = mock.get("/_mock/calls?api=api_authorizer_token")["calls"]
    assert (call["errcode"], call["http_status"]) == (0, 200)

    # The old refresh token works within the 300 s overlap, and rotates again.
    again = platform.component(
        "api_authorizer_token", authorizer_appid=appid, authorizer_refresh_token=old
    )
    assert "authorizer_access_token" in again, again
    newest = again["authorizer_refresh_token"]
    assert newest not in (old, new) and listed() == newest
    platform.advance(301)  # the overlap of the token the timed-out call rotated in is over
    stale = platform.component(
        "api_authorizer_token", authorizer_appid=appid, authorizer_refresh_token=new
    )
    assert errcode(stale) == 61023
    fresh = platform.component(
        "api_authorizer_token", authorizer_appid=appid, authorizer_refresh_token=newest
    )
    assert "authorizer_access_token" in fresh


def test_delay_after_answers_late_and_with_drop_loses_the_processed_answer(
    platform: Platform,
) -> None:
    mock = platform.mock
    [seeded] = seed(mock, {"count": 1}).json()["authorizers"]
    body = {
        "component_appid": APPID,
        "authorizer_appid": seeded["authorizer_appid"],
        "authorizer_refresh_token": seeded["refresh_token"],
    }
    query = {"component_access_token": platform.token}
    rules = [
        {"api": "api_authorizer_token", "delay_after": 0.3, "times": 1},
        {"api": "api_authorizer_token", "delay_after": 0.3, "drop": True, "times": 1},
    ]
    assert mock.post("/_mock/faults", {"rules": rules})["rules"][0]["delay_after"] == 0.3

    started = time.monotonic()
    late = mock.api("api_authorizer_token", body, query)
    assert time.monotonic() - started >= 0.3
    assert "authorizer_access_token" in late.json()
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        mock.api("api_authorizer_token", body, query)
    assert time.monotonic() - started >= 0.3
    calls = mock.get("/_mock/calls?api=api_authorizer_token")["calls"]
    assert [(c["errcode"], c["http_status"], c["fault"]) for c in calls] == [
        (0, 200, False),
        (0, None, True),  # processed (a new token was issued), answer never sent
    ]
    # The dropped call's token superseded the one answered before it.
    first = late.json()["authorizer_access_token"]
    platform.advance(301)
    stale = platform.on_behalf("/cgi-bin/account/getaccountbasicinfo", first)
    assert errcode(stale) == 40001


# ----- open platform accounts (the seeds' scenes 1 and 2) ----------------------------------


def test_open_accounts_across_two_components_over_http(mock: MockClient) -> None:
    """Scene 1: a component creates the merchant's own open platform account and binds a
    second account of the same principal. Scene 2: a group's accounts, authorized to
    different components, all end on that one open platform account."""
    first, second = Platform(mock), Platform(mock, OTHER)
    oa, mp, stranger, bare = (
        first.account(),
        first.account("mini_program"),
        first.account("mini_program", principal="别的公司"),
        first.account("mini_program"),
    )
    oa_token = first.authorizer_token(oa, [1, 24])
    mp_token = second.authorizer_token(mp, [19, 25])  # authorized to the other component
    stranger_token = second.authorizer_token(stranger, [25])
    bare_token = second.authorizer_token(bare, [19])  # no set 25

    def on_behalf(name: str, token: str, **body: Any) -> dict[str, Any]:
        return first.on_behalf(f"/cgi-bin/open/{name}", token, body)

    assert errcode(on_behalf("get", oa_token)) == 89002
    created = on_behalf("create", oa_token, appid=oa)
    group = created["open_appid"]
    assert created == {"errcode": 0, "errmsg": "ok", "open_appid": group}
    assert errcode(on_behalf("bind", stranger_token, open_appid=group)) == 89001
    assert errcode(on_behalf("bind", bare_token, open_appid=group)) == 61007
    assert errcode(on_behalf("bind", mp_token, open_appid=group)) == 0
    assert errcode(on_behalf("bind", mp_token, open_appid=group)) == 89000
    assert on_behalf("get", mp_token)["open_appid"] == group
    [listed] = mock.get("/_mock/open-accounts")["open_accounts"]
    assert (listed["open_appid"], listed["appids"], listed["created_via_api"]) == (
        group,
        [oa, mp],
        True,
    )
    website = mock.post("/_mock/open-accounts", {"principal_name": "某某有限公司"})
    assert errcode(on_behalf("unbind", mp_token, open_appid=website["open_appid"])) == 89003
    assert errcode(on_behalf("unbind", mp_token, open_appid=group)) == 0
    assert errcode(on_behalf("get", mp_token)) == 89002
    calls = mock.get("/_mock/calls?api=open_bind")["calls"]
    assert [(c["appid"], c["errcode"]) for c in calls] == [
        (stranger, 89001),
        (bare, 61007),
        (mp, 0),
        (mp, 89000),
    ]
