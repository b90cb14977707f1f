"""Merchant authorization end to end: mock WeChat, gunicorn with 2 workers, the emulator.

The merchant is played through the real pages (``mock_wechat.merchant_client``) or, where the
order of push and callback must be controlled, through the mock's headless confirmation.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from devstack.stack import REPO
from mock_wechat.merchant_client import Merchant, MerchantError
from service.store.records import AuthorizerRecord
from service.wechat.accounts import AUTH_TYPES, AccountType
from tests.e2e.helpers import refresh, signed_push
from tests.stack import Stack

pytestmark = pytest.mark.e2e

ADMIN = "merchant-admin"
KINDS = ["official_account", "mini_program", "promoter", "channels", "talent"]


@pytest.fixture(scope="module", autouse=True)
def many_merchants_from_one_address() -> Iterator[None]:
    """These tests play dozens of merchants from 127.0.0.1 within seconds: the module's
    service (started after this) gets a rate limit they never reach."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PUBLIC_RATE_LIMIT", "100000")
        env.setenv("PUBLIC_RATE_BURST", "100000")
        yield


@pytest.fixture
def ready(e2e: Stack) -> Stack:
    """A component with a ticket and a token."""
    assert e2e.mock.push_ticket(e2e.demo.appid)["delivered"]
    report = refresh(e2e)
    assert report["renewed"] == 1, report
    return e2e


@pytest.fixture
def accounts(ready: Stack) -> dict[str, str]:
    """One merchant account of every type, all with the same admin: type -> appid."""
    return {
        kind: ready.mock.create_account(
            {"type": kind, "nick_name": f"测试{kind}", "principal_name": "测试公司", "admin": ADMIN}
        )["appid"]
        for kind in KINDS
    }


def links(stack: Stack, **body: Any) -> requests.Response:
    return requests.post(
        f"{stack.service_url}/api/v1/components/{stack.demo.appid}/authorize-links",
        json=body,
        headers=stack.auth,
        timeout=30,
    )


def pre_auth_code(stack: Stack, **body: Any) -> str:
    response = links(stack, **body)
    assert response.status_code == 201, response.text
    code: str = response.json()["pre_auth_code"]
    return code


def confirm(stack: Stack, appid: str, **extra: Any) -> dict[str, Any]:
    """The merchant confirms on the mock (headless), for a fresh pre_auth_code."""
    code = pre_auth_code(stack, auth_type=extra.pop("auth_type", 3))
    return stack.mock.authorize(
        {"component_appid": stack.demo.appid, "pre_auth_code": code, "authorizer_appid": appid}
        | extra
    )


def callback(stack: Stack, auth_code: str) -> requests.Response:
    return requests.get(
        f"{stack.service_url}/authorize/{stack.demo.appid}/callback",
        params={"auth_code": auth_code, "expires_in": 3600},
        timeout=60,
    )


def stored(stack: Stack, appid: str) -> AuthorizerRecord:
    record = stack.store.get_authorizer(stack.demo.appid, appid)
    assert record is not None
    return record


def exchanges(stack: Stack) -> int:
    return len(stack.mock.calls("api_query_auth"))


def api_authorizer(stack: Stack, appid: str) -> dict[str, Any]:
    response = requests.get(
        f"{stack.service_url}/api/v1/components/{stack.demo.appid}/authorizers/{appid}",
        headers=stack.auth,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# ----- the links API ------------------------------------------------------------------


def test_links_api_answers_every_form_with_a_fresh_code_each_time(ready: Stack) -> None:
    first = links(ready, auth_type=3, category_ids=[1, 15])
    second = links(ready, auth_type=3)
    assert first.status_code == second.status_code == 201
    a, b = first.json(), second.json()
    assert a["pre_auth_code"] != b["pre_auth_code"]
    assert a["pc_url"].startswith(f"{ready.mock_url}/cgi-bin/componentloginpage?")
    assert a["h5_url"].startswith(f"{ready.mock_url}/wxaopen/safe/bindcomponent?")
    assert a["h5_legacy_url"].startswith(f"{ready.mock_url}/safe/bindcomponent?")
    assert a["plugin"] == {
        "platformAppID": ready.demo.appid,
        "preAuthCode": a["pre_auth_code"],
        "authType": 3,
    }
    query = parse_qs(urlsplit(a["pc_url"]).query)
    assert query["redirect_uri"] == [f"{ready.service_url}/authorize/{ready.demo.appid}/callback"]
    assert query["category_id_list"] == ["1|15"]
    assert a["expires_at"] > 0
    assert len(ready.mock.calls("api_create_preauthcode")) == 2


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"auth_type": 7}, "auth_type"),
        ({}, "auth_type"),
        ({"auth_type": 1, "biz_appid": "nope"}, "biz_appid"),
        ({"auth_type": 1, "category_ids": ["a"]}, "category_ids"),
        ({"auth_type": 1, "redirect_uri": "javascript:alert(1)"}, "redirect_uri"),
    ],
)
def test_links_api_names_the_bad_parameter(ready: Stack, body: dict[str, Any], param: str) -> None:
    response = links(ready, **body)
    assert response.status_code == 400
    assert response.json()["param"] == param
    assert response.json()["error"].startswith(param)
    assert ready.mock.calls("api_create_preauthcode") == []


