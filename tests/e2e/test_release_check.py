"""The 全网发布 check end to end: mock WeChat runs it against gunicorn (2 workers) on the
emulator, and every step passes for all ten test accounts; each typical bug fails the
step it should; a worker killed right after its answer still ends with the text sent; a
retried message acts once; hostile pushes get a 4xx and change nothing."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.processes import free_port
from devstack.stack import mock_registration, service_env, start_service
from service.wechat.crypto import MessageCrypto
from service.wechat.messages import build_xml
from service.wechat.release_accounts import (
    RELEASE_TEST_ACCOUNTS,
    TEXT_PROBE,
    accounts_of_group,
)
from tests.e2e.helpers import log_entries, refresh, wait_for
from tests.stack import API_KEY, E2E_PROJECT, Stack

pytestmark = pytest.mark.e2e

STEPS = ("ticket", "authorize", "text", "api_text", "event")


def failed_steps(report: dict[str, Any]) -> dict[tuple[str, str | None], str]:
    return {(s["step"], s["account"]): s["reason"] for s in report["steps"] if not s["passed"]}


def custom_texts(stack: Stack) -> list[dict[str, Any]]:
    return [m for m in stack.mock._call("GET", "/messages")["messages"] if m["msgtype"] == "text"]


def release_sends(stack: Stack) -> list[dict[str, Any]]:
    sends = (
        stack.store.client.collection("components")
        .document(stack.demo.appid)
        .collection("release_sends")
        .stream()
    )
    return [doc.to_dict() for doc in sends]


# ----- the real gateway passes ---------------------------------------------------------


def test_all_groups_pass_every_step_and_the_test_accounts_are_authorizers(
    e2e: Stack,
) -> None:
    report = e2e.mock.release_check(e2e.demo.appid, all_groups=True)
    assert failed_steps(report) == {}, report
    assert report["passed"] is True
    assert len(report["steps"]) == 1 + 4 * len(RELEASE_TEST_ACCOUNTS)
    assert {s["step"] for s in report["steps"]} == set(STEPS)
    for account in RELEASE_TEST_ACCOUNTS:
        record = e2e.store.get_authorizer(e2e.demo.appid, account.appid)
        assert record is not None, account
        assert record.status == "authorized" and record.release_test is True
        assert record.user_name == account.user_name
    # Each code went to api_query_auth once (by the authorized push), never twice.
    exchanges = e2e.mock.calls("api_query_auth")
    assert len(exchanges) == len(RELEASE_TEST_ACCOUNTS)
    texts = custom_texts(e2e)
    assert len(texts) == len(RELEASE_TEST_ACCOUNTS)
    assert all(t["text"]["content"].endswith("_from_api") for t in texts)
    assert {s["status"] for s in release_sends(e2e)} == {"sent"}


def test_the_logs_show_types_and_appids_but_no_content_code_token_or_key(e2e: Stack) -> None:
    report = e2e.mock.release_check(e2e.demo.appid, group=2)
    assert report["passed"], report
    log = e2e.service.log_text()
    answered = log_entries(log, "message answered")
    assert {(e["authorizer_appid"], e["msg_type"]) for e in answered} >= {
        (a.appid, "text") for a in accounts_of_group(2)
    }
    assert all(e["component_appid"] == e2e.demo.appid for e in answered)
    secrets = [TEXT_PROBE, e2e.demo.token, e2e.demo.encoding_aes_key, e2e.demo.secret]
    for message in e2e.mock._call("GET", "/messages")["messages"]:
        secrets.append(message["text"]["content"].removesuffix("_from_api"))  # the code
        secrets.append(message["touser"])  # the test user's openid
    for account in accounts_of_group(2):
        record = e2e.store.get_authorizer(e2e.demo.appid, account.appid)
        assert record is not None and record.access_token and record.refresh_token
        secrets += [record.access_token, record.refresh_token]
    for secret in secrets:
        assert secret not in log, f"{secret[:12]}... is in the service log"


# ----- each typical bug fails the step it should ---------------------------------------


@contextmanager
def serving_instead(
    e2e: Stack,
    log: Path,
    settings: dict[str, str],
    app: str = "service:create_app()",
    name: str = "service (gunicorn)",
) -> Iterator[Stack]:
    """The stack with another gunicorn (2 workers) in the real service's place at the mock."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = service_env([e2e.demo], url, e2e.mock_url, E2E_PROJECT, e2e.firestore_host, API_KEY)
    process = start_service(port, {**env, **settings}, log, workers=2, app=app, name=name)
    try:
        e2e.mock.register_component(
            mock_registration(
                e2e.demo,
                event_url=f"{url}/wechat/{e2e.demo.appid}/events",
                auth_domain="127.0.0.1",
                message_url=f"{url}/wechat/{e2e.demo.appid}/messages/$APPID$",
                auto_push=False,
            )
        )
        yield Stack(**{**vars(e2e), "service_url": url, "service": process})
    finally:
        process.stop()


