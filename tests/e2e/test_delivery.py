"""Every push delivered to the provider's services: Pub/Sub routes and reply routes (issue 13).

The real parts: gunicorn with 2 workers, mock WeChat, the Firestore emulator, a Pub/Sub
emulator of this module's own (some tests stop it), and the demo subscriber as a real
process behind a real push subscription. Routes:

- texts to REPLY_OA: a reply route (the demo subscriber answers "你说：…");
- texts to SLOW_OA: a reply route that answers after its deadline;
- everything else, from both URLs: the Pub/Sub topic, pushed to the subscriber.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.emulator import clear_emulator
from devstack.processes import ManagedProcess, free_port
from devstack.pubsub_emulator import PubSubAdmin, start_pubsub_emulator
from devstack.stack import start_demo_subscriber
from tests.e2e.helpers import (
    ADMIN,
    confirm_authorization,
    log_entries,
    ready_component,
    stored_authorizer,
    wait_for,
)
from tests.stack import E2E_PROJECT, Stack, start_stack

TOPIC = "gateway-pushes"
SUBSCRIPTION = "test-subscriber"
REPLY_OA = "wx" + "a1" * 8
SLOW_OA = "wx" + "b2" * 8
SLOW_REPLY_DEADLINE = 2.0
PUBLISH_DEADLINE = 2.0
ROUTING_ATTRIBUTES = {"component_appid", "authorizer_appid", "source", "msg_type", "event"}


@dataclass
class Delivery:
    stack: Stack
    pubsub: ManagedProcess
    pubsub_port: int
    subscriber: ManagedProcess
    subscriber_port: int
    logs: Path

    @property
    def subscriber_url(self) -> str:
        return f"http://127.0.0.1:{self.subscriber_port}"

    def received(self, via: str = "push") -> list[dict[str, Any]]:
        response = requests.get(f"{self.subscriber_url}/received", params={"via": via}, timeout=10)
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()["received"]
        return entries

    def envelopes(self, **where: Any) -> list[dict[str, Any]]:
        """Pushed envelopes whose fields equal ``where``."""
        return [
            e
            for e in self.received()
            if all(e["envelope"].get(key) == value for key, value in where.items())
        ]

    def wait_envelope(self, timeout: float = 20, **where: Any) -> dict[str, Any]:
        wait_for(lambda: bool(self.envelopes(**where)), timeout, f"an envelope with {where}")
        return self.envelopes(**where)[-1]

    def start_pubsub(self) -> None:
        self.pubsub, _ = start_pubsub_emulator(self.logs / "pubsub.log", port=self.pubsub_port)
        admin = PubSubAdmin(f"127.0.0.1:{self.pubsub_port}", E2E_PROJECT)
        admin.create_topic(TOPIC)
        admin.create_push_subscription(SUBSCRIPTION, TOPIC, f"{self.subscriber_url}/push")

    def start_subscriber(self) -> None:
        self.subscriber = start_demo_subscriber(self.subscriber_port, self.logs / "subscriber.log")


def routes(subscriber_url: str) -> str:
    return json.dumps(
        [
            {
                "name": "slow-replies",
                "match": {
                    "source": ["messages"],
                    "msg_type": ["text"],
                    "authorizer_appids": [SLOW_OA],
                },
                "reply": f"{subscriber_url}/reply?delay=6",
                "deadline": SLOW_REPLY_DEADLINE,
            },
            {
                "name": "replies",
                "match": {
                    "source": ["messages"],
                    "msg_type": ["text"],
                    "authorizer_appids": [REPLY_OA],
                },
                "reply": f"{subscriber_url}/reply",
            },
            {"name": "everything", "pubsub": TOPIC},
        ]
    )


@pytest.fixture(scope="module")
def delivery_stack(
    firestore_emulator: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Delivery]:
    logs = tmp_path_factory.mktemp("delivery")
    subscriber_port, pubsub_port = free_port(), free_port()
    subscriber = start_demo_subscriber(subscriber_port, logs / "subscriber.log")
    delivery = Delivery(
        stack=None,  # type: ignore[arg-type]  # set below, once Pub/Sub is up
        pubsub=None,  # type: ignore[arg-type]
        pubsub_port=pubsub_port,
        subscriber=subscriber,
        subscriber_port=subscriber_port,
        logs=logs,
    )
    try:
        delivery.start_pubsub()
        delivery.stack = start_stack(
            firestore_emulator,
            logs,
            {
                "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{pubsub_port}",
                "MESSAGE_ROUTES": routes(delivery.subscriber_url),
                "MESSAGE_PUBLISH_DEADLINE": str(PUBLISH_DEADLINE),
            },
        )
        yield delivery
    finally:
        if delivery.stack is not None:
            delivery.stack.service.stop()
            delivery.stack.mock_process.stop()
        for process in (delivery.pubsub, delivery.subscriber):
            if process is not None:
                process.stop()


@pytest.fixture
def delivery(delivery_stack: Delivery, e2e_reset: None) -> Delivery:
    return delivery_stack


@pytest.fixture
def e2e_reset(delivery_stack: Delivery, monkeypatch: pytest.MonkeyPatch) -> None:
    stack = delivery_stack
    if stack.pubsub.process.poll() is not None:
        stack.start_pubsub()  # a test that stopped it failed before starting it again
    if stack.subscriber.process.poll() is not None:
        stack.start_subscriber()
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", stack.stack.firestore_host)
    stack.stack.mock.reset()
    clear_emulator(stack.stack.firestore_host, E2E_PROJECT)
    stack.stack.register_component()
    ready_component(stack.stack)


CODES: list[str] = []  # authorization codes handed out in this module


def authorize(stack: Stack, kind: str = "official_account", appid: str | None = None) -> str:
    """A merchant of ``kind`` that authorized the demo component; its appid."""
    spec: dict[str, Any] = {
        "type": kind,
        "nick_name": f"测试{kind}",
        "principal_name": "测试公司",
        "admin": ADMIN,
    }
    if appid:
        spec["appid"] = appid
    appid = str(stack.mock.create_account(spec)["appid"])
    confirmed = confirm_authorization(stack, appid)
    assert confirmed["push"]["delivered"] is True, confirmed
    CODES.append(confirmed["auth_code"])
    assert stored_authorizer(stack, appid).status == "authorized"
    return appid


def secrets_of(stack: Stack, appid: str) -> list[str]:
    """What must never reach a subscriber: the merchant's tokens and codes."""
    record = stored_authorizer(stack, appid)
    values = [record.access_token, record.refresh_token, *CODES]
    return [v for v in values if v]


