"""Helpers shared by the end-to-end tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import requests

from service.store.records import AuthorizerRecord
from service.wechat.crypto import MessageCrypto
from service.wechat.messages import build_envelope
from tests.stack import Stack


def refresh(stack: Stack, status: int | None = 200) -> dict[str, Any]:
    """One sweep's report, answered 503 exactly when something failed that Cloud Scheduler
    should retry. ``status=None`` when a race decides which."""
    response = requests.post(f"{stack.service_url}/tasks/refresh", headers=stack.auth, timeout=60)
    report: dict[str, Any] = response.json()
    assert response.status_code == (503 if report["failed"] else 200), response.text
    assert status is None or response.status_code == status, response.text
    return report


def signed_push(
    stack: Stack, xml: str, token: str | None = None, appid: str | None = None
) -> requests.Response:
    """A push built and signed here, as WeChat would (to replay or tamper with it)."""
    demo = stack.demo
    crypto = MessageCrypto(token or demo.token, demo.encoding_aes_key, appid or demo.appid)
    sealed = crypto.seal(xml, str(int(time.time())), "42")
    return requests.post(
        stack.events_url,
        params={
            "signature": sealed.signature,
            "timestamp": sealed.timestamp,
            "nonce": sealed.nonce,
            "encrypt_type": "aes",
            "msg_signature": sealed.msg_signature,
        },
        data=build_envelope(demo.appid, sealed.encrypt).encode(),
        headers={"Content-Type": "text/xml"},
        timeout=10,
    )


# ----- a component ready to work, and authorized merchants -----------------------------

ADMIN = "merchant-admin"


def ready_component(stack: Stack) -> None:
    """The demo component with a ticket and a fresh component token."""
    assert stack.mock.push_ticket(stack.demo.appid)["delivered"]
    report = refresh(stack)
    assert report["components"][stack.demo.appid]["component_token"] == "renewed", report


def create_merchant(
    stack: Stack, kind: str = "official_account", principal_name: str = "测试公司"
) -> str:
    """A merchant account on the mock (not authorized yet); its appid."""
    created = stack.mock.create_account(
        {"type": kind, "nick_name": f"测试{kind}", "principal_name": principal_name, "admin": ADMIN}
    )
    appid: str = created["appid"]
    return appid


def confirm_authorization(
    stack: Stack, appid: str, category_ids: list[int] | None = None
) -> dict[str, Any]:
    """The merchant confirms on the mock (headless), for a fresh pre_auth_code of ours."""
    response = requests.post(
        f"{stack.service_url}/api/v1/components/{stack.demo.appid}/authorize-links",
        json={"auth_type": 3},
        headers=stack.auth,
        timeout=30,
    )
    assert response.status_code == 201, response.text
    request: dict[str, Any] = {
        "component_appid": stack.demo.appid,
        "pre_auth_code": response.json()["pre_auth_code"],
        "authorizer_appid": appid,
    }
    if category_ids is not None:
        request["category_ids"] = category_ids
    return stack.mock.authorize(request)


def authorized_merchant(
    stack: Stack,
    kind: str = "official_account",
    category_ids: list[int] | None = None,
    principal_name: str = "测试公司",
) -> str:
    """A merchant that authorized the component: the push was delivered and exchanged."""
    appid = create_merchant(stack, kind, principal_name)
    confirmed = confirm_authorization(stack, appid, category_ids)
    assert confirmed["push"] is not None and confirmed["push"]["delivered"] is True, confirmed
    record = stored_authorizer(stack, appid)
    assert record.status == "authorized" and record.refresh_token and record.access_token
    return appid


def put(stack: Stack, record: AuthorizerRecord) -> None:
    """Write ``record`` into the store as it is, replacing any stored one."""
    stack.store.modify_authorizer(record.component_appid, record.appid, lambda _: record)


def seed_authorizers(stack: Stack, count: int, expires_at: float) -> list[str]:
    """``count`` merchants authorized on the mock (no pushes), written straight into the
    store as authorized with WeChat's refresh token and a token expiring at ``expires_at``."""
    response = requests.post(
        f"{stack.mock_url}/_mock/components/{stack.demo.appid}/authorizers/seed",
        json={"count": count},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    appids = []
    for index, seeded in enumerate(response.json()["authorizers"]):
        appid, refresh_token = seeded["authorizer_appid"], seeded["refresh_token"]
        record = AuthorizerRecord(
            component_appid=stack.demo.appid,
            appid=appid,
            account_type="official_account",
            authorized_at=time.time(),
            access_token=f"seeded-token-{index}",
            access_token_expires_at=expires_at,
            refresh_token=refresh_token,
        )
        put(stack, record)
        appids.append(appid)
    return appids


# ----- the authorizer API ---------------------------------------------------------------


def authorizer_url(stack: Stack, appid: str, rest: str = "") -> str:
    return f"{stack.service_url}/api/v1/components/{stack.demo.appid}/authorizers/{appid}{rest}"


def request_token(
    stack: Stack, appid: str, invalid_token: str | None = None, timeout: float = 60
) -> requests.Response:
    body = None if invalid_token is None else {"invalid_token": invalid_token}
    return requests.post(
        authorizer_url(stack, appid, "/token"), json=body, headers=stack.auth, timeout=timeout
    )


def token_of(stack: Stack, appid: str, invalid_token: str | None = None) -> dict[str, Any]:
    """A 200 answer of the token API, as JSON."""
    response = request_token(stack, appid, invalid_token)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def proxy(
    stack: Stack, appid: str, path: str, method: str = "GET", **kwargs: Any
) -> requests.Response:
    return requests.request(
        method,
        authorizer_url(stack, appid, f"/proxy/{path}"),
        headers=stack.auth,
        timeout=60,
        **kwargs,
    )


def sync(stack: Stack) -> dict[str, Any]:
    response = requests.post(
        f"{stack.service_url}/api/v1/components/{stack.demo.appid}/sync",
        headers=stack.auth,
        timeout=60,
    )
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


# ----- the store, the mock and the log ---------------------------------------------------


def stored_authorizer(stack: Stack, appid: str) -> AuthorizerRecord:
    record = stack.store.get_authorizer(stack.demo.appid, appid)
    assert record is not None, f"no authorizer {appid} in the store"
    return record


def make_due(stack: Stack, appid: str, expires_at: float | None = None) -> None:
    """Age the stored access token, as the service sees it (WeChat's side is unchanged)."""
    when = time.time() - 1 if expires_at is None else expires_at
    stack.store.modify_authorizer(
        stack.demo.appid,
        appid,
        lambda r: None if r is None else r.but(access_token_expires_at=when),
    )


def token_calls(stack: Stack) -> list[dict[str, Any]]:
    """The mock's log of api_authorizer_token calls."""
    return stack.mock.calls("api_authorizer_token")


def advance_mock_clock(stack: Stack, seconds: float) -> None:
    response = requests.post(f"{stack.mock_url}/_mock/clock", json={"advance": seconds}, timeout=10)
    assert response.status_code == 200, response.text


def call_wechat(stack: Stack, api: str, body: dict[str, Any]) -> dict[str, Any]:
    """A component API on the mock, called as the service would, with the stored token."""
    token = stack.store.get_component(stack.demo.appid).component_token
    assert token, "no component token stored"
    response = requests.post(
        f"{stack.mock_url}/cgi-bin/component/{api}",
        params={"component_access_token": token},
        json=body,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def wechat_refresh_tokens(stack: Stack) -> dict[str, str]:
    """authorizer appid -> refresh token, as WeChat's api_get_authorizer_list lists them."""
    listed = call_wechat(
        stack,
        "api_get_authorizer_list",
        {"component_appid": stack.demo.appid, "offset": 0, "count": 500},
    )
    assert listed.get("errcode", 0) == 0, listed
    return {e["authorizer_appid"]: e["refresh_token"] for e in listed["list"]}


def log_entries(text: str, message: str | None = None) -> list[dict[str, Any]]:
    """The JSON log lines of ``text`` (optionally only those with this message)."""
    entries = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if message is None or entry.get("message") == message:
            entries.append(entry)
    return entries


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not {what} within {timeout} s"
        time.sleep(0.02)
