"""The operations console in headless Chromium, on the real stack: gunicorn (2 workers), the
Firestore and Pub/Sub emulators, the demo subscriber and mock WeChat.

Signing in; finding an authorizer among 2,000 and its detail; a generated link whose QR
code, scanned, leads the mock's merchant flow to an authorized account that the list then
shows; renewing a token; a sync; a replayed push reaching the subscriber again. Screenshots
go to ``.artifacts/console/`` (one at a phone's 390 px).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from devstack.emulator import clear_emulator
from devstack.processes import ManagedProcess, free_port
from devstack.pubsub_emulator import PubSubAdmin, start_pubsub_emulator
from devstack.stack import REPO, start_demo_subscriber
from service.store.records import AuthorizerRecord
from tests.browser.test_console_qr import scan_qr
from tests.e2e.helpers import authorized_merchant, ready_component, stored_authorizer, wait_for
from tests.stack import API_KEY, E2E_PROJECT, Stack, start_stack

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

SHOTS = Path(os.environ.get("TEST_ARTIFACTS", REPO / ".artifacts")) / "console"
TOPIC = "console-pushes"
ADMIN = "console-admin"


class Console:
    def __init__(self, stack: Stack, subscriber_url: str) -> None:
        self.stack = stack
        self.subscriber_url = subscriber_url

    @property
    def url(self) -> str:
        return f"{self.stack.service_url}/console"

    def envelopes(self, **where: Any) -> list[dict[str, Any]]:
        response = requests.get(
            f"{self.subscriber_url}/received", params={"via": "push"}, timeout=10
        )
        response.raise_for_status()
        return [
            e["envelope"]
            for e in response.json()["received"]
            if all(e["envelope"].get(k) == v for k, v in where.items())
        ]


@pytest.fixture(scope="module")
def console_stack(
    firestore_emulator: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    logs = tmp_path_factory.mktemp("console")
    subscriber_port, pubsub_port = free_port(), free_port()
    processes: list[ManagedProcess] = []
    stack: Stack | None = None
    try:
        processes.append(start_demo_subscriber(subscriber_port, logs / "subscriber.log"))
        pubsub, _ = start_pubsub_emulator(logs / "pubsub.log", port=pubsub_port)
        processes.append(pubsub)
        admin = PubSubAdmin(f"127.0.0.1:{pubsub_port}", E2E_PROJECT)
        admin.create_topic(TOPIC)
        subscriber_url = f"http://127.0.0.1:{subscriber_port}"
        admin.create_push_subscription("console-sub", TOPIC, f"{subscriber_url}/push")
        routes = [{"name": "everything", "pubsub": TOPIC}]
        stack = start_stack(
            firestore_emulator,
            logs,
            {
                "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{pubsub_port}",
                "MESSAGE_ROUTES": json.dumps(routes),
                "PUSH_LOG_FLUSH_INTERVAL": "1",
            },
        )
        yield Console(stack, subscriber_url)
    finally:
        if stack is not None:
            stack.service.stop()
            stack.mock_process.stop()
        for process in processes:
            process.stop()


@pytest.fixture
def console(console_stack: Console, monkeypatch: pytest.MonkeyPatch) -> Console:
    stack = console_stack.stack
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", stack.firestore_host)
    stack.mock.reset()
    clear_emulator(stack.firestore_host, E2E_PROJECT)
    stack.register_component()
    return console_stack


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, console: Console) -> None:
    page.goto(f"{console.url}/")
    expect(page.locator("#login-form")).to_be_visible()
    page.fill("#key", API_KEY)
    page.click("#sign-in")
    expect(page.locator("#operator")).to_contain_text("API 密钥")


def seed(stack: Stack, count: int) -> list[str]:
    client = stack.store.client
    collection = (
        client.collection("components").document(stack.demo.appid).collection("authorizers")
    )
    appids, batch = [], client.batch()
    for i in range(count):
        appid = f"wx{i:016x}"
        appids.append(appid)
        record = AuthorizerRecord(
            component_appid=stack.demo.appid,
            appid=appid,
            status="needs_reauthorization" if i % 7 == 0 else "authorized",
            account_type="mini_program" if i % 2 else "official_account",
            nick_name=f"门店{i:04d}",
            access_token_expires_at=time.time() + 3600,
            func_info=(1, 15),
        )
        batch.set(collection.document(appid), record.to_document())
        if i % 400 == 399:
            batch.commit()
            batch = client.batch()
    batch.commit()
    return appids


# ----- the tests -----------------------------------------------------------------------------


def test_signing_in_and_the_overview(page: Page, browser: Browser, console: Console) -> None:
    ready_component(console.stack)
    page.goto(f"{console.url}/authorizers")
    expect(page.locator("#login-form")).to_be_visible()
    shot(page, "01-sign-in")
    page.fill("#key", "wrong-key")
    page.click("#sign-in")
    expect(page.locator("#login-error")).to_have_text("密钥不正确。")
    page.fill("#key", API_KEY)
    page.click("#sign-in")
    # Back where the sign-in started, signed in.
    expect(page.locator("#search-form")).to_be_visible()
    expect(page.locator("#operator")).to_contain_text("API 密钥 #")
    cookie = next(c for c in page.context.cookies() if c["name"] == "console_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert 1700 < cookie["expires"] - time.time() <= 1800
    page.goto(f"{console.url}/")
    card = page.locator(f"section[data-component='{console.stack.demo.appid}']")
    expect(card).to_have_attribute("data-healthy", "yes")
    expect(card.locator("li[data-check='component_access_token']")).to_contain_text("后过期")
    expect(card.locator("li[data-check='最近一次刷新']")).to_contain_text("renewed")
    shot(page, "02-overview")
    # A 45009 pause stands out.
    console.stack.store.modify_component(
        console.stack.demo.appid,
        lambda r: r.but(
            authorizer_token_quota_until=time.time() + 600, authorizer_token_quota_strikes=1
        ),
    )
    page.reload()
    expect(card).to_have_attribute("data-healthy", "no")
    expect(card.locator("li[data-check='45009 暂停']")).to_have_attribute("data-tone", "bad")
    shot(page, "03-overview-unhealthy")
    # A phone's screen, 390 px wide: the same page reads.
    phone = browser.new_context(
        locale="zh-CN", viewport={"width": 390, "height": 844}, device_scale_factor=2
    )
    small = phone.new_page()
    sign_in(small, console)
    small.goto(f"{console.url}/")
    expect(small.locator(f"section[data-component='{console.stack.demo.appid}']")).to_be_visible()
    width = small.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a 390 px screen"
    shot(small, "04-overview-phone")
    phone.close()


def test_finding_an_authorizer_among_2000(page: Page, console: Console) -> None:
    appids = seed(console.stack, 2000)
    sign_in(page, console)
    page.goto(f"{console.url}/authorizers")
    rows = page.locator("#authorizer-table tr[data-appid]")
    expect(rows).to_have_count(50)
    page.click("#next-page")
    expect(rows.first).to_have_attribute("data-appid", appids[50])
    page.fill("#q", "门店1234")
    page.click("#search")
    expect(rows).to_have_count(1)
    shot(page, "05-search-among-2000")
    page.fill("#q", "门店12")
    page.select_option("#type", "official_account")
    page.select_option("#status", "needs_reauthorization")
    page.click("#search")
    expected = [a for i, a in enumerate(appids) if 1200 <= i < 1300 and i % 2 == 0 and i % 7 == 0]
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.appid)") == expected
    page.fill("#q", appids[1234][:-1])
    page.select_option("#type", "")
    page.select_option("#status", "")
    page.click("#search")
    expect(rows).to_have_count(16)
    page.click(f"a:text('{appids[1234]}')")
    expect(page.locator("#nick-name")).to_have_text("门店1234")
    expect(page.locator("#permission-sets")).to_contain_text("消息管理")
    expect(page.locator("#permission-sets")).to_contain_text("自定义菜单")
    expect(page.locator("#token-expires")).not_to_have_text("—")
    shot(page, "06-authorizer-detail")


def test_a_generated_link_scanned_ends_in_an_authorized_account(
    page: Page, browser: Browser, console: Console
) -> None:
    stack = console.stack
    ready_component(stack)
    account = stack.mock.create_account(
        {
            "type": "official_account",
            "nick_name": "扫码公众号",
            "principal_name": "扫码公司",
            "admin": ADMIN,
        }
    )["appid"]
    sign_in(page, console)
    page.goto(f"{console.url}/links")
    page.select_option("#auth-type", "1")
    page.check("input[name=category_id][value='1']")
    page.check("input[name=category_id][value='15']")
    page.click("#generate")
    expect(page.locator("#issued")).to_be_visible()
    assert (page.locator("#pc-url").input_value()).startswith(
        stack.mock_url + "/cgi-bin/componentloginpage?"
    )
    assert "/wxaopen/safe/bindcomponent?" in page.locator("#h5-url").input_value()
    shot(page, "07-link-generator")
    # The merchant scans the QR code on the screen: its picture, as the browser paints it.
    scanned = scan_qr(page.locator("#qrcode").screenshot())
    assert scanned == page.locator("#entry-url").input_value()
    assert scanned.startswith(f"{stack.service_url}/authorize/{stack.demo.appid}?auth_type=1")
    merchant = browser.new_context(locale="zh-CN", viewport={"width": 1000, "height": 800})
    phone = merchant.new_page()
    phone.goto(scanned)  # the entry page on the 授权发起页域名
    phone.click("#pc-link")
    phone.select_option("#admin", ADMIN)
    phone.click("#scan-as-admin")
    phone.click(f"a.account[data-appid='{account}']")
    expect(phone.locator("#confirm-form")).to_be_visible()
    phone.click("#confirm")
    expect(phone.locator("main[data-outcome=authorized]")).to_be_visible()
    shot(phone, "08-merchant-authorized")
    merchant.close()
    record = stored_authorizer(stack, account)
    assert record.status == "authorized" and set(record.func_info) == {1, 15}
    page.goto(f"{console.url}/authorizers?q=扫码")
    expect(page.locator(f"#authorizer-table tr[data-appid='{account}']")).to_be_visible()
    shot(page, "09-authorized-in-the-list")


def test_renewing_a_token(page: Page, console: Console) -> None:
    stack = console.stack
    ready_component(stack)
    appid = authorized_merchant(stack)
    before = stored_authorizer(stack, appid)
    calls = len(stack.mock.calls("api_authorizer_token"))
    sign_in(page, console)
    page.goto(f"{console.url}/components/{stack.demo.appid}/authorizers/{appid}")
    shot(page, "10-before-renewing")
    page.click("#renew")
    expect(page.locator("#result")).to_have_attribute("data-tone", "ok")
    expect(page.locator("#result-message")).to_contain_text("已刷新")
    shot(page, "11-renewed")
    assert len(stack.mock.calls("api_authorizer_token")) == calls + 1
    after = stored_authorizer(stack, appid)
    assert after.access_token != before.access_token
    assert (after.access_token_expires_at or 0) >= (before.access_token_expires_at or 0)
    assert after.access_token not in page.content()
    page.goto(f"{console.url}/audit")
    expect(page.locator("#audit-table tr[data-action='renew_token']")).to_contain_text("ok")


def test_a_sync_with_its_report(page: Page, console: Console) -> None:
    stack = console.stack
    ready_component(stack)
    appids = [authorized_merchant(stack) for _ in range(2)]
    # One record lost its refresh token: the sync recovers it from WeChat's list.
    stack.store.modify_authorizer(
        stack.demo.appid,
        appids[0],
        lambda r: r.but(refresh_token=None, status="revoked") if r else None,
    )
    sign_in(page, console)
    page.goto(f"{console.url}/operations")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"#sync-{stack.demo.appid}")
    expect(page.locator("#sync-report")).to_be_visible()
    expect(page.locator("#sync-listed")).to_contain_text("2")
    expect(page.locator("#sync-recovered")).to_have_text("1")
    shot(page, "12-sync-report")
    assert stored_authorizer(stack, appids[0]).status == "authorized"


def test_a_replayed_push_reaches_the_subscriber_again(page: Page, console: Console) -> None:
    stack = console.stack
    ready_component(stack)
    appid = authorized_merchant(stack)
    wait_for(
        lambda: bool(console.envelopes(info_type="authorized", authorizer_appid=appid)),
        20,
        "the authorized notice",
    )
    stack.mock.send_message(appid, stack.demo.appid, content="控制台你好")
    wait_for(lambda: bool(console.envelopes(msg_type="text")), 20, "the text message")
    sign_in(page, console)

    def logged() -> bool:
        page.goto(f"{console.url}/pushes")
        html = page.content()
        return "控制台你好" in html and 'data-kind="authorized"' in html

    wait_for(logged, 20, "both pushes in the push log")
    assert "queryauthcode@@@" not in re.sub(r"queryauthcode@@@\[redacted\]", "", page.content())
    shot(page, "13-push-log")
    page.fill("#filter-kind", "authorized")
    page.click("#filter")
    row = page.locator("#push-table tr[data-kind='authorized']")
    expect(row).to_have_count(1)
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button.replay").click()
    expect(page.locator("#result")).to_have_attribute("data-tone", "ok")
    shot(page, "14-replayed")

    def replayed() -> list[dict[str, Any]]:
        return [
            e
            for e in console.envelopes(info_type="authorized", authorizer_appid=appid)
            if e.get("replayed_at")
        ]

    wait_for(lambda: bool(replayed()), 20, "the replay at the subscriber")
    original = [
        e
        for e in console.envelopes(info_type="authorized", authorizer_appid=appid)
        if not e.get("replayed_at")
    ]
    assert len(replayed()) == 1 and original
    assert replayed()[0]["dedup_key"] == original[0]["dedup_key"]
    assert replayed()[0]["result"]["status"] == "authorized"
    # Replayed into the routes only: no second code exchange.
    assert len(stack.mock.calls("api_query_auth")) == 1