def assert_attributes(entry: dict[str, Any]) -> None:
    """The Pub/Sub attributes repeat the envelope's routing fields, for filters."""
    envelope, attributes = entry["envelope"], entry["attributes"]
    for name in (*ROUTING_ATTRIBUTES, "info_type"):
        if envelope.get(name):
            assert attributes.get(name) == envelope[name], (name, attributes)
        else:
            assert name not in attributes, (name, attributes)


def test_text_click_and_audit_events_reach_the_subscriber(delivery: Delivery) -> None:
    stack = delivery.stack
    oa = authorize(stack)
    mini = authorize(stack, "mini_program")
    text = f"hello {uuid.uuid4().hex[:8]}"
    sent = stack.mock.send_message(oa, stack.demo.appid, content=text)
    assert sent["outcome"] == "success" and len(sent["tries"]) == 1, sent
    click = stack.mock.send_message(
        oa, stack.demo.appid, msg_type="event", event="CLICK", fields={"EventKey": "MENU_1"}
    )
    assert click["outcome"] == "success", click
    audit = stack.mock.send_message(
        mini,
        stack.demo.appid,
        msg_type="event",
        event="weapp_audit_fail",
        fields={"Reason": "页面内容不符合规范", "FailTime": 1764547200},
    )
    assert audit["outcome"] == "success", audit

    got = delivery.wait_envelope(msg_type="text", authorizer_appid=oa)
    envelope = got["envelope"]
    assert envelope["fields"]["Content"] == text
    assert envelope["component_appid"] == stack.demo.appid
    assert envelope["account_type"] == "official_account"
    assert envelope["source"] == "messages" and envelope["event"] is None
    assert envelope["xml"].startswith("<xml>") and text in envelope["xml"]
    assert envelope["received_at"].endswith("+00:00") and len(envelope["dedup_key"]) == 64
    assert envelope["result"] is None
    assert_attributes(got)

    got = delivery.wait_envelope(event="CLICK", authorizer_appid=oa)
    assert got["envelope"]["msg_type"] == "event"
    assert got["envelope"]["fields"]["EventKey"] == "MENU_1"
    assert got["attributes"]["event"] == "CLICK"
    assert_attributes(got)

    got = delivery.wait_envelope(event="weapp_audit_fail", authorizer_appid=mini)
    assert got["envelope"]["account_type"] == "mini_program"
    assert got["envelope"]["fields"]["Reason"] == "页面内容不符合规范"
    assert_attributes(got)

    received = json.dumps(delivery.received(), ensure_ascii=False)
    for secret in secrets_of(stack, oa) + secrets_of(stack, mini):
        assert secret not in received


