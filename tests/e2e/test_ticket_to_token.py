"""Ticket push → component token, end to end over real HTTP between real processes."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from service.store.records import ComponentRecord
from service.wechat.messages import build_xml
from tests.e2e.helpers import refresh, signed_push
from tests.stack import Stack

pytestmark = pytest.mark.e2e


def health(stack: Stack) -> dict[str, Any]:
    response = requests.get(f"{stack.service_url}/healthz", timeout=10)
    assert response.status_code == 200
    component: dict[str, Any] = response.json()["components"][stack.demo.appid]
    return component


def ticket_xml(stack: Stack, ticket: str, create_time: int) -> str:
    return build_xml(
        {
            "AppId": stack.demo.appid,
            "CreateTime": create_time,
            "InfoType": "component_verify_ticket",
            "ComponentVerifyTicket": ticket,
        }
    )


def test_pushed_ticket_yields_a_component_token_shown_by_healthz(e2e: Stack) -> None:
    pushed = e2e.mock.push_ticket(e2e.demo.appid)
    assert pushed["delivered"] is True
    assert e2e.store.get_component(e2e.demo.appid).ticket == pushed["ticket"]

    report = refresh(e2e)
    assert (report["renewed"], report["failed"]) == (1, 0)
    calls = e2e.mock.calls("api_component_token")
    assert [(c["appid"], c["errcode"]) for c in calls] == [(e2e.demo.appid, 0)]

    component = health(e2e)
    assert 0 <= component["ticket_age_seconds"] < 30
    assert 7100 < component["component_token_expires_in_seconds"] <= 7200
    assert component["last_error"] is None


def test_duplicate_and_older_pushes_change_nothing(e2e: Stack) -> None:
    newer = ticket_xml(e2e, "ticket@@@newer", 1_800_000_200)
    assert signed_push(e2e, newer).text == "success"
    stored = e2e.store.get_component(e2e.demo.appid)
    assert (stored.ticket, stored.ticket_create_time) == ("ticket@@@newer", 1_800_000_200)

    duplicate = signed_push(e2e, newer)
    older = signed_push(e2e, ticket_xml(e2e, "ticket@@@older", 1_800_000_100))
    assert (duplicate.status_code, duplicate.text) == (200, "success")
    assert (older.status_code, older.text) == (200, "success")
    assert e2e.store.get_component(e2e.demo.appid) == stored


XXE = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    "<xml><AppId>&x;</AppId><Encrypt>abc</Encrypt></xml>"
)


@pytest.mark.parametrize("attack", ["wrong signature", "wrong AppId", "XXE body"])
def test_refused_pushes_get_a_4xx_and_store_nothing(e2e: Stack, attack: str) -> None:
    xml = ticket_xml(e2e, "ticket@@@evil", 1_900_000_000)
    if attack == "wrong signature":
        response = signed_push(e2e, xml, token="not-the-token")
    elif attack == "wrong AppId":
        response = signed_push(e2e, xml, appid="wx00000000000000ff")
    else:
        response = requests.post(
            e2e.events_url,
            params={"msg_signature": "0" * 40, "timestamp": str(int(time.time())), "nonce": "1"},
            data=XXE.encode(),
            timeout=10,
        )
    assert 400 <= response.status_code < 500
    assert response.json()["error"]
    assert e2e.store.get_component(e2e.demo.appid) == ComponentRecord(appid=e2e.demo.appid)


def test_system_busy_once_is_retried_and_succeeds(e2e: Stack) -> None:
    e2e.mock.set_faults([{"api": "api_component_token", "errcode": -1, "times": 1}])
    e2e.mock.push_ticket(e2e.demo.appid)
    report = refresh(e2e)
    assert (report["renewed"], report["failed"]) == (1, 0)
    calls = e2e.mock.calls("api_component_token")
    assert [c["errcode"] for c in calls] == [-1, 0]
    assert health(e2e)["component_token_expires_in_seconds"] > 7000


def test_a_failed_refresh_answers_503_so_cloud_scheduler_retries(e2e: Stack) -> None:
    e2e.mock.push_ticket(e2e.demo.appid)
    e2e.mock.set_faults([{"api": "api_component_token", "errcode": 61004, "times": 1}])
    report = refresh(e2e, status=503)
    assert report["failed"] == 1
    assert report["components"][e2e.demo.appid]["component_token"] == "failed"
    assert "61004" in report["components"][e2e.demo.appid]["error"]
    assert '"event": "component_token_refresh_failed"' in e2e.service.log_text()
    # The retry succeeds once WeChat does.
    assert refresh(e2e, status=200)["renewed"] == 1


def test_missing_ticket_makes_the_service_ask_for_a_push(e2e: Stack) -> None:
    first = refresh(e2e, status=None)  # the pushed ticket may land before the token call
    assert first["components"][e2e.demo.appid]["ticket_push_requested"] is True
    assert [c["errcode"] for c in e2e.mock.calls("api_start_push_ticket")] == [0]
    deadline = time.monotonic() + 5
    while e2e.store.get_component(e2e.demo.appid).ticket is None:
        assert time.monotonic() < deadline, "the mock did not push a ticket within 5 s"
        time.sleep(0.1)
    # The pushed ticket may arrive before the same sweep reads it, or only after.
    second = refresh(e2e)
    assert first["renewed"] + second["renewed"] == 1
    assert second["failed"] == 0
    assert health(e2e)["component_token_expires_in_seconds"] > 7000
    assert len(e2e.mock.calls("api_start_push_ticket")) == 1


def test_ten_concurrent_refreshes_of_an_expired_token_make_one_upstream_call(e2e: Stack) -> None:
    e2e.mock.push_ticket(e2e.demo.appid)
    assert refresh(e2e)["renewed"] == 1
    old_token = e2e.store.get_component(e2e.demo.appid).component_token
    # Age the stored token past its expiry, and slow WeChat down so the callers overlap.
    e2e.store.modify_component(
        e2e.demo.appid, lambda r: r.but(component_token_expires_at=time.time() - 1)
    )
    e2e.mock.set_faults([{"api": "api_component_token", "delay": 1.0, "times": 1}])
    log_mark = len(e2e.service.log_text())

    with ThreadPoolExecutor(10) as pool:
        reports = list(pool.map(lambda _: refresh(e2e), range(10)))

    calls = e2e.mock.calls("api_component_token")
    assert len(calls) == 2, f"expected one call after expiry, the mock saw {calls}"
    assert sorted(r["renewed"] for r in reports) == [0] * 9 + [1]
    assert all(r["failed"] == 0 for r in reports)
    new_token = e2e.store.get_component(e2e.demo.appid).component_token
    assert new_token and new_token != old_token

    sweeps = [
        json.loads(line)
        for line in e2e.service.log_text()[log_mark:].splitlines()
        if '"refresh sweep done"' in line
    ]
    assert len(sweeps) == 10
    assert len({entry["pid"] for entry in sweeps}) == 2, "the calls did not reach both workers"


def test_logs_and_answers_never_show_secrets(e2e: Stack) -> None:
    pushed = e2e.mock.push_ticket(e2e.demo.appid)
    refresh(e2e)
    signed_push(e2e, ticket_xml(e2e, "ticket@@@x", 1), token="wrong")
    token = e2e.store.get_component(e2e.demo.appid).component_token
    assert token
    exposed = (
        e2e.service.log_text()
        + e2e.mock_process.log_text()
        + requests.get(f"{e2e.service_url}/healthz", timeout=10).text
    )
    for secret in (
        e2e.demo.secret,
        e2e.demo.token,
        e2e.demo.encoding_aes_key,
        token,
        pushed["ticket"],
    ):
        assert secret not in exposed