def test_links_api_needs_the_key(ready: Stack) -> None:
    url = f"{ready.service_url}/api/v1/components/{ready.demo.appid}/authorize-links"
    assert requests.post(url, json={"auth_type": 1}, timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer wrong"}
    assert requests.post(url, json={"auth_type": 1}, headers=wrong, timeout=10).status_code == 403


# ----- callback and push: exactly one exchange ----------------------------------------


def test_callback_first_then_push(ready: Stack, accounts: dict[str, str]) -> None:
    ready.mock.update_component(ready.demo.appid, {"auth_push": "hold"})
    merchant = accounts["official_account"]
    confirmed = confirm(ready, merchant)
    assert confirmed["push"] is None  # held back: the callback comes first

    page = callback(ready, confirmed["auth_code"])
    assert page.status_code == 200, page.text
    assert 'data-outcome="authorized"' in page.text and "测试official_account" in page.text
    assert exchanges(ready) == 1

    released = ready.mock.release_held()
    assert [p["delivered"] for p in released["pushes"]] == [True]
    assert exchanges(ready) == 1
    record = stored(ready, merchant)
    assert record.status == "authorized" and record.refresh_token
    assert record.account_type == AccountType.OFFICIAL_ACCOUNT.value


def test_push_first_then_callback(ready: Stack, accounts: dict[str, str]) -> None:
    merchant = accounts["mini_program"]
    confirmed = confirm(ready, merchant)
    assert confirmed["push"]["delivered"] is True  # the service answered success
    assert exchanges(ready) == 1
    assert stored(ready, merchant).refresh_token

    page = callback(ready, confirmed["auth_code"])
    assert page.status_code == 200 and 'data-outcome="authorized"' in page.text
    assert "小程序" in page.text
    assert exchanges(ready) == 1


def test_duplicate_pushes_change_nothing(ready: Stack, accounts: dict[str, str]) -> None:
    merchant = accounts["official_account"]
    confirm(ready, merchant)
    before = stored(ready, merchant)
    index = next(i for i, p in enumerate(ready.mock.pushes()) if p["info_type"] == "authorized")
    ignored_before = duplicates_logged(ready)
    for _ in range(3):
        assert ready.mock.redeliver(index)["delivered"] is True
    assert exchanges(ready) == 1
    assert stored(ready, merchant) == before
    # The inbox recognised each one before any other work was done.
    assert duplicates_logged(ready) == ignored_before + 3


def duplicates_logged(stack: Stack) -> int:
    return stack.service.log_text().count('"message": "duplicate push ignored"')


def test_unauthorize_then_reauthorize(ready: Stack, accounts: dict[str, str]) -> None:
    merchant = accounts["official_account"]
    confirm(ready, merchant)
    first = stored(ready, merchant)

    assert ready.mock.unauthorize(merchant, ready.demo.appid)["push"]["delivered"] is True
    revoked = stored(ready, merchant)
    assert revoked.status == "revoked"
    assert revoked.access_token is None and revoked.refresh_token is None
    assert revoked.nick_name == first.nick_name
    assert [e["event"] for e in revoked.history] == ["authorized", "unauthorized"]
    assert api_authorizer(ready, merchant)["status"] == "revoked"

    confirm(ready, merchant)
    again = stored(ready, merchant)
    assert again.status == "authorized" and again.refresh_token
    assert again.refresh_token != first.refresh_token  # a new authorization, a new token
    assert [e["event"] for e in again.history] == ["authorized", "unauthorized", "authorized"]

    # Old pushes delivered again, out of order, change nothing.
    pushes = ready.mock.pushes()
    for info_type in ("unauthorized", "authorized"):
        index = next(i for i, p in enumerate(pushes) if p["info_type"] == info_type)
        assert ready.mock.redeliver(index)["delivered"] is True
    assert stored(ready, merchant) == again


def test_updateauthorized_with_fewer_sets_replaces_them_and_renews_tokens(
    ready: Stack, accounts: dict[str, str]
) -> None:
    merchant = accounts["official_account"]
    confirm(ready, merchant, category_ids=[1, 2, 15])
    before = stored(ready, merchant)
    assert before.func_info == (1, 2, 15)

    update = ready.mock.update_authorization(merchant, ready.demo.appid, [1])
    assert update["push"]["delivered"] is True
    after = stored(ready, merchant)
    assert after.func_info == (1,)
    assert after.access_token and after.access_token != before.access_token
    assert after.history[-1]["event"] == "authorization_updated"
    assert [s["name"] for s in api_authorizer(ready, merchant)["permission_sets"]] == ["消息管理"]


def test_authorizer_api_never_shows_tokens(ready: Stack, accounts: dict[str, str]) -> None:
    merchant = accounts["official_account"]
    confirm(ready, merchant)
    record = stored(ready, merchant)
    body = api_authorizer(ready, merchant)
    text = str(body)
    assert record.access_token and record.access_token not in text
    assert record.refresh_token and record.refresh_token not in text
    assert body["has_refresh_token"] is True and body["nick_name"] == "测试official_account"
    missing = requests.get(
        f"{ready.service_url}/api/v1/components/{ready.demo.appid}/authorizers/wx00000000000000ff",
        headers=ready.auth,
        timeout=10,
    )
    assert missing.status_code == 404


# ----- the callback's failure pages ---------------------------------------------------


def test_expired_code_gets_a_clear_page_and_stores_nothing(
    ready: Stack, accounts: dict[str, str]
) -> None:
    ready.mock.update_component(ready.demo.appid, {"auth_push": "hold"})
    merchant = accounts["official_account"]
    confirmed = confirm(ready, merchant)
    requests.post(f"{ready.mock_url}/_mock/clock", json={"advance": 3601}, timeout=10)
    page = callback(ready, confirmed["auth_code"])
    assert page.status_code == 400 and 'data-outcome="code_expired"' in page.text
    assert ready.store.get_authorizer(ready.demo.appid, merchant) is None


def test_unknown_code_and_missing_code(ready: Stack) -> None:
    page = callback(ready, "queryauthcode@@@not-a-real-one")
    assert page.status_code == 400 and 'data-outcome="code_invalid"' in page.text
    denied = requests.get(f"{ready.service_url}/authorize/{ready.demo.appid}/callback", timeout=10)
    assert denied.status_code == 400 and 'data-outcome="denied"' in denied.text


FASTEREGISTER = """<xml><AppId><![CDATA[{appid}]]></AppId><CreateTime>1700000000</CreateTime>
<InfoType><![CDATA[{info_type}]]></InfoType><appid><![CDATA[wx00000000000000ab]]></appid>
<status>0</status><auth_code><![CDATA[secret-code]]></auth_code><msg><![CDATA[OK]]></msg>
<info><name><![CDATA[某公司]]></name><code_type>1</code_type></info></xml>"""


@pytest.mark.parametrize(
    ("info_type", "outcome"),
    [("notify_third_fasteregister", "recorded"), ("notify_not_invented_yet", "recorded_unknown")],
)
def test_other_info_types_are_answered_success_and_recorded_whole(
    ready: Stack, info_type: str, outcome: str
) -> None:
    xml = FASTEREGISTER.format(appid=ready.demo.appid, info_type=info_type)
    for _ in range(2):
        response = signed_push(ready, xml)
        assert response.status_code == 200 and response.text == "success"
    inbox = (
        ready.store.client.collection("components")
        .document(ready.demo.appid)
        .collection("inbox")
        .stream()
    )
    entries = [doc.to_dict() for doc in inbox]
    assert len(entries) == 1  # the second push was a duplicate
    assert entries[0]["info_type"] == info_type and entries[0]["outcome"] == outcome
    assert entries[0]["fields"]["msg"] == "OK"
    assert entries[0]["fields"]["info"] == {"name": "某公司", "code_type": "1"}
    assert "secret-code" not in ready.service.log_text()


# ----- through the real pages ---------------------------------------------------------


@pytest.mark.parametrize("auth_type", sorted(AUTH_TYPES))
def test_every_auth_type_lists_its_accounts_and_authorizes(
    ready: Stack, accounts: dict[str, str], auth_type: int
) -> None:
    shown = {kind.value for kind in AUTH_TYPES[auth_type].shows}
    merchant = Merchant(ready.mock_url)
    for kind in KINDS:
        if kind in shown:
            continue
        with pytest.raises(MerchantError, match="not listed"):
            merchant.authorize(ready.service_url, ready.demo.appid, accounts[kind], auth_type)
    target = accounts[sorted(shown)[0]]
    result = merchant.authorize(ready.service_url, ready.demo.appid, target, auth_type)
    assert result.outcome == "authorized", result.describe()
    assert stored(ready, target).status == "authorized"


def test_biz_appid_wins_over_auth_type(ready: Stack, accounts: dict[str, str]) -> None:
    merchant = Merchant(ready.mock_url)
    mini = accounts["mini_program"]
    # auth_type=1 shows official accounts only, but biz_appid names a mini program.
    result = merchant.authorize(
        ready.service_url, ready.demo.appid, mini, auth_type=1, biz_appid=mini
    )
    assert result.outcome == "authorized" and result.account_type is not None
    assert "小程序" in result.account_type
    with pytest.raises(MerchantError, match="not listed"):
        merchant.authorize(
            ready.service_url,
            ready.demo.appid,
            accounts["official_account"],
            auth_type=1,
            biz_appid=mini,
        )


def test_the_merchant_can_untick_sets_and_deny(ready: Stack, accounts: dict[str, str]) -> None:
    merchant = Merchant(ready.mock_url)
    oa = accounts["official_account"]
    denied = merchant.authorize(ready.service_url, ready.demo.appid, oa, 1, deny=True)
    assert denied.outcome == "denied"
    assert ready.store.get_authorizer(ready.demo.appid, oa) is None
    result = merchant.authorize(ready.service_url, ready.demo.appid, oa, 1, keep_categories=[1, 7])
    assert result.permission_sets == ["消息管理", "群发与通知"]
    assert stored(ready, oa).func_info == (1, 7)


def test_authorize_command_plays_the_merchant(ready: Stack, accounts: dict[str, str]) -> None:
    oa = accounts["official_account"]
    argv = [
        sys.executable, "-m", "mock_wechat", "authorize",
        "--service", ready.service_url, "--mock", ready.mock_url,
        "--component", ready.demo.appid, "--account", oa, "--auth-type", "1",
    ]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "outcome: authorized" in done.stdout and "测试official_account" in done.stdout
    # A second run for an account the page does not list fails clearly.
    argv[-3:] = [accounts["channels"], "--auth-type", "1"]
    failed = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1 and "not listed" in failed.stderr


def test_callback_and_push_at_the_same_moment_exchange_once(
    ready: Stack, accounts: dict[str, str]
) -> None:
    ready.mock.update_component(ready.demo.appid, {"auth_push": "hold"})
    merchant = accounts["official_account"]
    confirmed = confirm(ready, merchant)
    with ThreadPoolExecutor(max_workers=4) as pool:
        pages = [pool.submit(callback, ready, confirmed["auth_code"]) for _ in range(3)]
        released = pool.submit(ready.mock.release_held)
        statuses = [page.result().status_code for page in pages]
        delivered = [p["delivered"] for p in released.result()["pushes"]]
    assert statuses == [200, 200, 200] and delivered == [True]
    assert exchanges(ready) == 1
    assert stored(ready, merchant).status == "authorized"


def test_logs_never_show_authorizer_tokens_or_codes(ready: Stack, accounts: dict[str, str]) -> None:
    merchant = accounts["official_account"]
    confirmed = confirm(ready, merchant)
    callback(ready, confirmed["auth_code"])
    ready.mock.update_authorization(merchant, ready.demo.appid, [1])
    record = stored(ready, merchant)
    exposed = ready.service.log_text() + api_authorizer(ready, merchant).__repr__()
    for secret in (record.access_token, record.refresh_token, confirmed["auth_code"]):
        assert secret and secret not in exposed
