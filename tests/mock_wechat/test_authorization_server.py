"""The authorization flow over real HTTP: pages, APIs, pushes and the control plane.

The mock runs as a process (one per module, reset per test); the component's auth_domain
is 127.0.0.1, so the Referer and redirect_uri below are on it.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from devstack.processes import ManagedProcess
from service.wechat.crypto import MessageCrypto
from service.wechat.messages import (
    Authorized,
    PushMessage,
    Unauthorized,
    UpdateAuthorized,
    parse_envelope,
    parse_message,
)
from tests.mock_wechat.helpers import (
    AES_KEY,
    APPID,
    TOKEN,
    MockClient,
    ReceivedPush,
    Receiver,
    html_page,
    wait_until,
)

DOMAIN = "127.0.0.1"
CALLBACK = "http://127.0.0.1:9/authorize/callback"
REFERER_TEXT = (
    "请确认授权入口页所在域名，与授权后回调页所在域名相同，并且，此两者都必须与申请第三方平台"
    "时填写的授权发起页域名相同。授权入口页所在域名："
)
PC = "/cgi-bin/componentloginpage"
H5_PATHS = ["/safe/bindcomponent", "/wxaopen/safe/bindcomponent"]
ENTRY_PATHS = [PC, *H5_PATHS]


def decrypt(push: ReceivedPush) -> PushMessage:
    q = push.query
    crypto = MessageCrypto(TOKEN, AES_KEY, APPID)
    envelope = parse_envelope(push.body)
    decrypted = crypto.verify_and_decrypt(
        q["msg_signature"], q["timestamp"], q["nonce"], envelope.encrypt
    )
    return parse_message(decrypted.message)


def auth_pushes(receiver: Receiver) -> list[PushMessage]:
    """The decrypted authorization pushes received so far (ticket pushes left out)."""
    messages = [decrypt(p) for p in receiver.pushes()]
    return [m for m in messages if m.info_type != "component_verify_ticket"]


class Flow:
    """One registered component with a token, and helpers to play the merchant."""

    def __init__(self, mock: MockClient, receiver: Receiver, **component: Any) -> None:
        self.mock = mock
        self.receiver = receiver
        mock.register(receiver.url, auth_domain=DOMAIN, **component)
        self.token = mock.component_token()
        self.entry = f"{mock.base}/authorize/start"  # the provider's page, on 127.0.0.1

    def account(self, **fields: Any) -> dict[str, Any]:
        body = {
            "type": "official_account",
            "nick_name": "测试公众号",
            "principal_name": "某某有限公司",
            "admin": "alice",
        }
        body.update(fields)
        response = requests.post(self.mock.base + "/_mock/accounts", json=body, timeout=5)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def api(self, name: str, **body: Any) -> dict[str, Any]:
        query = {"component_access_token": self.token}
        answer: dict[str, Any] = self.mock.api(
            name, {"component_appid": APPID, **body}, query
        ).json()
        return answer

    def pre_auth_code(self) -> str:
        code: str = self.api("api_create_preauthcode")["pre_auth_code"]
        return code

    def open(
        self, path: str = PC, referer: str | None = "entry", **params: str
    ) -> requests.Response:
        query = {"component_appid": APPID, "redirect_uri": CALLBACK}
        if path != PC:
            query.update(action="bindcomponent", no_scan="1")
        query.update(params)
        query.setdefault("pre_auth_code", self.pre_auth_code())
        headers = {"Referer": self.entry if referer == "entry" else referer} if referer else {}
        return requests.get(self.mock.base + path, params=query, headers=headers, timeout=5)

    def session(self, **params: str) -> str:
        page = self.open(**params)
        assert page.status_code == 200, page.text
        [field] = html_page(page.text).all("input", name="session")
        return field.attrs["value"]

    def submit(
        self, session: str, appid: str, *sets: int, decision: str = "confirm", admin: str = "alice"
    ) -> requests.Response:
        form = {
            "session": session,
            "admin": admin,
            "authorizer_appid": appid,
            "category_id": [str(s) for s in sets],
            "decision": decision,
        }
        return requests.post(
            self.mock.base + "/safe/authorize", data=form, allow_redirects=False, timeout=10
        )

    def authorize(self, appid: str, **fields: Any) -> requests.Response:
        body = {"component_appid": APPID, "authorizer_appid": appid}
        body.setdefault("pre_auth_code", self.pre_auth_code())
        body.update(fields)
        return requests.post(self.mock.base + "/_mock/authorize", json=body, timeout=10)


@pytest.fixture
def flow(mock: MockClient, receiver: Receiver) -> Flow:
    return Flow(mock, receiver)


def error_of(response: requests.Response) -> tuple[str, str]:
    element = html_page(response.text).by_id("wx-error")
    assert element is not None, response.text
    return element.attrs["data-error"], element.text.strip()


# ----- the PC page, end to end -----------------------------------------------------------


def test_pc_flow_from_qr_code_to_tokens(flow: Flow, receiver: Receiver) -> None:
    acct = flow.account()
    flow.account(admin="bob", type="mini_program")
    code = flow.pre_auth_code()

    page = flow.open(pre_auth_code=code)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert '<html lang="zh-CN">' in page.text
    html = html_page(page.text)
    qr = html.by_id("qrcode")
    assert qr is not None and qr.tag == "img" and qr.attrs["alt"]
    prefix = "data:image/png;base64,"
    assert qr.attrs["src"].startswith(prefix)
    assert base64.b64decode(qr.attrs["src"][len(prefix) :]).startswith(b"\x89PNG\r\n\x1a\n")
    confirm_url = qr.attrs["data-confirm-url"]
    form = html.by_id("scan-form")
    assert form is not None
    assert (form.attrs["action"], form.attrs.get("method")) == ("/safe/authorizelist", "get")
    [session_field] = html.all("input", name="session")
    session = session_field.attrs["value"]
    assert confirm_url == f"{flow.mock.base}/safe/authorizelist?session={session}"
    admin = html.by_id("admin")
    assert admin is not None and admin.tag == "select"
    assert [o.attrs["value"] for o in html.all("option")] == ["alice", "bob"]
    scan = html.by_id("scan-as-admin")
    assert scan is not None and scan.attrs["type"] == "submit"

    listing = requests.get(confirm_url, params={"admin": "alice"}, timeout=5)
    [link] = html_page(listing.text).with_class("a", "account")
    assert link.attrs["data-appid"] == acct["appid"]
    assert "测试公众号" in link.text and "公众号" in link.text
    expected = f"/safe/authorizelist?session={session}&admin=alice&authorizer_appid={acct['appid']}"
    assert link.attrs["href"] == expected

    sets_page = html_page(requests.get(flow.mock.base + link.attrs["href"], timeout=5).text)
    form = sets_page.by_id("confirm-form")
    assert form is not None
    assert (form.attrs["method"], form.attrs["action"]) == ("post", "/safe/authorize")
    hidden = {e.attrs["name"]: e.attrs["value"] for e in sets_page.all("input", type="hidden")}
    assert hidden == {"session": session, "admin": "alice", "authorizer_appid": acct["appid"]}
    boxes = sets_page.all("input", type="checkbox", name="category_id")
    assert boxes and all("checked" in b.attrs for b in boxes)
    assert "消息管理" in form.text
    confirm, deny = sets_page.by_id("confirm"), sets_page.by_id("deny")
    assert confirm is not None and confirm.attrs["value"] == "confirm"
    assert deny is not None and deny.attrs["value"] == "deny"

    response = flow.submit(session, acct["appid"], 1, 15)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    query = parse_qs(location.query)
    [auth_code], [expires_in] = query["auth_code"], query["expires_in"]
    assert auth_code.startswith("queryauthcode@@@") and expires_in == "3600"

    # auth_push "sync": the push arrived before the 302 was answered
    [message] = auth_pushes(receiver)
    assert isinstance(message, Authorized)
    assert (message.app_id, message.authorizer_appid) == (APPID, acct["appid"])
    assert (message.authorization_code, message.pre_auth_code) == (auth_code, code)
    assert message.authorization_code_expired_time == message.create_time + 3600
    assert abs(message.create_time - flow.mock.get("/_mock/clock")["now"]) < 5

    info = flow.api("api_query_auth", authorization_code=auth_code)["authorization_info"]
    assert info["authorizer_appid"] == acct["appid"] and info["expires_in"] == 7200
    assert info["func_info"] == [
        {"funcscope_category": {"id": 1}},
        {"funcscope_category": {"id": 15}},
    ]
    assert flow.api("api_query_auth", authorization_code=auth_code)["errcode"] == 61010

    [logged] = [
        p
        for p in flow.mock.get("/_mock/pushes")["pushes"]
        if p["info_type"] != "component_verify_ticket"
    ]
    assert logged["info_type"] == "authorized" and logged["delivered"] is True
    assert auth_code in logged["message"] and logged["message"].startswith("<xml>")


def test_redirect_uri_with_a_query_gets_an_ampersand(flow: Flow) -> None:
    acct = flow.account()
    session = flow.session(redirect_uri=CALLBACK + "?from=console")
    location = flow.submit(session, acct["appid"], 1).headers["Location"]
    assert location.startswith(CALLBACK + "?from=console&auth_code=queryauthcode@@@")
    assert location.endswith("&expires_in=3600")


def test_h5_pages_show_the_user_form_without_a_qr_code(flow: Flow) -> None:
    flow.account()
    for path in H5_PATHS:
        page = flow.open(path)
        assert page.status_code == 200
        html = html_page(page.text)
        assert html.by_id("qrcode") is None
        form = html.by_id("scan-form")
        assert form is not None and form.attrs["action"] == "/safe/authorizelist"
        assert html.by_id("scan-as-admin") is not None and html.by_id("admin") is not None
        assert "open as this WeChat user" in page.text


def test_confirm_page_without_admin_shows_the_picker(flow: Flow) -> None:
    flow.account()
    session = flow.session()
    page = requests.get(
        f"{flow.mock.base}/safe/authorizelist", params={"session": session}, timeout=5
    )
    assert page.status_code == 200
    html = html_page(page.text)
    assert html.by_id("scan-form") is not None and html.by_id("scan-as-admin") is not None


# ----- the pages' refusals ---------------------------------------------------------------


@pytest.mark.parametrize("path", ENTRY_PATHS)
@pytest.mark.parametrize(
    ("referer", "shown"),
    [(None, "空"), ("https://evil.example.net/x", "evil.example.net")],
)
def test_referer_off_the_auth_domain_is_refused(
    flow: Flow, path: str, referer: str | None, shown: str
) -> None:
    page = flow.open(path, referer=referer)
    assert page.status_code == 403
    assert error_of(page) == ("referer", REFERER_TEXT + shown)


def test_redirect_uri_off_the_auth_domain_is_refused(flow: Flow) -> None:
    page = flow.open(redirect_uri="https://evil.example.net/cb")
    assert page.status_code == 403
    assert error_of(page) == ("referer", REFERER_TEXT + DOMAIN)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"component_appid": "wxfedcba9876543210"}, "component"),
        ({"pre_auth_code": "preauthcode@@@unknown"}, "pre_auth_code_invalid"),
        ({"auth_type": "7"}, "auth_type"),
        ({"biz_appid": "wx0000000000000000"}, "biz_appid"),
        ({"category_id_list": "1|a"}, "category_id_list"),
    ],
)
def test_bad_links_show_an_error_page(flow: Flow, params: dict[str, str], code: str) -> None:
    page = flow.open(**params)
    assert page.status_code == 400
    assert error_of(page)[0] == code


def test_expired_and_used_pre_auth_codes(flow: Flow) -> None:
    acct = flow.account()
    old = flow.pre_auth_code()
    flow.mock.post("/_mock/clock", {"advance": 1801})
    assert error_of(flow.open(pre_auth_code=old))[0] == "pre_auth_code_expired"

    code = flow.pre_auth_code()
    session = flow.session(pre_auth_code=code)
    assert flow.submit(session, acct["appid"], 1).status_code == 302
    assert error_of(flow.open(pre_auth_code=code))[0] == "pre_auth_code_used"
    again = flow.submit(session, acct["appid"], 1)
    assert again.status_code == 400 and error_of(again)[0] == "pre_auth_code_used"


def test_confirm_refusals(flow: Flow, receiver: Receiver) -> None:
    acct = flow.account()
    session = flow.session()
    assert error_of(flow.submit(session, acct["appid"]))[0] == "categories"
    assert error_of(flow.submit(session, acct["appid"], 17))[0] == "categories"
    assert error_of(flow.submit("nope", acct["appid"], 1))[0] == "session"
    assert error_of(flow.submit(session, acct["appid"], 1, admin="bob"))[0] == "account"
    assert error_of(flow.submit(session, acct["appid"], 1, decision="maybe"))[0] == "decision"
    assert auth_pushes(receiver) == []
    assert flow.submit(session, acct["appid"], 1).status_code == 302


def test_listing_refusals(flow: Flow) -> None:
    mini = flow.account(type="mini_program")
    base = f"{flow.mock.base}/safe/authorizelist"
    session = flow.session()
    nobody = requests.get(base, params={"session": session, "admin": "carol"}, timeout=5)
    assert nobody.status_code == 400 and error_of(nobody)[0] == "no_accounts"
    biz = flow.session(auth_type="1", biz_appid=mini["appid"])
    listed = requests.get(base, params={"session": biz, "admin": "alice"}, timeout=5)
    assert [a.attrs["data-appid"] for a in html_page(listed.text).with_class("a", "account")] == [
        mini["appid"]
    ]
    stranger = requests.get(base, params={"session": biz, "admin": "bob"}, timeout=5)
    assert error_of(stranger)[0] == "biz_appid_admin"


def test_category_id_list_narrows_the_checkboxes(flow: Flow) -> None:
    acct = flow.account()
    session = flow.session(category_id_list="1|15|18")
    page = requests.get(
        f"{flow.mock.base}/safe/authorizelist",
        params={"session": session, "admin": "alice", "authorizer_appid": acct["appid"]},
        timeout=5,
    )
    boxes = html_page(page.text).all("input", type="checkbox")
    assert [b.attrs["value"] for b in boxes] == ["1", "15"]


def test_deny_goes_back_without_a_code(flow: Flow, receiver: Receiver) -> None:
    acct = flow.account()
    code = flow.pre_auth_code()
    session = flow.session(pre_auth_code=code)
    response = flow.submit(session, acct["appid"], 1, decision="deny")
    assert response.status_code == 302 and response.headers["Location"] == CALLBACK
    assert auth_pushes(receiver) == []
    assert flow.open(pre_auth_code=code).status_code == 200  # still unused


# ----- pushes: sync callbacks, hold, release, redeliver ----------------------------------


def test_push_handler_may_call_back_into_the_mock(flow: Flow, receiver: Receiver) -> None:
    acct = flow.account()
    exchanged: list[dict[str, Any]] = []

    def exchange(push: ReceivedPush) -> None:
        message = decrypt(push)
        if isinstance(message, Authorized):
            exchanged.append(
                flow.api("api_query_auth", authorization_code=message.authorization_code)
            )

    receiver.on_push = exchange
    response = flow.submit(flow.session(), acct["appid"], 1)
    assert response.status_code == 302
    [answer] = exchanged  # done while the page waited for the push
    assert answer["authorization_info"]["authorizer_appid"] == acct["appid"]
    redirect_code = parse_qs(urlsplit(response.headers["Location"]).query)["auth_code"][0]
    assert flow.api("api_query_auth", authorization_code=redirect_code)["errcode"] == 61010


def test_held_pushes_wait_for_release(mock: MockClient, receiver: Receiver) -> None:
    flow = Flow(mock, receiver, auth_push="hold")
    first, second = flow.account(), flow.account(type="mini_program")
    answers = [flow.authorize(a["appid"]).json() for a in (first, second)]
    assert [a["push"] for a in answers] == [None, None]
    assert auth_pushes(receiver) == []
    held = mock.get("/_mock/pushes/held")["held"]
    assert [h["info_type"] for h in held] == ["authorized", "authorized"]
    assert answers[0]["auth_code"] in held[0]["message"]

    released = mock.post("/_mock/pushes/release")["pushes"]
    assert [(r["info_type"], r["delivered"], r["http_status"]) for r in released] == [
        ("authorized", True, 200)
    ] * 2
    messages = auth_pushes(receiver)
    assert [m.authorizer_appid for m in messages if isinstance(m, Authorized)] == [
        first["appid"],
        second["appid"],
    ]
    assert mock.get("/_mock/pushes/held") == {"held": []}
    assert mock.post("/_mock/pushes/release") == {"pushes": []}


def test_redeliver_sends_a_logged_push_again(flow: Flow, receiver: Receiver) -> None:
    acct = flow.account()
    flow.authorize(acct["appid"])
    pushes = flow.mock.get("/_mock/pushes")["pushes"]
    index = [p["info_type"] for p in pushes].index("authorized")

    again = flow.mock.post("/_mock/pushes/redeliver", {"index": index})
    assert again == {
        "appid": APPID,
        "info_type": "authorized",
        "delivered": True,
        "http_status": 200,
        "error": None,
    }
    first, second = auth_pushes(receiver)
    assert first == second  # the same message, sealed afresh
    logged = flow.mock.get("/_mock/pushes")["pushes"]
    assert logged[-1]["message"] == logged[index]["message"]

    missing = requests.post(
        flow.mock.base + "/_mock/pushes/redeliver", json={"index": 99}, timeout=5
    )
    assert missing.status_code == 404
    bad = requests.post(flow.mock.base + "/_mock/pushes/redeliver", json={"index": -1}, timeout=5)
    assert bad.status_code == 400 and bad.json()["error"].startswith("index")


# ----- the control plane -----------------------------------------------------------------


def test_accounts_control_plane(flow: Flow) -> None:
    base = flow.mock.base
    created = flow.account(appid="wx00000000000000aa", type="channels", alias="al")
    assert created["appid"] == "wx00000000000000aa" and created["type"] == "channels"
    assert created["account_status"] == 1 and created["alias"] == "al"
    duplicate = requests.post(
        base + "/_mock/accounts", json={**created_body(), "appid": created["appid"]}, timeout=5
    )
    assert duplicate.status_code == 409
    assert flow.mock.get("/_mock/accounts")["accounts"] == [created]
    one = flow.mock.get(f"/_mock/accounts/{created['appid']}")
    assert one == {**created, "authorizations": []}
    assert requests.get(base + "/_mock/accounts/wx0000000000000000", timeout=5).status_code == 404
    flow.mock.post("/_mock/reset")
    assert flow.mock.get("/_mock/accounts") == {"accounts": []}


def created_body() -> dict[str, Any]:
    return {"type": "official_account", "nick_name": "n", "principal_name": "p", "admin": "a"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "supplier"}, "type"),
        ({"appid": "wxNOPE"}, "appid"),
        ({"admin": ""}, "admin"),
        ({"account_status": 3}, "account_status"),
        ({"verify_type": "0"}, "verify_type"),
        ({"extra": 1}, "extra"),
    ],
)
def test_bad_account_input_is_400(mock: MockClient, body: dict[str, Any], field: str) -> None:
    response = requests.post(
        mock.base + "/_mock/accounts", json={**created_body(), **body}, timeout=5
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith(field + ":")
    assert mock.get("/_mock/accounts") == {"accounts": []}


def test_headless_authorize(flow: Flow, receiver: Receiver) -> None:
    acct = flow.account()
    code = flow.pre_auth_code()
    answer = flow.authorize(acct["appid"], pre_auth_code=code, redirect_uri=CALLBACK + "?a=1")
    assert answer.status_code == 200
    result = answer.json()
    assert list(result) == ["auth_code", "expires_in", "info_type", "redirect_url", "push"]
    assert result["expires_in"] == 3600 and result["info_type"] == "authorized"
    assert (
        result["redirect_url"] == f"{CALLBACK}?a=1&auth_code={result['auth_code']}&expires_in=3600"
    )
    assert result["push"] == {"delivered": True, "http_status": 200, "error": None}
    [message] = auth_pushes(receiver)
    assert isinstance(message, Authorized) and message.pre_auth_code == code
    view = flow.mock.get(f"/_mock/accounts/{acct['appid']}")
    [grant] = view["authorizations"]
    assert grant["status"] == "active" and grant["code_exchanged"] is False
    assert len(grant["func_info"]) == 19  # every official-account set by default

    reused = flow.authorize(acct["appid"], pre_auth_code=code)
    assert reused.status_code == 409 and reused.json()["code"] == "pre_auth_code_used"
    assert "pre_auth_code" in reused.json()["error"]
    assert flow.authorize(acct["appid"], redirect_uri=None).json()["redirect_url"] is None


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"authorizer_appid": "wx0000000000000000"}, 404, "account"),
        ({"component_appid": "wxfedcba9876543210"}, 404, "component"),
        ({"admin": "bob"}, 409, "account"),
        ({"auth_type": 2}, 409, "account"),
        ({"auth_type": 7}, 400, "auth_type"),
        ({"category_ids": [17]}, 400, "categories"),
        ({"category_ids": []}, 400, "categories"),
        ({"category_id_list": "1|x"}, 400, "category_id_list"),
        ({"redirect_uri": "https://evil.example.net/cb"}, 400, "redirect_uri"),
        ({"category_ids": ["1"]}, 400, None),
        ({"auth_type": "1"}, 400, None),
    ],
)
def test_headless_authorize_refusals(
    flow: Flow, receiver: Receiver, fields: dict[str, Any], status: int, code: str | None
) -> None:
    acct = flow.account()
    response = flow.authorize(acct["appid"], **fields)
    assert response.status_code == status, response.text
    assert response.json().get("code") == code and response.json()["error"]
    assert auth_pushes(receiver) == []


def test_unauthorize(flow: Flow, receiver: Receiver) -> None:
    acct = flow.account()
    code = flow.authorize(acct["appid"]).json()["auth_code"]
    info = flow.api("api_query_auth", authorization_code=code)["authorization_info"]
    path = f"/_mock/accounts/{acct['appid']}/unauthorize"

    result = flow.mock.post(path, {"component_appid": APPID})
    assert result == {"push": {"delivered": True, "http_status": 200, "error": None}}
    message = auth_pushes(receiver)[-1]
    assert isinstance(message, Unauthorized) and message.authorizer_appid == acct["appid"]
    refreshed = flow.api(
        "api_authorizer_token",
        authorizer_appid=acct["appid"],
        authorizer_refresh_token=info["authorizer_refresh_token"],
    )
    assert refreshed["errcode"] == 61003
    info_answer = flow.api("api_get_authorizer_info", authorizer_appid=acct["appid"])
    assert info_answer["errcode"] == 61003

    again = requests.post(flow.mock.base + path, json={"component_appid": APPID}, timeout=5)
    assert again.status_code == 409
    unknown = requests.post(
        flow.mock.base + "/_mock/accounts/wx0000000000000000/unauthorize",
        json={"component_appid": APPID},
        timeout=5,
    )
    assert unknown.status_code == 404
    assert requests.post(flow.mock.base + path, json={}, timeout=5).status_code == 400


def test_update_authorization(flow: Flow, receiver: Receiver) -> None:
    acct = flow.account()
    flow.authorize(acct["appid"], category_ids=[1])
    path = f"/_mock/accounts/{acct['appid']}/update-authorization"
    result = flow.mock.post(path, {"component_appid": APPID, "category_ids": [1, 2]})
    assert result["push"]["delivered"] is True
    message = auth_pushes(receiver)[-1]
    assert isinstance(message, UpdateAuthorized)
    assert message.authorization_code == result["auth_code"] and message.pre_auth_code is None
    info = flow.api("api_query_auth", authorization_code=result["auth_code"])
    assert [f["funcscope_category"]["id"] for f in info["authorization_info"]["func_info"]] == [
        1,
        2,
    ]

    stranger = flow.account()
    refused = requests.post(
        flow.mock.base + f"/_mock/accounts/{stranger['appid']}/update-authorization",
        json={"component_appid": APPID, "category_ids": [1]},
        timeout=5,
    )
    assert refused.status_code == 409
    bad = requests.post(flow.mock.base + path, json={"component_appid": APPID}, timeout=5)
    assert bad.status_code == 400 and bad.json()["error"].startswith("category_ids")


def test_component_settings_for_pushes_and_refresh_tokens(
    mock: MockClient, receiver: Receiver
) -> None:
    created = mock.register(receiver.url, auth_domain=DOMAIN)
    assert (created["auth_push"], created["rotate_refresh_tokens"]) == ("sync", False)
    response = requests.patch(
        f"{mock.base}/_mock/components/{APPID}",
        json={"auth_push": "hold", "rotate_refresh_tokens": True},
        timeout=5,
    )
    assert response.json()["auth_push"] == "hold" and response.json()["rotate_refresh_tokens"]
    for bad in ({"auth_push": "later"}, {"rotate_refresh_tokens": "yes"}):
        refused = requests.patch(f"{mock.base}/_mock/components/{APPID}", json=bad, timeout=5)
        assert refused.status_code == 400 and refused.json()["error"].startswith(next(iter(bad)))
    wrong_domain = requests.post(
        mock.base + "/_mock/components",
        json={
            "appid": APPID,
            "secret": "s",
            "token": "t",
            "encoding_aes_key": AES_KEY,
            "event_url": receiver.url,
            "auth_domain": "https://gw.example.com",
        },
        timeout=5,
    )
    assert wrong_domain.status_code == 400 and wrong_domain.json()["error"].startswith(
        "auth_domain"
    )


# ----- APIs ------------------------------------------------------------------------------


def test_refresh_and_rotation_over_http(flow: Flow) -> None:
    acct = flow.account()
    code = flow.authorize(acct["appid"]).json()["auth_code"]
    first = flow.api("api_query_auth", authorization_code=code)["authorization_info"]
    body = {"authorizer_appid": acct["appid"]}
    same = flow.api(
        "api_authorizer_token", **body, authorizer_refresh_token=first["authorizer_refresh_token"]
    )
    assert same["authorizer_refresh_token"] == first["authorizer_refresh_token"]
    assert same["expires_in"] == 7200

    requests.patch(
        f"{flow.mock.base}/_mock/components/{APPID}",
        json={"rotate_refresh_tokens": True},
        timeout=5,
    )
    rotated = flow.api(
        "api_authorizer_token", **body, authorizer_refresh_token=first["authorizer_refresh_token"]
    )
    assert rotated["authorizer_refresh_token"] != first["authorizer_refresh_token"]
    flow.mock.post("/_mock/clock", {"advance": 301})
    flow.token = flow.mock.component_token()
    stale = flow.api(
        "api_authorizer_token", **body, authorizer_refresh_token=first["authorizer_refresh_token"]
    )
    assert stale["errcode"] == 61023
    newest = flow.api(
        "api_authorizer_token", **body, authorizer_refresh_token=rotated["authorizer_refresh_token"]
    )
    assert "authorizer_access_token" in newest


def test_authorizer_info_over_http(flow: Flow) -> None:
    mini = flow.account(type="mini_program", nick_name="小程序")
    flow.authorize(mini["appid"])
    answer = flow.api("api_get_authorizer_info", authorizer_appid=mini["appid"])
    assert answer["authorizer_info"]["nick_name"] == "小程序"
    assert "MiniProgramInfo" in answer["authorizer_info"]
    assert answer["authorization_info"]["authorizer_appid"] == mini["appid"]


def test_new_apis_share_token_checks_faults_and_the_call_log(flow: Flow) -> None:
    acct = flow.account()
    code = flow.authorize(acct["appid"]).json()["auth_code"]
    body = {"component_appid": APPID, "authorization_code": code}
    assert flow.mock.api("api_query_auth", body).json()["errcode"] == 41001
    assert (
        flow.mock.api("api_query_auth", body, {"access_token": "nope"}).json()["errcode"] == 40001
    )
    flow.mock.post(
        "/_mock/faults", {"rules": [{"api": "api_query_auth", "errcode": -1, "times": 1}]}
    )
    assert flow.api("api_query_auth", authorization_code=code)["errcode"] == -1
    assert "authorization_info" in flow.api("api_query_auth", authorization_code=code)
    calls = flow.mock.get("/_mock/calls?api=api_query_auth")["calls"]
    assert [(c["errcode"], c["fault"]) for c in calls] == [
        (41001, False),
        (40001, False),
        (-1, True),
        (0, False),
    ]
    assert all(c["appid"] == APPID for c in calls)


def test_unknown_authorization_code_is_61009(flow: Flow) -> None:
    answer = flow.api("api_query_auth", authorization_code="queryauthcode@@@nope")
    assert answer["errcode"] == 61009
    assert json.dumps(answer).startswith('{"errcode": 61009')


def test_the_log_keeps_codes_tokens_and_sessions_out(
    flow: Flow, mock_process: tuple[ManagedProcess, str]
) -> None:
    acct = flow.account()
    code = flow.pre_auth_code()
    session = flow.session(pre_auth_code=code)
    location = flow.submit(session, acct["appid"], 1).headers["Location"]
    auth_code = parse_qs(urlsplit(location).query)["auth_code"][0]
    info = flow.api("api_query_auth", authorization_code=auth_code)["authorization_info"]
    flow.mock.post(f"/_mock/accounts/{acct['appid']}/unauthorize", {"component_appid": APPID})
    assert wait_until(lambda: "authorization revoked" in mock_process[0].log_text())

    text = mock_process[0].log_text()
    secrets = (
        code,
        session,
        auth_code,
        info["authorizer_access_token"],
        info["authorizer_refresh_token"],
    )
    for secret in secrets:
        assert secret not in text
    assert "authorization confirmed" in text and "/safe/authorize" in text
