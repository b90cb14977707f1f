"""The component token manager and the ticket keeper, on the real Firestore emulator.

WeChat is an in-process fake here so each rule can be shown in isolation; the end-to-end
tests prove the same guarantees against the mock over HTTP, across gunicorn workers.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from service.component_token import (
    ComponentTokenManager,
    Outcome,
    TokenPolicy,
    TokenUnavailableError,
)
from service.config import ComponentConfig
from service.log_events import TICKET_STALE
from service.store.firestore import FirestoreStore
from service.tickets import TicketKeeper, TicketPolicy
from service.wechat.client import ComponentAccessToken, ComponentClient
from service.wechat.errors import InvalidCredentialError, TicketExpiredError, WeChatError
from service.wechat.messages import ComponentVerifyTicket

APPID = "wx0123456789abcdef"
COMPONENT = ComponentConfig(
    appid=APPID,
    secret="app-secret",
    token="msg-token",
    encoding_aes_key="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
)


class FakeWeChat(ComponentClient):
    """Counts calls; answers tokens t1, t2, ... after ``latency``; may fail instead."""

    def __init__(self, latency: float = 0.0, fail_with: WeChatError | None = None) -> None:
        super().__init__("http://fake.invalid")
        self.latency = latency
        self.fail_with = fail_with
        self.token_calls: list[str] = []
        self.push_requests = 0
        self._lock = threading.Lock()

    def api_component_token(
        self, component_appid: str, component_appsecret: str, component_verify_ticket: str
    ) -> ComponentAccessToken:
        with self._lock:
            self.token_calls.append(component_verify_ticket)
            number = len(self.token_calls)
        time.sleep(self.latency)
        if self.fail_with:
            raise self.fail_with
        return ComponentAccessToken(token=f"t{number}", expires_in=7200)

    def api_start_push_ticket(self, component_appid: str, component_secret: str) -> str:
        self.push_requests += 1
        return "ok"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def make(
    store: FirestoreStore, wechat: FakeWeChat, clock: Clock | None = None
) -> tuple[ComponentTokenManager, TicketKeeper]:
    clock_fn = clock or time.time
    tickets = TicketKeeper(store, wechat, {APPID: COMPONENT}, TicketPolicy(), clock=clock_fn)
    manager = ComponentTokenManager(
        store,
        wechat,
        {APPID: COMPONENT},
        tickets,
        TokenPolicy(refresh_margin=600, lease_seconds=5, poll_interval=0.05),
        clock=clock_fn,
    )
    return manager, tickets


def push_ticket(tickets: TicketKeeper, ticket: str = "ticket@@@1", create_time: int = 100) -> bool:
    return tickets.accept(
        ComponentVerifyTicket(APPID, create_time, "component_verify_ticket", ticket)
    )


def test_only_newer_tickets_are_stored(store: FirestoreStore) -> None:
    _, tickets = make(store, FakeWeChat())
    assert push_ticket(tickets, "ticket@@@b", 200)
    assert not push_ticket(tickets, "ticket@@@b", 200)  # duplicate
    assert not push_ticket(tickets, "ticket@@@a", 100)  # older
    assert push_ticket(tickets, "ticket@@@c", 300)
    record = store.get_component(APPID)
    assert (record.ticket, record.ticket_create_time) == ("ticket@@@c", 300)


def test_token_is_fetched_with_the_stored_ticket_and_kept(store: FirestoreStore) -> None:
    wechat = FakeWeChat()
    manager, tickets = make(store, wechat)
    push_ticket(tickets, "ticket@@@x")
    assert manager.obtain(APPID) == ("t1", Outcome.RENEWED)
    assert manager.obtain(APPID) == ("t1", Outcome.FRESH)
    assert wechat.token_calls == ["ticket@@@x"]
    assert store.get_component(APPID).component_token == "t1"


def test_token_is_renewed_ahead_of_expiry_by_the_margin(store: FirestoreStore) -> None:
    wechat, clock = FakeWeChat(), Clock()
    manager, tickets = make(store, wechat, clock)
    push_ticket(tickets)
    manager.get_token(APPID)
    clock.now += 7200 - 601  # still outside the 600 s margin
    assert manager.get_token(APPID) == "t1"
    push_ticket(tickets, "ticket@@@2", 200)
    clock.now += 2  # now inside it
    assert manager.obtain(APPID) == ("t2", Outcome.RENEWED)


def test_no_ticket_asks_for_a_push_at_most_once_a_minute(store: FirestoreStore) -> None:
    wechat, clock = FakeWeChat(), Clock()
    manager, _ = make(store, wechat, clock)
    for _ in range(3):
        with pytest.raises(TokenUnavailableError, match="no component_verify_ticket"):
            manager.get_token(APPID)
    assert wechat.push_requests == 1 and wechat.token_calls == []
    clock.now += 61
    with pytest.raises(TokenUnavailableError):
        manager.get_token(APPID)
    assert wechat.push_requests == 2
    record = store.get_component(APPID)
    assert record.refresh_lease_owner is None and "no component_verify_ticket" in (
        record.last_error or ""
    )


def test_stale_ticket_is_still_used_and_a_push_requested(
    store: FirestoreStore, caplog: pytest.LogCaptureFixture
) -> None:
    wechat, clock = FakeWeChat(), Clock()
    manager, tickets = make(store, wechat, clock)
    push_ticket(tickets)
    assert not tickets.check(APPID)
    clock.now += 1201
    assert manager.get_token(APPID) == "t1"
    assert wechat.push_requests == 1
    assert not tickets.check(APPID)  # rate-limited: asked less than a minute ago
    clock.now += 60
    assert tickets.check(APPID) and wechat.push_requests == 2
    stale = [r for r in caplog.records if getattr(r, "event", None) == TICKET_STALE]
    assert [r.ticket_age_seconds for r in stale] == [1201, 1261]  # type: ignore[attr-defined]


def test_expired_ticket_error_asks_for_a_push(store: FirestoreStore) -> None:
    wechat = FakeWeChat(fail_with=TicketExpiredError(61005, "component ticket is expired"))
    manager, tickets = make(store, wechat)
    push_ticket(tickets)
    with pytest.raises(TokenUnavailableError, match="61005"):
        manager.get_token(APPID)
    assert wechat.push_requests == 1
    assert "61005" in (store.get_component(APPID).last_error or "")


def test_concurrent_callers_share_one_refresh(store: FirestoreStore) -> None:
    wechat = FakeWeChat(latency=0.4)
    manager, tickets = make(store, wechat)
    push_ticket(tickets)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: manager.obtain(APPID), range(8)))
    assert len(wechat.token_calls) == 1
    assert {token for token, _ in results} == {"t1"}
    assert [outcome for _, outcome in results].count(Outcome.RENEWED) == 1


def test_a_failed_refresh_does_not_cause_a_stampede(store: FirestoreStore) -> None:
    wechat = FakeWeChat(latency=0.4, fail_with=WeChatError(48001, "api unauthorized"))
    manager, tickets = make(store, wechat)
    push_ticket(tickets)
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(manager.get_token, APPID) for _ in range(6)]
    for future in futures:
        with pytest.raises(TokenUnavailableError, match="48001"):
            future.result()
    assert len(wechat.token_calls) == 1


def test_while_one_process_renews_others_use_the_still_valid_token(store: FirestoreStore) -> None:
    wechat, clock = FakeWeChat(), Clock()
    manager, tickets = make(store, wechat, clock)
    push_ticket(tickets)
    manager.get_token(APPID)
    clock.now += 7000  # inside the margin, not expired
    store.modify_component(
        APPID, lambda r: r.but(refresh_lease_owner="other", refresh_lease_until=clock.now + 30)
    )
    assert manager.obtain(APPID) == ("t1", Outcome.FRESH)
    assert len(wechat.token_calls) == 1


def test_an_abandoned_lease_is_taken_over_after_it_expires(store: FirestoreStore) -> None:
    wechat, clock = FakeWeChat(), Clock()
    manager, tickets = make(store, wechat, clock)
    push_ticket(tickets)
    store.modify_component(
        APPID, lambda r: r.but(refresh_lease_owner="crashed", refresh_lease_until=clock.now - 1)
    )
    assert manager.obtain(APPID) == ("t1", Outcome.RENEWED)
    assert store.get_component(APPID).refresh_lease_owner is None


def test_invalidate_only_forgets_the_token_it_was_given(store: FirestoreStore) -> None:
    wechat = FakeWeChat()
    manager, tickets = make(store, wechat)
    push_ticket(tickets)
    manager.get_token(APPID)
    assert not manager.invalidate(APPID, "an-older-token")
    assert store.get_component(APPID).component_token == "t1"
    assert manager.invalidate(APPID, "t1")
    assert store.get_component(APPID).component_token is None


def test_call_with_token_renews_once_when_wechat_rejects_the_token(store: FirestoreStore) -> None:
    wechat = FakeWeChat()
    manager, tickets = make(store, wechat)
    push_ticket(tickets)
    seen: list[str] = []

    def call(token: str) -> str:
        seen.append(token)
        if token == "t1":
            raise InvalidCredentialError(40001, "invalid credential")
        return "done"

    assert manager.call_with_token(APPID, call) == "done"
    assert seen == ["t1", "t2"]
    assert len(wechat.token_calls) == 2


def test_call_with_token_retries_only_once(store: FirestoreStore) -> None:
    manager, tickets = make(store, FakeWeChat())
    push_ticket(tickets)
    calls = 0

    def always_rejected(token: str) -> None:
        nonlocal calls
        calls += 1
        raise InvalidCredentialError(40001, "invalid credential")

    with pytest.raises(InvalidCredentialError):
        manager.call_with_token(APPID, always_rejected)
    assert calls == 2