@pytest.fixture
def mutant(e2e: Stack, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The stack with a mutated service in place of the real one."""
    with serving_instead(
        e2e,
        tmp_path / "mutant.log",
        {"GATEWAY_MUTATION": request.param},
        app="tests.e2e.mutated_service:create_app()",
        name=f"mutated service ({request.param})",
    ) as stack:
        yield stack


@pytest.mark.parametrize(
    ("mutant", "steps", "reason"),
    [
        ("reply_left_unencrypted", {"text", "event"}, "加密"),
        ("callback_suffix_dropped", {"text"}, "TESTCOMPONENT_MSG_TYPE_TEXT_callback"),
        ("custom_message_sent_before_the_reply", {"api_text"}, "早于"),
        ("code_exchanged_twice", {"api_text"}, "重复"),
    ],
    indirect=["mutant"],
)
def test_each_mutation_fails_the_steps_it_breaks(
    mutant: Stack, steps: set[str], reason: str
) -> None:
    report = mutant.mock.release_check(mutant.demo.appid, group=1)
    failed = failed_steps(report)
    assert report["passed"] is False
    assert set(failed) == {(s, a.appid) for s in steps for a in accounts_of_group(1)}, failed
    for (step, _), why in failed.items():
        assert reason in why or step != min(steps), failed


# ----- the send survives the worker that answered ---------------------------------------


@pytest.fixture
def fragile(e2e: Stack, tmp_path: Path) -> Iterator[Stack]:
    """The service with 3 s leases, renewing an authorizer token before every use (so the
    release send's token step calls WeChat, where a fault can hold it)."""
    # A token lives 7200 s from its request, so it is never valid for 7200 more: renewed.
    settings = {"REFRESH_LEASE_SECONDS": "3", "AUTHORIZER_TOKEN_MIN_TTL": "7200"}
    with serving_instead(e2e, tmp_path / "fragile.log", settings) as stack:
        yield stack


def test_a_worker_killed_right_after_its_answer_still_ends_with_the_text_sent(
    fragile: Stack,
) -> None:
    oa, mp = (a.appid for a in accounts_of_group(1))
    fragile.mock.set_faults([{"api": "api_authorizer_token", "delay": 6, "times": 1}])
    reports: list[dict[str, Any]] = []
    check = threading.Thread(
        target=lambda: reports.append(
            fragile.mock.release_check(fragile.demo.appid, group=1, send_deadline=40)
        )
    )
    check.start()

    def claimed() -> list[dict[str, Any]]:
        lines = log_entries(
            fragile.service.log_text(), "release check: customer-service text claimed"
        )
        return [e for e in lines if e["authorizer_appid"] == oa]

    wait_for(lambda: bool(claimed()), 30, "the OA's text claimed after the empty answer")
    worker = claimed()[0]["pid"]
    assert worker != fragile.service.pid  # a gunicorn worker, not the master
    os.kill(worker, signal.SIGKILL)  # mid token renewal: nothing was sent yet
    time.sleep(3.5)  # the claim's and the renewal's leases run out
    report = refresh(fragile)
    assert report["components"][fragile.demo.appid]["release_sends"] == {"sent": 1}, report
    check.join(60)
    assert reports and reports[0]["passed"], reports
    texts = [t for t in custom_texts(fragile) if t["authorizer_appid"] == oa]
    assert len(texts) == 1, texts
    assert {t["authorizer_appid"] for t in custom_texts(fragile)} == {oa, mp}


# ----- WeChat's retry acts once -----------------------------------------------------------


def test_a_message_retried_after_5_s_is_acted_on_once(e2e: Stack) -> None:
    assert e2e.mock.release_check(e2e.demo.appid, group=4)["passed"]
    oa = accounts_of_group(4)[0].appid
    before = len(custom_texts(e2e))
    e2e.mock.set_faults([{"api": "message_push", "delay_after": 5.5, "times": 1}])
    code = "queryauthcode@@@retried-once"
    delivery = e2e.mock.send_message(oa, e2e.demo.appid, content=f"QUERY_AUTH_CODE:{code}")
    assert len(delivery["tries"]) == 2, delivery  # the first answer came too late
    assert delivery["outcome"] == "empty", delivery
    wait_for(lambda: len(custom_texts(e2e)) > before, 10, "the customer-service text sent")
    time.sleep(1)  # room for a second one, which must not come
    sent = [t for t in custom_texts(e2e) if t["text"]["content"] == f"{code}_from_api"]
    assert len(sent) == 1, sent
    assert [s["status"] for s in release_sends(e2e) if s["code"] == code] == ["sent"]
    answered = [
        e
        for e in log_entries(e2e.service.log_text(), "message answered")
        if e["outcome"] == "release_check_api_text" and e["authorizer_appid"] == oa
    ]
    assert len({e["dedup_key"] for e in answered[-2:]}) == 1  # the same message twice


# ----- hostile pushes ------------------------------------------------------------------------


def hostile(stack: Stack, case: str) -> tuple[str, dict[str, str], bytes]:
    """A QUERY_AUTH_CODE message to group 5's official account, spoiled one way."""
    account = accounts_of_group(5)[0]
    to = account.user_name
    content = "QUERY_AUTH_CODE:queryauthcode@@@hostile"
    if case == "ToUserName of another account":
        to = accounts_of_group(3)[0].user_name
    xml = build_xml(
        {
            "ToUserName": to,
            "FromUserName": "o_hostile",
            "CreateTime": int(time.time()),
            "MsgType": "text",
            "Content": content,
            "MsgId": "1",
        }
    )
    demo = stack.demo
    sender = "wx00000000000000ff" if case == "wrong AppId in the cipher" else demo.appid
    token = "forged-token" if case == "bad signature" else demo.token
    timestamp = int(time.time()) - (3600 if case == "stale timestamp" else 0)
    sealed = MessageCrypto(token, demo.encoding_aes_key, sender).seal(xml, str(timestamp), "7")
    query = {
        "signature": sealed.signature,
        "timestamp": sealed.timestamp,
        "nonce": sealed.nonce,
        "openid": "o_hostile",
        "encrypt_type": "aes",
        "msg_signature": sealed.msg_signature,
    }
    body = build_xml({"ToUserName": to, "Encrypt": sealed.encrypt}).encode()
    if case == "XXE":
        body = (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            b"<xml><ToUserName>&e;</ToUserName><Encrypt>a</Encrypt></xml>"
        )
    if case == "oversized body":
        body = b"<xml><Encrypt>" + b"A" * 400_000 + b"</Encrypt></xml>"
    path_appid = "not-an-appid" if case == "path appid not an appid" else account.appid
    return path_appid, query, body


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("bad signature", 403),
        ("stale timestamp", 400),
        ("wrong AppId in the cipher", 400),
        ("XXE", 400),
        ("oversized body", 413),
        ("path appid not an appid", 400),
        ("ToUserName of another account", 400),
    ],
)
def test_hostile_pushes_get_a_4xx_and_nothing_is_stored_or_sent(
    ready: Stack, case: str, status: int
) -> None:
    path_appid, query, body = hostile(ready, case)
    response = requests.post(
        f"{ready.service_url}/wechat/{ready.demo.appid}/messages/{path_appid}",
        params=query,
        data=body,
        headers={"Content-Type": "text/xml"},
        timeout=10,
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]
    time.sleep(0.3)  # whatever a wrongly accepted push would set off
    assert release_sends(ready) == []
    assert custom_texts(ready) == []
    assert ready.mock.calls("message_custom_send") == []
