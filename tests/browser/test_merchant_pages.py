"""The merchant's authorization, clicked through in headless Chromium.

Entry page (service) → WeChat's authorization page (mock) → "scan as admin" → account →
permission sets → confirm → callback (service) with the result.
"""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.browser.conftest import Shots
from tests.e2e.helpers import refresh
from tests.stack import Stack

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

ADMIN = "browser-admin"
REFERER_ERROR = (
    "请确认授权入口页所在域名，与授权后回调页所在域名相同，并且，此两者都必须与申请第三方平台时"
    "填写的授权发起页域名相同。授权入口页所在域名：空"
)


@pytest.fixture
def ready(e2e: Stack) -> Stack:
    assert e2e.mock.push_ticket(e2e.demo.appid)["delivered"]
    assert refresh(e2e)["renewed"] == 1
    return e2e


def create(stack: Stack, kind: str, name: str) -> str:
    account = {"type": kind, "nick_name": name, "principal_name": "浏览器测试公司", "admin": ADMIN}
    appid: str = stack.mock.create_account(account)["appid"]
    return appid


def open_entry(page: Page, stack: Stack, shots: Shots, auth_type: int) -> None:
    page.goto(f"{stack.service_url}/authorize/{stack.demo.appid}")
    shots.take("entry")
    page.check(f"input[name=auth_type][value='{auth_type}']")
    page.click("#choose")
    expect(page.locator("#pc-link")).to_be_visible()
    shots.take("links")


def scan_pick_and_confirm(page: Page, shots: Shots, appid: str, untick: list[int]) -> None:
    page.select_option("#admin", ADMIN)
    page.click("#scan-as-admin")
    shots.take("accounts")
    page.click(f"a.account[data-appid='{appid}']")
    expect(page.locator("#confirm-form")).to_be_visible()
    for category in untick:
        page.uncheck(f"input[name=category_id][value='{category}']")
    shots.take("permission-sets")
    page.click("#confirm")


def follow_link(page: Page, stack: Stack, name: str, wechat_path: str) -> None:
    """Click the entry page's link: our route makes the pre_auth_code and redirects to
    WeChat's page, and the browser keeps our origin as the Referer WeChat checks (§4.3)."""
    entry_url = page.url
    with page.expect_request(lambda r: wechat_path in r.url) as caught:
        page.click(f"#{name}-link")
    wechat = caught.value
    ours = wechat.redirected_from
    assert ours is not None
    assert ours.url.startswith(f"{stack.service_url}/authorize/{stack.demo.appid}?go={name}&")
    assert ours.header_value("referer") in (entry_url, f"{stack.service_url}/")
    assert wechat.header_value("referer") == f"{stack.service_url}/"
    assert wechat.url.startswith(stack.mock_url + wechat_path)


def test_pc_flow_with_qr_code(page: Page, shots: Shots, ready: Stack) -> None:
    appid = create(ready, "official_account", "浏览器公众号")
    open_entry(page, ready, shots, auth_type=1)
    assert ready.mock.calls("api_create_preauthcode") == []  # none for a page view
    follow_link(page, ready, "pc", "/cgi-bin/componentloginpage?")
    assert len(ready.mock.calls("api_create_preauthcode")) == 1
    qr = page.locator("img#qrcode")
    expect(qr).to_be_visible()
    assert (qr.get_attribute("src") or "").startswith("data:image/png;base64,")
    assert "/safe/authorizelist?session=" in (qr.get_attribute("data-confirm-url") or "")
    shots.take("pc-page")
    scan_pick_and_confirm(page, shots, appid, untick=[2])

    expect(page.locator("main[data-outcome=authorized]")).to_be_visible()
    shots.take("result")
    assert page.url.startswith(f"{ready.service_url}/authorize/{ready.demo.appid}/callback?")
    expect(page.locator("#nick-name")).to_have_text("浏览器公众号")
    expect(page.locator("#account-type")).to_contain_text("公众号")
    names = page.locator("#permission-sets li").all_inner_texts()
    assert "消息管理" in names and "用户管理" not in names
    record = ready.store.get_authorizer(ready.demo.appid, appid)
    assert record is not None and record.status == "authorized" and 2 not in record.func_info


def test_h5_flow(page: Page, shots: Shots, ready: Stack) -> None:
    appid = create(ready, "mini_program", "浏览器小程序")
    open_entry(page, ready, shots, auth_type=2)
    follow_link(page, ready, "h5", "/wxaopen/safe/bindcomponent?")
    expect(page.locator("#scan-as-admin")).to_be_visible()
    assert page.url.startswith(f"{ready.mock_url}/wxaopen/safe/bindcomponent?")
    shots.take("h5-page")
    scan_pick_and_confirm(page, shots, appid, untick=[])
    expect(page.locator("main[data-outcome=authorized]")).to_be_visible()
    shots.take("result")
    expect(page.locator("#account-type")).to_contain_text("小程序")


def test_a_link_typed_in_the_address_bar_fails_the_referer_check(
    page: Page, shots: Shots, ready: Stack
) -> None:
    open_entry(page, ready, shots, auth_type=3)
    href = page.locator("#pc-link").get_attribute("href")
    assert href
    page.goto(href)  # no Referer, as when the URL is pasted
    shots.take("referer-error")
    expect(page.locator("#wx-error")).to_have_text(REFERER_ERROR)
    assert page.locator("#wx-error").get_attribute("data-error") == "referer"


def test_the_code_is_made_when_the_link_is_clicked(page: Page, shots: Shots, ready: Stack) -> None:
    # An entry page left open longer than a pre_auth_code lives still works: it holds none.
    open_entry(page, ready, shots, auth_type=3)
    requests.post(f"{ready.mock_url}/_mock/clock", json={"advance": 1801}, timeout=10)
    page.click("#pc-link")
    expect(page.locator("#scan-as-admin")).to_be_visible()
    shots.take("wechat-page")


def test_an_expired_pre_auth_code(page: Page, shots: Shots, ready: Stack) -> None:
    create(ready, "official_account", "过期的公众号")
    open_entry(page, ready, shots, auth_type=3)
    page.click("#pc-link")
    expect(page.locator("#scan-as-admin")).to_be_visible()
    # The merchant leaves WeChat's page open past the pre_auth_code's 1800 s.
    requests.post(f"{ready.mock_url}/_mock/clock", json={"advance": 1801}, timeout=10)
    page.select_option("#admin", ADMIN)
    page.click("#scan-as-admin")
    shots.take("expired")
    error = page.locator("#wx-error")
    expect(error).to_be_visible()
    assert error.get_attribute("data-error") == "pre_auth_code_expired"
    # Starting again from our entry page makes a fresh code.
    open_entry(page, ready, shots, auth_type=3)
    page.click("#pc-link")
    expect(page.locator("#scan-as-admin")).to_be_visible()


def test_a_denied_authorization(page: Page, shots: Shots, ready: Stack) -> None:
    appid = create(ready, "official_account", "拒绝的公众号")
    open_entry(page, ready, shots, auth_type=1)
    page.click("#pc-link")
    page.select_option("#admin", ADMIN)
    page.click("#scan-as-admin")
    page.click(f"a.account[data-appid='{appid}']")
    page.click("#deny")
    expect(page.locator("main[data-outcome=denied]")).to_be_visible()
    shots.take("denied")
    expect(page.locator("#reason")).to_contain_text(re.compile("nothing was stored"))
    assert ready.store.get_authorizer(ready.demo.appid, appid) is None
