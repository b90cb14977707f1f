"""Messages to a 消息与事件接收URL, with the state in this process and a short try timeout.

The receiver is a real HTTP server (``helpers.Receiver``); the mock's side is
``MessagePusher`` over ``MockWeChat``, as the control plane drives it, with a 0.3 s
timeout instead of WeChat's 5 s. Custom messages go through ``api_dispatch.call_api``
like the HTTP layer's.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mock_wechat.api_dispatch import call_api, wait_for_reply
from mock_wechat.api_handlers import answer as api_answer
from mock_wechat.api_table import API_NAMES
from mock_wechat.config import InvalidField
from mock_wechat.control_inputs import parse_fault_rules
from mock_wechat.deliveries import CUSTOMER_SERVICE_WINDOW, MessageRefused
from mock_wechat.faults import MESSAGE_PUSH, FaultRule
from mock_wechat.merchant_accounts import AccountSpec, UnknownAccountError
from mock_wechat.message_pusher import MessagePusher
from mock_wechat.models import Clock, MockWeChat, UnknownComponentError
from mock_wechat.protocol import AccountKind
from mock_wechat.reply_judge import UNAVAILABLE
from mock_wechat.user_messages import SYSTEM_OPENID, UserMessage
from service.wechat.crypto import MessageCrypto
from service.wechat.messages import build_xml, parse_xml
from tests.mock_wechat.helpers import (
    AES_KEY,
    APPID,
    OTHER,
    SECRET,
    T0,
    TOKEN,
    ReceivedPush,
    Receiver,
    config,
)

TIMEOUT = 0.3
FAN = "oFan_9xQk2LmNpQrStUvWxYz0123"
CRYPTO = MessageCrypto(TOKEN, AES_KEY, APPID)


class Setup:
    """A component whose message_url is the receiver, and one authorized account."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.state = MockWeChat(Clock(wall=lambda: T0))
        url = f"http://127.0.0.1:{receiver.port}/wechat/messages/$APPID$"
        self.state.register_component(config(auto_push=False, message_url=url))
        [self.grant] = self.state.seed_authorizers(APPID, AccountKind.OFFICIAL_ACCOUNT, 1)
        self.appid = self.grant.authorizer_appid
        self.user_name = self.state.accounts.get(self.appid).user_name
        self.pusher = MessagePusher(self.state, timeout=TIMEOUT)

    def send(self, **request: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {"msg_type": "text", "content": "你好", "from_user": FAN}
        fields.update(request)
        return self.pusher.send(self.appid, UserMessage(APPID, **fields)).to_dict()

    def token(self) -> dict[str, str]:
        state = self.state
        ticket = state.issue_ticket(APPID).value
        body = {
            "component_appid": APPID,
            "component_appsecret": SECRET,
            "component_verify_ticket": ticket,
        }
        ctoken = api_answer(state, "api_component_token", body)["component_access_token"]
        answer = api_answer(
            state,
            "api_authorizer_token",
            {
                "component_appid": APPID,
                "authorizer_appid": self.appid,
                "authorizer_refresh_token": self.grant.refresh_token,
            },
            {"component_access_token": ctoken},
        )
        return {"access_token": answer["authorizer_access_token"]}

    def custom_send(self, query: dict[str, str], touser: str = FAN) -> int:
        body = {"touser": touser, "msgtype": "text", "text": {"content": "稍后回复"}}
        answer = call_api(self.state, "message_custom_send", json.dumps(body).encode(), query)
        return int(answer["errcode"])

    def reply_to(self, openid: str = FAN, content: str = "收到") -> bytes:
        """An encrypted passive text reply, as a service builds it."""
        reply = {
            "ToUserName": openid,
            "FromUserName": self.user_name,
            "CreateTime": int(time.time()),
            "MsgType": "text",
            "Content": content,
        }
        seal = CRYPTO.seal(build_xml(reply), "1700000000", "42")
        envelope = {
            "Encrypt": seal.encrypt,
            "MsgSignature": seal.msg_signature,
            "TimeStamp": 1_700_000_000,
            "Nonce": "42",
        }
        return build_xml(envelope).encode()


@pytest.fixture
def setup(receiver: Receiver) -> Iterator[Setup]:
    yield Setup(receiver)


def opened(push: ReceivedPush) -> tuple[dict[str, str], str]:
    """The envelope's fields and the decrypted message, checked as a receiver must."""
    q = push.query
    CRYPTO.verify_signature(q["signature"], q["timestamp"], q["nonce"])
    envelope = parse_xml(push.body)
    plain = CRYPTO.verify_and_decrypt(
        q["msg_signature"], q["timestamp"], q["nonce"], envelope["Encrypt"]
    )
    return envelope, plain.message


# ----- the push and its answer -------------------------------------------------------------


def test_a_message_is_sealed_and_sent_as_wechat_sends_it(setup: Setup) -> None:
    record = setup.send()
    [push] = setup.receiver.pushes()
    assert list(push.query) == [
        "signature",
        "timestamp",
        "nonce",
        "openid",
        "encrypt_type",
        "msg_signature",
    ]
    assert push.query["openid"] == FAN and push.query["encrypt_type"] == "aes"
    assert abs(int(push.query["timestamp"]) - time.time()) < 5
    assert push.headers["Content-Type"] == "text/xml"
    envelope, message = opened(push)
    assert list(envelope) == ["ToUserName", "Encrypt"] and envelope["ToUserName"] == setup.user_name
    assert message == record["message"]
    fields = parse_xml(message)
    assert (fields["ToUserName"], fields["FromUserName"], fields["Content"]) == (
        setup.user_name,
        FAN,
        "你好",
    )
    assert record["url"] == f"http://127.0.0.1:{setup.receiver.port}/wechat/messages/{setup.appid}"
    assert (record["outcome"], record["reason"], record["user_sees"]) == ("success", None, None)
    assert [(t["http_status"], t["error"]) for t in record["tries"]] == [(200, None)]
    assert record["msg_id"] == fields["MsgId"] and record["create_time"] == int(
        fields["CreateTime"]
    )
    assert record["sent_at"] <= record["answered_at"]
    assert setup.state.account_messages(setup.appid) == [record]


def test_an_encrypted_reply_is_what_the_user_sees(setup: Setup) -> None:
    setup.receiver.reply = setup.reply_to(content="您好，已收到")
    record = setup.send()
    assert (record["outcome"], record["user_sees"]) == ("reply", "您好，已收到")
    assert record["reply"]["FromUserName"] == setup.user_name
    assert "已收到" in record["reply_xml"]


def test_a_reply_to_the_wrong_user_is_invalid(setup: Setup) -> None:
    setup.receiver.reply = setup.reply_to(openid="oSomeoneElse")
    record = setup.send()
    assert (record["outcome"], record["user_sees"]) == ("invalid", UNAVAILABLE)
    assert "ToUserName" in record["reason"] and len(record["tries"]) == 1  # never retried


def test_failed_tries_are_retried_with_the_same_message_sealed_afresh(setup: Setup) -> None:
    setup.receiver.status = 503
    record = setup.send()
    assert [(t["http_status"], t["error"]) for t in record["tries"]] == [(503, "HTTP 503")] * 3
    assert (record["outcome"], record["user_sees"]) == ("no_answer", UNAVAILABLE)
    assert "3 tries" in record["reason"] and "HTTP 503" in record["reason"]
    pushes = setup.receiver.pushes()
    assert len(pushes) == 3
    assert {opened(p)[1] for p in pushes} == {record["message"]}
    assert len({parse_xml(p.body)["Encrypt"] for p in pushes}) == 3


def test_a_late_answer_times_out_and_the_next_try_counts(setup: Setup) -> None:
    def slow_once(push: ReceivedPush) -> None:
        if len(setup.receiver.pushes()) == 1:
            time.sleep(TIMEOUT + 0.3)

    setup.receiver.on_push = slow_once
    record = setup.send()
    first, second = record["tries"]
    assert (first["http_status"], first["error"]) == (None, "timed out after 0.3s")
    assert TIMEOUT <= first["seconds"] < TIMEOUT + 0.2
    assert (second["http_status"], record["outcome"]) == (200, "success")


def test_an_unreachable_url_is_no_answer(setup: Setup) -> None:
    setup.receiver.close()
    record = setup.send()
    assert [t["error"] for t in record["tries"]] == ["request failed: ConnectionError"] * 3
    assert record["outcome"] == "no_answer"


# ----- refusals and records ------------------------------------------------------------------


def test_refused_messages_are_not_recorded(setup: Setup) -> None:
    state = setup.state
    with pytest.raises(UnknownAccountError):
        setup.pusher.send("wx0000000000000000", UserMessage(APPID, "text"))
    with pytest.raises(UnknownComponentError):
        setup.pusher.send(setup.appid, UserMessage(OTHER, "text"))
    stranger = state.accounts.add(AccountSpec(AccountKind.OFFICIAL_ACCOUNT, "号", "公司", "bob"))
    with pytest.raises(MessageRefused) as refused:
        setup.pusher.send(stranger.appid, UserMessage(APPID, "text"))
    assert refused.value.field == "authorization" and stranger.appid in str(refused.value)
    state.authorizations.unauthorize(APPID, setup.appid)
    with pytest.raises(MessageRefused):
        setup.send()
    state.register_component(config(OTHER, auto_push=False))
    state.seed_authorizers(OTHER, AccountKind.OFFICIAL_ACCOUNT, 1)
    [other] = [g for g in state.authorizations.grants.of_component(OTHER)]
    with pytest.raises(MessageRefused) as no_url:
        setup.pusher.send(other.authorizer_appid, UserMessage(OTHER, "text"))
    assert str(no_url.value) == "message_url: component has no message_url"
    assert setup.receiver.pushes() == []
    assert (
        state.account_messages(setup.appid) == [] and state.account_messages(stranger.appid) == []
    )
    with pytest.raises(UnknownAccountError):
        state.account_messages("wx0000000000000000")


def test_a_reset_during_a_delivery_ends_it(setup: Setup) -> None:
    setup.receiver.on_push = lambda push: setup.state.reset()
    with pytest.raises(MessageRefused) as refused:
        setup.send()
    assert refused.value.field == "delivery"
    assert not setup.state.deliveries.in_flight(setup.appid, FAN)


# ----- message_push faults ---------------------------------------------------------------------


def faults(setup: Setup, **rule: Any) -> None:
    setup.state.set_faults([FaultRule(MESSAGE_PUSH, **rule)])


def test_delay_sleeps_before_the_try(setup: Setup) -> None:
    faults(setup, delay=0.25, times=1)
    started = time.monotonic()
    record = setup.send()
    assert time.monotonic() - started >= 0.25
    [only] = record["tries"]
    assert only["seconds"] < 0.25 and record["outcome"] == "success"


def test_delay_after_within_the_timeout_only_slows_the_try(setup: Setup) -> None:
    faults(setup, delay_after=0.1, times=1)
    [only] = setup.send()["tries"]
    assert only["http_status"] == 200 and 0.1 <= only["seconds"] < TIMEOUT


def test_delay_after_past_the_timeout_times_the_try_out_at_the_timeout(setup: Setup) -> None:
    faults(setup, delay_after=2.0, times=1)
    started = time.monotonic()
    record = setup.send()
    assert time.monotonic() - started < 1.0  # the try ended at the timeout, not after 2 s
    first, second = record["tries"]
    assert first["http_status"] is None and "held 2s" in first["error"]
    assert TIMEOUT <= first["seconds"] < TIMEOUT + 0.15
    assert second == {**second, "http_status": 200, "error": None}
    assert len(setup.receiver.pushes()) == 2  # the service got (and answered) both
    assert setup.state.list_faults()[0]["times"] == 0  # counted per try


def test_drop_loses_the_answer_and_the_next_try_follows(setup: Setup) -> None:
    faults(setup, drop=True, times=2)
    record = setup.send()
    errors = [t["error"] for t in record["tries"]]
    assert errors == ["answer lost: the connection was dropped"] * 2 + [None]
    assert record["outcome"] == "success" and len(setup.receiver.pushes()) == 3


def test_drop_every_time_is_no_answer(setup: Setup) -> None:
    faults(setup, drop=True)
    assert setup.send()["outcome"] == "no_answer"
    assert len(setup.receiver.pushes()) == 3


def test_api_rules_and_star_rules_leave_message_pushes_alone(setup: Setup) -> None:
    setup.state.set_faults(
        [FaultRule("*", drop=True, times=1), FaultRule("api_query_auth", delay=1)]
    )
    record = setup.send()
    assert len(record["tries"]) == 1 and record["outcome"] == "success"
    assert setup.state.list_faults()[0]["times"] == 1  # not consumed


@pytest.mark.parametrize("rule", [{"errcode": -1}, {"http_status": 500}])
def test_message_push_rules_cannot_answer_for_the_service(rule: dict[str, int]) -> None:
    with pytest.raises(InvalidField) as info:
        FaultRule(MESSAGE_PUSH, **rule)
    assert info.value.field == next(iter(rule)) and "message_push" in info.value.reason
    known = API_NAMES | {MESSAGE_PUSH}
    [parsed] = parse_fault_rules({"rules": [{"api": MESSAGE_PUSH, "drop": True}]}, known)
    assert parsed.api == MESSAGE_PUSH


# ----- the customer-service window (45015) and before_reply --------------------------------


def test_custom_messages_need_a_user_message_in_the_last_48_hours(setup: Setup) -> None:
    state, query = setup.state, setup.token()
    assert setup.custom_send(query) == 45015
    setup.receiver.status = 500
    record = setup.send()  # not answered: the window opens all the same
    assert record["outcome"] == "no_answer"
    assert setup.custom_send(query) == 0
    assert setup.custom_send(query, touser="oAnotherFan") == 45015
    assert record["sent_at"] == T0  # mock time, when the first try went out
    state.clock.advance(CUSTOMER_SERVICE_WINDOW)
    query = setup.token()  # the old one expired after 2 h
    assert setup.custom_send(query) == 0
    state.clock.advance(1)
    assert setup.custom_send(query) == 45015
    first, last = state.outbox.messages()
    assert (first["time"], last["time"]) == (T0, T0 + CUSTOMER_SERVICE_WINDOW)
    assert first["before_reply"] is False
    calls = state.calls("message_custom_send")
    assert [c["errcode"] for c in calls] == [45015, 0, 45015, 0, 45015]


def test_system_events_do_not_open_the_window(setup: Setup) -> None:
    query = setup.token()
    record = setup.send(msg_type="event", event="weapp_audit_success", content=None, from_user=None)
    assert record["openid"] == SYSTEM_OPENID
    assert setup.custom_send(query, touser=SYSTEM_OPENID) == 45015
    setup.send(msg_type="event", event="user_enter_tempsession", content=None)
    assert setup.custom_send(query) == 0


def test_a_custom_message_sent_before_the_answer_is_before_reply(setup: Setup) -> None:
    query = setup.token()
    codes: list[int] = []
    setup.receiver.on_push = lambda push: codes.append(setup.custom_send(query))
    setup.send()
    setup.receiver.on_push = None
    assert codes == [0]
    assert setup.custom_send(query) == 0
    assert [m["before_reply"] for m in setup.state.outbox.messages()] == [True, False]


def test_wait_for_reply_returns_when_the_answer_is_back(setup: Setup) -> None:
    """The HTTP layer's wait: an honest service's send that races its own answer."""
    query = setup.token()
    raw = json.dumps({"touser": FAN}).encode()
    waited: list[float] = []
    threads: list[threading.Thread] = []

    def wait() -> None:
        started = time.monotonic()
        wait_for_reply(setup.state, raw, query, 1.0)
        waited.append(time.monotonic() - started)

    def answer_later(push: ReceivedPush) -> None:
        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.1)  # the service is still answering
        setup.receiver.on_push = None
        threads.append(waiter)

    setup.receiver.on_push = answer_later
    setup.send()
    threads[0].join(2)
    assert 0.05 < waited[0] < 0.5