def test_authorized_and_unauthorized_notices_carry_the_result(delivery: Delivery) -> None:
    stack = delivery.stack
    oa = authorize(stack)
    got = delivery.wait_envelope(info_type="authorized", authorizer_appid=oa)
    envelope = got["envelope"]
    assert envelope["source"] == "events" and envelope["msg_type"] is None
    assert envelope["result"]["status"] == "authorized"
    assert envelope["result"]["account_type"] == "official_account"
    assert envelope["result"]["func_info"] and envelope["result"]["permission_sets"][0]["name"]
    assert "AuthorizationCode" not in envelope["fields"]
    assert "<AuthorizationCode>" not in envelope["xml"]
    assert "AuthorizationCodeExpiredTime" in envelope["fields"]
    assert envelope["fields"]["AuthorizerAppid"] == oa
    assert_attributes(got)
    secrets = secrets_of(stack, oa)  # before the revocation deletes the tokens

    pushed = stack.mock.unauthorize(oa, stack.demo.appid)
    assert pushed["push"]["delivered"] is True, pushed
    got = delivery.wait_envelope(info_type="unauthorized", authorizer_appid=oa)
    assert got["envelope"]["result"]["status"] == "revoked"
    assert got["attributes"]["info_type"] == "unauthorized"
    received = json.dumps(delivery.received(), ensure_ascii=False)
    assert secrets and not [s for s in secrets if s in received]
    # WeChat pushing the same notice again gives the subscriber nothing new.
    index = next(
        i for i, p in enumerate(stack.mock.pushes()) if p.get("info_type") == "unauthorized"
    )
    stack.mock.redeliver(index)
    time.sleep(2)
    assert len(delivery.envelopes(info_type="unauthorized", authorizer_appid=oa)) == 1


def test_a_reply_route_answers_the_user_encrypted(delivery: Delivery) -> None:
    stack = delivery.stack
    oa = authorize(stack, appid=REPLY_OA)
    sent = stack.mock.send_message(oa, stack.demo.appid, content="在吗")
    # "reply" is the mock's verdict on a reply it decrypted and checked: a plaintext
    # or badly sealed answer would be "invalid".
    assert sent["outcome"] == "reply", sent
    assert sent["reply"]["Content"] == "你说：在吗"
    assert sent["user_sees"] == "你说：在吗"
    [asked] = [e for e in delivery.received("reply") if e["envelope"]["authorizer_appid"] == oa]
    assert asked["envelope"]["fields"]["Content"] == "在吗"
    # A reply route's messages do not also go to Pub/Sub: the first match wins.
    assert not delivery.envelopes(msg_type="text", authorizer_appid=oa)


def test_a_late_reply_route_leaves_the_user_without_an_error(delivery: Delivery) -> None:
    stack = delivery.stack
    oa = authorize(stack, appid=SLOW_OA)
    sent = stack.mock.send_message(oa, stack.demo.appid, content="slow")
    assert sent["outcome"] == "success", sent
    assert sent["user_sees"] is None
    assert len(sent["tries"]) == 1 and sent["tries"][0]["seconds"] < SLOW_REPLY_DEADLINE + 1.5
    logged = log_entries(stack.service.log_text())
    lines = [
        e for e in logged if e.get("message") == "reply route did not answer within 2 s: no reply"
    ]
    about = [e for e in logged if "reply route" in str(e.get("message"))]
    assert any(line["authorizer_appid"] == oa for line in lines), about[-5:]


