"""The internal API for authorizers, end to end: list, token errors, the proxy (§8),
options (§3.8), sync with WeChat's list (§3.7) and quota resets (§3.9)."""

from __future__ import annotations

import http.client
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from service.store.records import AuthorizerRecord
from tests.e2e.helpers import (
    advance_mock_clock,
    authorized_merchant,
    authorizer_url,
    call_wechat,
    confirm_authorization,
    create_merchant,
    proxy,
    put,
    request_token,
    stored_authorizer,
    sync,
    token_calls,
    token_of,
    wechat_refresh_tokens,
)
from tests.stack import Stack

pytestmark = pytest.mark.e2e

BASIC_INFO = "cgi-bin/account/getaccountbasicinfo"
UNKNOWN_APPID = "wx00000000000000ff"


def api_get(stack: Stack, path: str, **params: Any) -> requests.Response:
    return requests.get(
        f"{stack.service_url}/api/v1/components/{stack.demo.appid}{path}",
        params=params,
        headers=stack.auth,
        timeout=30,
    )


def mock_get(stack: Stack, path: str) -> Any:
    response = requests.get(f"{stack.mock_url}/_mock{path}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


# ----- listing -------------------------------------------------------------------------


def test_the_list_pages_and_filters_by_status_and_type(ready: Stack) -> None:
    oa = sorted(authorized_merchant(ready) for _ in range(3))
    mp = sorted(authorized_merchant(ready, "mini_program") for _ in range(2))
    assert ready.mock.unauthorize(oa[0], ready.demo.appid)["push"]["delivered"] is True

    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"page_size": 2} | ({"page_token": token} if token else {})
        page = api_get(ready, "/authorizers", **params)
        assert page.status_code == 200, page.text
        body = page.json()
        assert 1 <= len(body["authorizers"]) <= 2
        seen += [a["appid"] for a in body["authorizers"]]
        pages += 1
        token = body["next_page_token"]
        if token is None:
            break
    assert seen == sorted(oa + mp) and pages == 3
    listed = api_get(ready, "/authorizers").json()["authorizers"]
    assert all("access_token" not in a and "refresh_token" not in a for a in listed)
    assert all(a["has_refresh_token"] == (a["appid"] != oa[0]) for a in listed)

    def appids(**params: Any) -> list[str]:
        response = api_get(ready, "/authorizers", **params)
        assert response.status_code == 200, response.text
        return [a["appid"] for a in response.json()["authorizers"]]

    assert appids(status="revoked") == [oa[0]]
    assert appids(type="mini_program") == mp
    assert appids(status="authorized", type="official_account") == oa[1:]
    first = api_get(ready, "/authorizers", status="authorized", page_size=3).json()
    assert [a["appid"] for a in first["authorizers"]] == sorted(oa[1:] + mp)[:3]
    rest = appids(status="authorized", page_size=3, page_token=first["next_page_token"])
    assert rest == sorted(oa[1:] + mp)[3:]
    assert appids(status="needs_reauthorization") == []


@pytest.mark.parametrize(
    "params",
    [
        {"page_size": "0"},
        {"page_size": "501"},
        {"page_size": "-1"},
        {"page_size": "ten"},
        {"status": "active"},
        {"type": "website"},
        {"page_token": "not-an-appid"},
    ],
)
def test_the_list_refuses_bad_parameters(ready: Stack, params: dict[str, str]) -> None:
    response = api_get(ready, "/authorizers", **params)
    assert response.status_code == 400, response.text
    assert response.json()["error"]


