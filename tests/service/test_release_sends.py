"""The release check's customer-service text: sent once, recovered, never repeated.

The store is the Firestore emulator. The code exchange and the WeChat call are stand-ins
(the real ones are proven end to end in tests/e2e/test_release_check.py): what is tested
here is the record's phases under every way a process can stop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from service.authorizer_tokens import (
    AuthorizerToken,
    AuthorizerTokenManager,
    AuthorizerUnavailableError,
    RefreshFailedError,
)
from service.authorizer_tokens import Outcome as TokenOutcome
from service.code_exchange import CodeExchanger, ExchangeResult, Outcome
from service.proxy import AuthorizerProxy, ProxyAnswer, ProxyCall, UpstreamError
from service.release_sends import ReleaseSendPolicy, ReleaseSends, send_key
from service.store.firestore import FirestoreStore
from service.store.records import ReleaseSend

COMPONENT = "wx0123456789abcdef"
ACCOUNT = "wx570bc396a51b8ff8"
OPENID = "o_test_user"
CODE = "queryauthcode@@@abc"


@dataclass
class FakeExchanger:
    outcome: Outcome = Outcome.ALREADY
    codes: list[str] = field(default_factory=list)

    def exchange(
        self, component_appid: str, code: str, source: str, authorizer_appid: str
    ) -> ExchangeResult:
        self.codes.append(code)
        return ExchangeResult(self.outcome, reason="stand-in")


@dataclass
class FakeTokens:
    """The authorizer token: there, or a failure to raise instead."""

    failure: Exception | None = None

    def get(self, component_appid: str, appid: str) -> tuple[AuthorizerToken, TokenOutcome]:
        if self.failure is not None:
            raise self.failure
        return AuthorizerToken("token", 1e10), TokenOutcome.FRESH


@dataclass
class FakeProxy:
    """custom/send as WeChat answers it, or a failure to raise instead."""

    failure: Exception | None = None
    errcode: int = 0
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def forward(self, component_appid: str, appid: str, call: ProxyCall) -> ProxyAnswer:
        self.calls.append((call.path, json.loads(call.body)))
        if self.failure is not None:
            raise self.failure
        body = json.dumps({"errcode": self.errcode, "errmsg": "x"}).encode()
        return ProxyAnswer(200, body, {}, self.errcode)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def sends(
    store: FirestoreStore,
    exchanger: FakeExchanger,
    proxy: FakeProxy,
    clock: Clock,
    tokens: FakeTokens | None = None,
) -> ReleaseSends:
    return ReleaseSends(
        store,
        cast(CodeExchanger, exchanger),
        cast(AuthorizerTokenManager, tokens or FakeTokens()),
        cast(AuthorizerProxy, proxy),
        ReleaseSendPolicy(lease_seconds=30, max_attempts=3),
        clock=clock,
    )


def stored(store: FirestoreStore, key: str) -> ReleaseSend:
    record = store.modify_release_send(COMPONENT, key, lambda current: None).record
    assert record is not None
    return record


def test_a_send_is_queued_once_then_sent_with_the_exact_text(
    store: FirestoreStore, clock: Clock
) -> None:
    exchanger, proxy = FakeExchanger(), FakeProxy()
    queue = sends(store, exchanger, proxy, clock)
    key = queue.enqueue(COMPONENT, ACCOUNT, OPENID, CODE, "msg:1")
    assert queue.enqueue(COMPONENT, ACCOUNT, OPENID, CODE, "msg:1") == key  # WeChat's retry
    assert key == send_key(COMPONENT, ACCOUNT, "msg:1")
    assert queue.run(COMPONENT, key) == "sent"
    assert queue.run(COMPONENT, key) == "skipped"
    assert proxy.calls == [
        (
            "cgi-bin/message/custom/send",
            {"touser": OPENID, "msgtype": "text", "text": {"content": CODE + "_from_api"}},
        )
    ]
    assert exchanger.codes == [CODE]
    assert stored(store, key).status == "sent"
    assert store.open_release_sends(COMPONENT) == []


def test_a_claim_whose_holder_died_is_taken_over_after_its_lease(
    store: FirestoreStore, clock: Clock
) -> None:
    proxy = FakeProxy()
    queue = sends(store, FakeExchanger(), proxy, clock)
    key = queue.enqueue(COMPONENT, ACCOUNT, OPENID, CODE, "msg:1")
    assert queue._claim(COMPONENT, key, "dead-process") is not None  # then it stopped
    assert queue.recover(COMPONENT) == {"busy": 1}
    clock.now += 31
    assert queue.recover(COMPONENT) == {"sent": 1}
    assert len(proxy.calls) == 1


def test_a_send_abandoned_while_calling_wechat_is_never_repeated(
    store: FirestoreStore, clock: Clock
) -> None:
    proxy = FakeProxy()
    queue = sends(store, FakeExchanger(), proxy, clock)
    key = queue.enqueue(COMPONENT, ACCOUNT, OPENID, CODE, "msg:1")
    taken = queue._claim(COMPONENT, key, "dead-process")
    assert taken is not None and queue._advance(taken, "dead-process")  # then it stopped
    clock.now += 31
    assert queue.recover(COMPONENT) == {"unknown": 1}
    assert queue.recover(COMPONENT) == {}
    assert proxy.calls == [] and stored(store, key).status == "unknown"


def test_an_answer_lost_on_the_way_back_is_unknown_and_not_repeated(
    store: FirestoreStore, clock: Clock
) -> None:
    proxy = FakeProxy(failure=UpstreamError(504, "WeChat did not answer within 15 s"))
    queue = sends(store, FakeExchanger(), proxy, clock)
    key = queue.enqueue(COMPONENT, ACCOUNT, OPENID, CODE, "msg:1")
    assert queue.run(COMPONENT, key) == "unknown"
    clock.now += 3600
    assert queue.recover(COMPONENT) == {}
    assert len(proxy.calls) == 1


def test_a_send_that_surely_never_reached_wechat_is_tried_again(
    store: FirestoreStore, clock: Clock
) -> None:
    proxy = FakeProxy(failure=UpstreamError(502, "could not connect", reached=False))
    queue = sends(store, FakeExchanger(), proxy, clock)
    key = queue.enqueue(COMPONENT, ACCOUNT, OPENID, CODE, "msg:1")
    assert queue.run(COMPONENT, key) == "retry"
    assert stored(store, key).status == "pending"
    proxy.failure = None
    assert queue.recover(COMPONENT) == {"sent": 1}


def test_the_token_is_ready_before_the_send_so_a_failure_there_is_retried(
    store: FirestoreStore, clock: Clock
) -> None:
    proxy, tokens = FakeProxy(), FakeTokens(failure=RefreshFailedError("-1 from WeChat"))
    queue = sends(store, FakeExchanger(), proxy, clock, tokens)
    key = queue.enqueue(COMPONENT, ACCOUNT, OPENID, CODE, "msg:1")
    assert queue.run(COMPONENT, key) == "retry"
    assert proxy.calls == [] and stored(store, key).status == "pending"
    tokens.failure = None
    assert queue.recover(COMPONENT) == {"sent": 1}


def test_a_transient_code_exchange_failure_leaves_it_pending(
    store: FirestoreStore, clock: Clock
) -> None:
    exchanger, proxy = FakeExchanger(outcome=Outcome.ERROR), FakeProxy()
    queue = sends(store, exchanger, proxy, clock)
    key = queue.enqueue(COMPONENT, ACCOUNT, OPENID, CODE, "msg:1")
    assert queue.run(COMPONENT, key) == "retry"
    assert proxy.calls == []
    exchanger.outcome = Outcome.REFUSED  # exchanged elsewhere: the stored token is used
    assert queue.run(COMPONENT, key) == "sent"


def test_wechat_refusing_the_send_or_no_authorizer_fails_it_for_good(
    store: FirestoreStore, clock: Clock
) -> None:
    proxy, tokens = FakeProxy(errcode=45015), FakeTokens()
    queue = sends(store, FakeExchanger(), proxy, clock, tokens)
    refused = queue.enqueue(COMPONENT, ACCOUNT, OPENID, CODE, "msg:1")
    assert queue.run(COMPONENT, refused) == "failed"
    assert stored(store, refused).errcode == 45015
    tokens.failure = AuthorizerUnavailableError("revoked", "authorizer has cancelled")
    gone = queue.enqueue(COMPONENT, ACCOUNT, OPENID, CODE, "msg:2")
    assert queue.run(COMPONENT, gone) == "failed"
    assert queue.recover(COMPONENT) == {}


def test_after_too_many_attempts_it_fails(store: FirestoreStore, clock: Clock) -> None:
    queue = sends(store, FakeExchanger(outcome=Outcome.ERROR), FakeProxy(), clock)
    key = queue.enqueue(COMPONENT, ACCOUNT, OPENID, CODE, "msg:1")
    outcomes = [queue.run(COMPONENT, key) for _ in range(4)]
    assert outcomes == ["retry", "retry", "retry", "failed"]