def test_wait_for_reply_gives_up_while_the_push_is_in_flight(setup: Setup) -> None:
    query = setup.token()
    raw = json.dumps({"touser": FAN}).encode()
    seen: list[tuple[float, bool]] = []

    def send_first(push: ReceivedPush) -> None:
        started = time.monotonic()
        wait_for_reply(setup.state, raw, query, 0.1)
        seen.append(
            (time.monotonic() - started, setup.state.deliveries.in_flight(setup.appid, FAN))
        )

    setup.receiver.on_push = send_first
    setup.send()
    [(seconds, in_flight)] = seen
    assert 0.1 <= seconds < 0.25 and in_flight
    # A call the API refuses anyway waits for nothing.
    started = time.monotonic()
    wait_for_reply(setup.state, raw, {"access_token": "12_nope"}, 1.0)
    assert time.monotonic() - started < 0.05


def test_the_custom_send_checks_come_in_order(setup: Setup) -> None:
    """The token, then the body, then the window."""
    query = setup.token()
    bad = json.dumps({"touser": FAN, "msgtype": "fax"}).encode()
    assert errcode_of_call(setup, bad, {"access_token": "12_nope"}) == 40001
    assert errcode_of_call(setup, bad, query) == 40008  # the body before the window
    assert setup.custom_send(query) == 45015


def errcode_of_call(setup: Setup, raw: bytes, query: dict[str, str]) -> int:
    return int(call_api(setup.state, "message_custom_send", raw, query)["errcode"])
