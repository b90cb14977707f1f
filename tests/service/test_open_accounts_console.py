"""The console's open platform account page (scene 2's report and bind-unbound), in-process
on the Firestore emulator, WeChat's open/* faked in-process (tests/service/open_wechat.py):
behind the console's sign-in and CSRF, the report only when asked, the action audited."""

from __future__ import annotations

import json
import re
import time

import pytest
from flask.testing import FlaskClient

from service import create_app
from service.config import Settings
from service.runtime import Runtime
from service.store.firestore import FirestoreStore
from service.store.records import AuthorizerRecord
from tests.service.open_wechat import FakeOpenWeChat

C1 = "wx00000000000000c1"
C2 = "wx00000000000000c2"
KEY = "console-open-accounts-key-0123"
AES = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
PRINCIPAL = "示例集团有限公司"
HQ, MERCHANT, ELSEWHERE = "wx00000000000000a1", "wx00000000000000a2", "wx00000000000000a3"


def client_for(project: str, wechat: FakeOpenWeChat, group: str | None) -> FlaskClient:
    components = [
        {"appid": c, "secret": "s", "token": "t", "encoding_aes_key": AES} for c in (C1, C2)
    ]
    env = {
        "WECHAT_COMPONENTS": json.dumps(components),
        "SERVICE_API_KEYS": KEY,
        "GOOGLE_CLOUD_PROJECT": project,
        "WECHAT_API_BASE": "http://127.0.0.1:9",
        **({"GROUP_OPEN_APPID": group} if group else {}),
    }
    runtime = Runtime(Settings.from_env(env))
    runtime.__dict__["proxy"] = wechat  # WeChat's side, in-process
    return create_app(runtime.settings, runtime=runtime).test_client()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def sign_in(client: FlaskClient) -> None:
    form = client.get("/console/login").get_data(True)
    signed = client.post("/console/login", data={"key": KEY, "csrf_token": csrf_of(form)})
    assert signed.status_code == 302, signed.get_data(True)


@pytest.fixture
def wechat(firestore_project: str) -> FakeOpenWeChat:
    """hq bound to the group (made through the API); a merchant of both components unbound;
    one bound to an open platform account of its own."""
    store = FirestoreStore(project=firestore_project)
    fake = FakeOpenWeChat()
    for appid, components in ((HQ, (C1,)), (MERCHANT, (C1, C2)), (ELSEWHERE, (C2,))):
        fake.account(appid, PRINCIPAL, components)
        for component in components:
            record = AuthorizerRecord(
                component_appid=component,
                appid=appid,
                account_type="official_account",
                nick_name=f"<b>号{appid[-2:]}</b>",
                principal_name=PRINCIPAL,
                authorized_at=time.time(),
                refresh_token="refresh",
            )
            store.modify_authorizer(component, appid, lambda _, r=record: r)
    group = fake.website_account(PRINCIPAL, HQ)
    fake.opens[group] = (PRINCIPAL, True)
    fake.website_account(PRINCIPAL, ELSEWHERE)
    return fake


def test_without_group_open_appid_the_page_says_how_to_set_it(
    firestore_project: str, wechat: FakeOpenWeChat
) -> None:
    client = client_for(firestore_project, wechat, None)
    assert client.get("/console/open-accounts").status_code == 302  # to the sign-in
    sign_in(client)
    html = client.get("/console/open-accounts?run=1").get_data(True)
    assert 'id="no-group"' in html and "GROUP_OPEN_APPID" in html and "group_open_appid" in html
    assert wechat.calls == []


def test_the_report_runs_when_asked_and_bind_unbound_is_audited(
    firestore_project: str, wechat: FakeOpenWeChat
) -> None:
    group = next(o for o, (_, via_api) in wechat.opens.items() if via_api)
    client = client_for(firestore_project, wechat, group)
    sign_in(client)
    visit = client.get("/console/open-accounts").get_data(True)
    assert group in visit and 'id="group-report"' not in visit
    assert wechat.calls == []  # a plain visit asks WeChat nothing

    html = client.get("/console/open-accounts?run=1").get_data(True)
    assert 'data-clean="false"' in html
    assert re.search(r'id="count-unbound">1<', html) and re.search(r'id="count-bound">1<', html)
    unbound = html[html.index('id="unbound-table"') : html.index("</table>", html.index("unbound"))]
    assert MERCHANT in unbound and f"{C1} {C2}" in unbound
    elsewhere = html[html.index('id="elsewhere-table"') :]
    assert ELSEWHERE in elsewhere[: elsewhere.index("</table>")]
    assert "&lt;b&gt;号" in html and "<b>号" not in html  # names are escaped
    assert len(wechat.api_calls("open/get")) == 3

    refused = client.post("/console/open-accounts/bind-unbound", data={"csrf_token": "nope"})
    assert refused.status_code == 403 and wechat.api_calls("open/bind") == []
    done = client.post("/console/open-accounts/bind-unbound", data={"csrf_token": csrf_of(html)})
    assert done.status_code == 200, done.get_data(True)
    result = done.get_data(True)
    assert re.search(r'id="bound-count">1<', result) and MERCHANT in result
    assert wechat.bound[MERCHANT] == group and wechat.bound[ELSEWHERE] != group
    assert wechat.api_calls("open/unbind") == []

    audit = client.get("/console/audit").get_data(True)
    assert "bind_unbound" in audit and group in audit
    again = client.get("/console/open-accounts?run=1").get_data(True)
    assert 'data-clean="false"' in again and re.search(r'id="count-bound">2<', again)