def test_nothing_is_lost_while_the_subscriber_is_down_30_s(delivery: Delivery) -> None:
    stack = delivery.stack
    oa = authorize(stack)
    delivery.subscriber.stop()
    keys = [f"down-{i}-{uuid.uuid4().hex[:6]}" for i in range(5)]
    for key in keys:
        sent = stack.mock.send_message(
            oa, stack.demo.appid, msg_type="event", event="CLICK", fields={"EventKey": key}
        )
        assert sent["outcome"] == "success", sent  # Pub/Sub holds it
    time.sleep(30)
    delivery.start_subscriber()

    def arrived() -> set[str]:
        return {e["envelope"]["fields"]["EventKey"] for e in delivery.envelopes(event="CLICK")}

    wait_for(lambda: set(keys) <= arrived(), 60, "every message published while it was down")


def test_pubsub_down_means_no_success_and_the_retry_delivers(delivery: Delivery) -> None:
    stack = delivery.stack
    oa = authorize(stack)
    delivery.pubsub.stop()
    # WeChat's first try meets the outage; its second comes 12 s later, after it ended.
    stack.mock.set_faults(
        [
            {"api": "message_push", "delay": 0.01, "times": 1},
            {"api": "message_push", "delay": 12, "times": 1},
        ]
    )
    result: dict[str, Any] = {}
    sender = threading.Thread(
        target=lambda: result.update(
            stack.mock.send_message(
                oa, stack.demo.appid, msg_type="event", event="CLICK", fields={"EventKey": "outage"}
            )
        )
    )
    sender.start()
    time.sleep(PUBLISH_DEADLINE + 2)  # the first try has been answered by now
    delivery.start_pubsub()
    sender.join(60)
    assert not sender.is_alive()
    first, second = result["tries"][0], result["tries"][1]
    assert first["http_status"] == 503, result  # not "success": WeChat tries again
    assert second["http_status"] == 200 and result["outcome"] == "success", result
    got = delivery.wait_envelope(event="CLICK", authorizer_appid=oa)
    assert got["envelope"]["fields"]["EventKey"] == "outage"
    failed = log_entries(stack.service.log_text(), "message not answered: not delivered")
    assert any(
        line["authorizer_appid"] == oa and line["event"] == "push_not_delivered" for line in failed
    )  # what the deployment's alert counts


def test_pubsub_down_a_notice_is_applied_refused_and_delivered_when_pushed_again(
    delivery: Delivery,
) -> None:
    stack = delivery.stack
    oa = authorize(stack)
    delivery.pubsub.stop()
    pushed = stack.mock.unauthorize(oa, stack.demo.appid)
    assert pushed["push"]["delivered"] is False and pushed["push"]["http_status"] == 503, pushed
    assert stored_authorizer(stack, oa).status == "revoked"  # applied, though not delivered
    delivery.start_pubsub()
    index = next(
        i for i, p in enumerate(stack.mock.pushes()) if p.get("info_type") == "unauthorized"
    )
    assert stack.mock.redeliver(index)["delivered"] is True
    got = delivery.wait_envelope(info_type="unauthorized", authorizer_appid=oa)
    assert got["envelope"]["result"]["status"] == "revoked"
    history = stored_authorizer(stack, oa).history
    assert sum(1 for h in history if h["event"] == "unauthorized") == 1  # applied once
    stack.mock.redeliver(index)  # WeChat once more: already delivered, not again
    time.sleep(2)
    assert len(delivery.envelopes(info_type="unauthorized", authorizer_appid=oa)) == 1
    refused = log_entries(stack.service.log_text(), "push applied but not delivered: not answered")
    assert [line["event"] for line in refused][-1:] == ["push_not_delivered"]


def test_wechats_three_tries_give_one_dedup_key(delivery: Delivery) -> None:
    stack = delivery.stack
    oa = authorize(stack)
    # The gateway publishes and answers each try, but the answers of two are lost.
    stack.mock.set_faults([{"api": "message_push", "drop": True, "times": 2}])
    sent = stack.mock.send_message(oa, stack.demo.appid, content="three times")
    assert len(sent["tries"]) == 3 and sent["outcome"] == "success", sent
    wait_for(
        lambda: len(delivery.envelopes(msg_type="text", authorizer_appid=oa)) == 3,
        20,
        "three deliveries of the message",
    )
    got = delivery.envelopes(msg_type="text", authorizer_appid=oa)
    assert len({e["envelope"]["dedup_key"] for e in got}) == 1
    assert len({e["message_id"] for e in got}) == 3  # three Pub/Sub messages
    assert [e["duplicate"] for e in got] == [False, True, True]