def test_one_authorizer_and_the_token_api_refuse_bad_requests(ready: Stack, merchant: str) -> None:
    shown = api_get(ready, f"/authorizers/{merchant}")
    assert shown.status_code == 200 and shown.json()["status"] == "authorized"
    assert api_get(ready, f"/authorizers/{UNKNOWN_APPID}").status_code == 404
    assert api_get(ready, "/authorizers/not-an-appid").status_code == 400
    assert request_token(ready, UNKNOWN_APPID).status_code == 404
    assert request_token(ready, "wx123").status_code == 400
    url = authorizer_url(ready, merchant, "/token")
    for body in ({"invalid_token": 5}, {"invalid_token": ""}, [1]):
        response = requests.post(url, json=body, headers=ready.auth, timeout=10)
        assert response.status_code == 400, body
    assert requests.post(url, timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer wrong"}
    assert requests.post(url, headers=wrong, timeout=10).status_code == 403
    other = url.replace(ready.demo.appid, "wx0123456789abcdef")
    assert requests.post(other, headers=ready.auth, timeout=10).status_code == 404
    fresh = token_of(ready, merchant)
    assert fresh["outcome"] == "fresh" and fresh["expires_at"] > time.time() + 7000
    assert token_calls(ready) == []


# ----- the proxy (§8) ------------------------------------------------------------------


def test_the_proxy_passes_calls_and_bodies_through(ready: Stack, merchant: str) -> None:
    info = proxy(ready, merchant, BASIC_INFO)
    assert info.status_code == 200, info.text
    assert info.json()["errcode"] == 0 and info.json()["appid"] == merchant
    assert info.json()["principal_name"] == "测试公司"
    assert "X-Gateway-Token-Renewed" not in info.headers

    message = {"touser": "o-user-1", "msgtype": "text", "text": {"content": "你好, 世界"}}
    # Outside the user's 48 h window WeChat refuses (45015), and the proxy says so as is.
    refused = proxy(ready, merchant, "cgi-bin/message/custom/send", "POST", json=message)
    assert refused.status_code == 200 and refused.json()["errcode"] == 45015
    delivery = ready.mock.send_message(
        merchant, ready.demo.appid, content="在吗", from_user="o-user-1"
    )
    assert delivery["outcome"] == "success", delivery  # the gateway took the user's message
    sent = proxy(ready, merchant, "cgi-bin/message/custom/send", "POST", json=message)
    assert sent.status_code == 200 and sent.json() == {"errcode": 0, "errmsg": "ok"}
    messages = mock_get(ready, "/messages")["messages"]
    assert [(m["authorizer_appid"], m["touser"], m["text"]) for m in messages] == [
        (merchant, "o-user-1", {"content": "你好, 世界"})
    ]
    # WeChat's own errors come back as WeChat gave them.
    empty = proxy(ready, merchant, "cgi-bin/message/custom/send", "POST", json={"touser": "x"})
    assert empty.status_code == 200 and empty.json()["errcode"] == 40008
    assert len(mock_get(ready, "/messages")["messages"]) == 1
    assert token_calls(ready) == []


def test_the_proxy_manages_open_platform_accounts_scene_1(ready: Stack) -> None:
    oa = authorized_merchant(ready)
    mp = authorized_merchant(ready, "mini_program")
    stranger = authorized_merchant(ready, principal_name="另一家公司")

    def call(appid: str, api: str, **body: Any) -> dict[str, Any]:
        response = proxy(ready, appid, f"cgi-bin/open/{api}", "POST", json={"appid": appid} | body)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    assert call(mp, "get")["errcode"] == 89002  # bound to nothing yet
    created = call(oa, "create")
    assert created["errcode"] == 0
    open_appid = created["open_appid"]
    assert call(oa, "get") == {"errcode": 0, "errmsg": "ok", "open_appid": open_appid}
    assert call(oa, "create")["errcode"] == 89000  # already bound
    assert call(mp, "bind", open_appid=open_appid)["errcode"] == 0
    assert call(mp, "bind", open_appid=open_appid)["errcode"] == 89000
    assert call(stranger, "bind", open_appid=open_appid)["errcode"] == 89001
    assert call(mp, "get")["open_appid"] == open_appid
    assert call(mp, "unbind", open_appid=open_appid)["errcode"] == 0
    assert call(mp, "get")["errcode"] == 89002
    assert call(mp, "unbind", open_appid=open_appid)["errcode"] == 89002
    opened = mock_get(ready, "/open-accounts")["open_accounts"]
    assert [(o["open_appid"], o["appids"]) for o in opened] == [(open_appid, [oa])]


def test_a_missing_permission_set_passes_61007_through(ready: Stack) -> None:
    messages_only = authorized_merchant(ready, category_ids=[1])
    response = proxy(ready, messages_only, "cgi-bin/open/get", "POST", json={})
    assert response.status_code == 200 and response.json()["errcode"] == 61007
    assert "X-Gateway-Token-Renewed" not in response.headers
    # An official account cannot hold set 18; a mini program with every set can.
    assert proxy(ready, messages_only, "wxa/get_category").json()["errcode"] == 61007
    mini = authorized_merchant(ready, "mini_program")
    categories = proxy(ready, mini, "wxa/get_category")
    assert categories.status_code == 200 and categories.json()["errcode"] == 0
    assert categories.json()["category_list"][0]["first_class"] == "生活服务"
    assert token_calls(ready) == []


@pytest.mark.parametrize("rejection", [42001, 40001])
def test_a_token_wechat_rejects_is_renewed_once_and_the_call_repeated(
    ready: Stack, merchant: str, rejection: int
) -> None:
    before = stored_authorizer(ready, merchant)
    if rejection == 42001:
        advance_mock_clock(ready, 7201)  # WeChat's token has expired; ours looks valid
    else:
        # Renewed behind the service's back; the old token dies 300 s later (40001).
        renewed = call_wechat(
            ready,
            "api_authorizer_token",
            {
                "component_appid": ready.demo.appid,
                "authorizer_appid": merchant,
                "authorizer_refresh_token": before.refresh_token,
            },
        )
        assert renewed["authorizer_access_token"]
        advance_mock_clock(ready, 301)
    asked = len([c for c in token_calls(ready) if c["errcode"] == 0])

    response = proxy(ready, merchant, BASIC_INFO)
    assert response.status_code == 200, response.text
    assert response.json()["errcode"] == 0 and response.json()["appid"] == merchant
    assert response.headers.get("X-Gateway-Token-Renewed") == "1"
    assert [c["errcode"] for c in ready.mock.calls("getaccountbasicinfo")] == [rejection, 0]
    assert len([c for c in token_calls(ready) if c["errcode"] == 0]) == asked + 1
    after = stored_authorizer(ready, merchant)
    assert after.access_token != before.access_token and after.status == "authorized"


@pytest.mark.parametrize(
    "path",
    [
        "cgi-bin/../_mock/reset",
        "cgi-bin/%2e%2e/_mock/reset",
        "..",
        "cgi-bin//open/get",
        "cgi-bin/open/get%00",
        "cgi-bin/./open/get",
    ],
)
def test_the_proxy_refuses_paths_that_leave_the_api(ready: Stack, merchant: str, path: str) -> None:
    target = urlsplit(authorizer_url(ready, merchant, f"/proxy/{path}"))
    connection = http.client.HTTPConnection(target.netloc, timeout=10)
    try:  # sent as written: requests would resolve the dots first
        connection.request("POST", target.path, headers=ready.auth)
        response = connection.getresponse()
        status = response.status
        response.read()
    finally:
        connection.close()
    assert status == 400
    assert ready.mock.calls("api_query_auth")  # the mock kept its state: not reset
    assert [c["api"] for c in ready.mock.calls() if c["api"] == "open_get"] == []


def test_the_proxy_ignores_a_callers_own_access_token(ready: Stack, merchant: str) -> None:
    params = {"access_token": "caller-token", "component_access_token": "other", "lang": "zh_CN"}
    response = proxy(ready, merchant, BASIC_INFO, params=params)
    assert response.status_code == 200, response.text
    assert response.json()["errcode"] == 0 and response.json()["appid"] == merchant
    assert "X-Gateway-Token-Renewed" not in response.headers
    assert [c["errcode"] for c in ready.mock.calls("getaccountbasicinfo")] == [0]
    assert token_calls(ready) == []


def test_the_proxy_answers_404_for_an_unknown_authorizer(ready: Stack) -> None:
    response = proxy(ready, UNKNOWN_APPID, BASIC_INFO)
    assert response.status_code == 404
    assert ready.mock.calls("getaccountbasicinfo") == []


# ----- options (§3.8) ------------------------------------------------------------------


def option_url(stack: Stack, appid: str, name: str) -> str:
    return authorizer_url(stack, appid, f"/options/{name}")


def get_option(stack: Stack, appid: str, name: str, via: str) -> requests.Response:
    return requests.get(
        option_url(stack, appid, name), params={"via": via}, headers=stack.auth, timeout=30
    )


def put_option(stack: Stack, appid: str, name: str, via: str, value: Any) -> requests.Response:
    return requests.put(
        option_url(stack, appid, name),
        params={"via": via},
        json={"option_value": value},
        headers=stack.auth,
        timeout=30,
    )


SET_APIS = {
    "component_token": "api_set_authorizer_option",
    "authorizer_token": "set_authorizer_option",
}


@pytest.mark.parametrize(
    ("set_via", "get_via"),
    [("component_token", "authorizer_token"), ("authorizer_token", "component_token")],
)
def test_options_are_set_and_read_back_through_either_token(
    ready: Stack, merchant: str, set_via: str, get_via: str
) -> None:
    unset = get_option(ready, merchant, "voice_recognize", get_via)
    assert unset.status_code == 200, unset.text
    assert unset.json() == {"option_name": "voice_recognize", "option_value": "0", "via": get_via}
    written = put_option(ready, merchant, "voice_recognize", set_via, "1")
    assert written.status_code == 200, written.text
    assert [c["errcode"] for c in ready.mock.calls(SET_APIS[set_via])] == [0]
    for via in (get_via, set_via):
        assert get_option(ready, merchant, "voice_recognize", via).json()["option_value"] == "1"
    assert put_option(ready, merchant, "location_report", set_via, 2).status_code == 200
    assert get_option(ready, merchant, "location_report", get_via).json()["option_value"] == "2"


@pytest.mark.parametrize(
    ("name", "value", "via", "errcode"),
    [
        ("voice_recognize", "7", "component_token", 61013),
        ("location_report", "3", "authorizer_token", 61013),
        ("no_such_option", "1", "component_token", 61012),
        ("voice_recognize", "on", "component_token", None),
        ("voice_recognize", "", "authorizer_token", None),
        ("voice_recognize", True, "component_token", None),
        ("Voice-Recognize", "1", "authorizer_token", None),
        ("voice_recognize", "1", "both", None),
    ],
)
def test_bad_options_are_refused_with_400(
    ready: Stack, merchant: str, name: str, value: Any, via: str, errcode: int | None
) -> None:
    response = put_option(ready, merchant, name, via, value)
    assert response.status_code == 400, response.text
    if errcode is None:  # the service's own check: WeChat is not asked
        assert all(ready.mock.calls(api) == [] for api in SET_APIS.values())
    else:
        assert response.json()["errcode"] == errcode
    if name == "voice_recognize":
        current = get_option(ready, merchant, name, "component_token")
        assert current.json()["option_value"] == "0"


# ----- sync with WeChat's list (§3.7) --------------------------------------------------


def test_sync_recovers_updates_and_flags_what_disagrees_with_wechat(ready: Stack) -> None:
    kept, lost, changed = (authorized_merchant(ready) for _ in range(3))
    # Authorized at WeChat, but the push is held and the callback never comes: its code
    # was never exchanged, so WeChat lists it without a refresh token.
    ready.mock.update_component(ready.demo.appid, {"auth_push": "hold"})
    unexchanged = create_merchant(ready)
    assert confirm_authorization(ready, unexchanged)["push"] is None
    # We hold an authorizer WeChat never heard of.
    ghost = "wx" + secrets.token_hex(8)
    ghost_record = AuthorizerRecord(
        component_appid=ready.demo.appid,
        appid=ghost,
        refresh_token="refreshtoken@@@ghost",
        access_token_expires_at=time.time() + 7000,
    )
    put(ready, ghost_record)
    ready.store.client.collection("components").document(ready.demo.appid).collection(
        "authorizers"
    ).document(lost).delete()
    ready.store.modify_authorizer(
        ready.demo.appid,
        changed,
        lambda r: None if r is None else r.but(refresh_token="refreshtoken@@@stale"),
    )

    report = sync(ready)
    assert report["recovered"] == [lost]
    assert report["updated"] == [changed]
    assert report["unexchanged"] == [unexchanged]
    assert report["not_listed"] == [ghost]
    assert (report["unchanged"], report["listed"], report["incomplete"]) == (1, 4, False)

    wechat = wechat_refresh_tokens(ready)
    recovered = stored_authorizer(ready, lost)
    assert recovered.status == "authorized" and recovered.refresh_token == wechat[lost]
    assert recovered.nick_name == "测试official_account"  # the profile was fetched again
    assert token_of(ready, lost)["outcome"] == "renewed"
    assert stored_authorizer(ready, changed).refresh_token == wechat[changed]
    assert stored_authorizer(ready, kept).refresh_token == wechat[kept]
    flagged = stored_authorizer(ready, unexchanged)
    assert flagged.status == "needs_reauthorization"
    assert flagged.sync_flag == "listed_without_refresh_token" and not flagged.refresh_token
    refused = request_token(ready, unexchanged)
    assert refused.status_code == 409 and refused.json()["status"] == "needs_reauthorization"
    shown = api_get(ready, f"/authorizers/{ghost}").json()
    assert (shown["status"], shown["sync_flag"]) == ("authorized", "not_listed_by_wechat")

    again = sync(ready)
    assert (again["recovered"], again["updated"], again["not_listed"]) == ([], [], [ghost])
    assert again["unexchanged"] == [unexchanged]


# ----- quota resets (§3.9) -------------------------------------------------------------


def test_clear_quota_for_an_authorizer_resets_its_own_quota(ready: Stack, merchant: str) -> None:
    rules = {"rules": [{"api": "getaccountbasicinfo", "limit": 1, "appid": merchant}]}
    assert requests.post(f"{ready.mock_url}/_mock/quotas", json=rules, timeout=10).ok
    assert proxy(ready, merchant, BASIC_INFO).json()["errcode"] == 0
    over = proxy(ready, merchant, BASIC_INFO)
    assert over.status_code == 200 and over.json()["errcode"] == 45009

    cleared = requests.post(
        authorizer_url(ready, merchant, "/clear_quota"), headers=ready.auth, timeout=30
    )
    assert cleared.status_code == 200 and cleared.json() == {"cleared": merchant}
    assert [c["errcode"] for c in ready.mock.calls("component_clear_quota_v2")] == [0]
    assert proxy(ready, merchant, BASIC_INFO).json()["errcode"] == 0

    unknown = requests.post(
        authorizer_url(ready, UNKNOWN_APPID, "/clear_quota"), headers=ready.auth, timeout=30
    )
    assert unknown.status_code >= 400 and unknown.json()["errcode"] == 61003
