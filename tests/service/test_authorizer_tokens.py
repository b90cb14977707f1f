"""Authorizer tokens on the real Firestore emulator, WeChat faked in-process.

The end-to-end tests prove the guarantees over HTTP with the mock and several processes;
here each rule is shown alone: one refresher, the refresh token stored with the access
token, credentials kept on failure, 61023 / 61003 / 45009, nothing served once revoked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest

from service.authorizer_tokens import (
    AuthorizerNotFoundError,
    AuthorizerTokenManager,
    AuthorizerTokenPolicy,
    AuthorizerUnavailableError,
    Outcome,
    QuotaBackoffError,
    RefreshFailedError,
)
from service.component_token import Outcome as ComponentOutcome
from service.log_events import AUTHORIZER_REFRESH_FAILED, REFRESH_TOKEN_REJECTED
from service.store.firestore import FirestoreStore
from service.store.records import AuthorizerRecord, AuthorizerStatus, ComponentRecord, TokenGlance
from service.wechat.client import AuthorizerAccessToken, ComponentClient
from service.wechat.errors import (
    NotAuthorizedError,
    QuotaExceededError,
    RefreshTokenInvalidError,
    SystemBusyError,
    WeChatError,
)

COMPONENT = "wx0123456789abcdef"
MERCHANT = "wx326eecacf7370d4e"
T = TypeVar("T")


class FakeComponentTokens:
    """Always has a component token; the rest of the component's record is the stored one
    (so a 45009 pause written by the manager is seen)."""

    def __init__(self, store: FirestoreStore) -> None:
        self.store = store

    def obtain_record(self, appid: str) -> tuple[ComponentRecord, ComponentOutcome]:
        record = self.store.get_component(appid).but(
            component_token="component-token", component_token_expires_at=time.time() + 7200
        )
        return record, ComponentOutcome.FRESH

    def call_with_token(self, appid: str, call: Callable[[str], T], token: str | None = None) -> T:
        return call(token or "component-token")


class FakeWeChat(ComponentClient):
    """api_authorizer_token only: counts calls, can rotate, fail, or run a hook mid-call."""

    def __init__(self, latency: float = 0.0, rotate: bool = False) -> None:
        super().__init__("http://fake.invalid")
        self.latency = latency
        self.rotate = rotate
        self.calls: list[str] = []  # the refresh tokens used
        self.fail: WeChatError | None = None
        self.during: Callable[[], None] | None = None
        self._lock = threading.Lock()

    def api_authorizer_token(
        self,
        component_appid: str,
        authorizer_appid: str,
        refresh_token: str,
        component_token: str,
    ) -> AuthorizerAccessToken:
        with self._lock:
            self.calls.append(refresh_token)
            n = len(self.calls)
        time.sleep(self.latency)
        if self.during is not None:
            self.during()
        if self.fail is not None:
            raise self.fail
        returned = f"refreshtoken@@@r{n}" if self.rotate else refresh_token
        return AuthorizerAccessToken(f"access-{n}", 7200, returned)


def manager(store: FirestoreStore, wechat: FakeWeChat, **policy: float) -> AuthorizerTokenManager:
    return AuthorizerTokenManager(
        store,
        wechat,
        FakeComponentTokens(store),  # type: ignore[arg-type]
        AuthorizerTokenPolicy(**policy),
    )


def put(store: FirestoreStore, **fields: object) -> AuthorizerRecord:
    values: dict[str, object] = {
        "status": AuthorizerStatus.AUTHORIZED.value,
        "access_token": "access-old",
        "access_token_expires_at": time.time() - 1,
        "refresh_token": "refreshtoken@@@r0",
        **fields,
    }
    record = AuthorizerRecord(component_appid=COMPONENT, appid=MERCHANT).but(**values)
    store.modify_authorizer(COMPONENT, MERCHANT, lambda _: record)
    return record


def stored(store: FirestoreStore) -> AuthorizerRecord:
    record = store.get_authorizer(COMPONENT, MERCHANT)
    assert record is not None
    return record


def test_a_fresh_token_is_served_without_calling(store: FirestoreStore) -> None:
    put(store, access_token_expires_at=time.time() + 3600)
    wechat = FakeWeChat()
    token, outcome = manager(store, wechat).get(COMPONENT, MERCHANT)
    assert (token.access_token, outcome) == ("access-old", Outcome.FRESH)
    assert wechat.calls == []


def test_a_token_close_to_expiry_is_renewed_first(store: FirestoreStore) -> None:
    put(store, access_token_expires_at=time.time() + 120)  # valid, but under min_ttl
    wechat = FakeWeChat()
    before = time.time()
    token, outcome = manager(store, wechat).get(COMPONENT, MERCHANT)
    assert (token.access_token, outcome) == ("access-1", Outcome.RENEWED)
    assert token.expires_at >= before + 7200
    record = stored(store)
    assert (record.access_token, record.refresh_lease_owner) == ("access-1", None)


def test_concurrent_requests_make_one_call_and_get_one_token(store: FirestoreStore) -> None:
    put(store)
    wechat = FakeWeChat(latency=0.5)
    tokens = manager(store, wechat, poll_interval=0.02)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: tokens.get(COMPONENT, MERCHANT), range(8)))
    assert len(wechat.calls) == 1
    assert {token.access_token for token, _ in results} == {"access-1"}
    assert sorted(o.value for _, o in results).count("renewed") == 1


def test_the_returned_refresh_token_is_stored_with_the_access_token(
    store: FirestoreStore,
) -> None:
    put(store)
    wechat = FakeWeChat(rotate=True)
    tokens = manager(store, wechat)
    tokens.get(COMPONENT, MERCHANT)
    assert stored(store).refresh_token == "refreshtoken@@@r1"
    tokens.invalidate(COMPONENT, MERCHANT, "access-1")
    tokens.get(COMPONENT, MERCHANT)
    assert wechat.calls == ["refreshtoken@@@r0", "refreshtoken@@@r1"]
    assert stored(store).refresh_token == "refreshtoken@@@r2"


@pytest.mark.parametrize(("rotate", "level"), [(False, logging.DEBUG), (True, logging.INFO)])
def test_a_renewal_logs_at_info_only_when_it_brings_a_new_refresh_token(
    store: FirestoreStore, caplog: pytest.LogCaptureFixture, rotate: bool, level: int
) -> None:
    # At a million authorizers a line per renewal would be 12 million lines a day.
    put(store)
    caplog.set_level(logging.DEBUG, logger="service.authorizer_tokens")
    manager(store, FakeWeChat(rotate=rotate)).get(COMPONENT, MERCHANT)
    [line] = [r for r in caplog.records if r.getMessage() == "authorizer token renewed"]
    assert (line.levelno, getattr(line, "rotated", None)) == (level, rotate)


def test_a_refresh_token_stored_meanwhile_by_someone_else_wins(store: FirestoreStore) -> None:
    put(store)
    wechat = FakeWeChat(rotate=True)

    def reauthorized() -> None:  # a re-authorization, after our call, stores its own
        store.modify_authorizer(
            COMPONENT,
            MERCHANT,
            lambda r: (
                r and r.but(refresh_token="refreshtoken@@@new", refresh_token_asked_at=time.time())
            ),
        )

    wechat.during = reauthorized
    manager(store, wechat).get(COMPONENT, MERCHANT)
    assert stored(store).refresh_token == "refreshtoken@@@new"


def test_invalid_token_renews_only_the_current_token(store: FirestoreStore) -> None:
    put(store, access_token="access-current", access_token_expires_at=time.time() + 3600)
    wechat = FakeWeChat()
    tokens = manager(store, wechat)
    token, outcome = tokens.get(COMPONENT, MERCHANT, invalid_token="access-older")
    assert (token.access_token, outcome, wechat.calls) == ("access-current", Outcome.FRESH, [])
    token, outcome = tokens.get(COMPONENT, MERCHANT, invalid_token="access-current")
    assert (token.access_token, outcome) == ("access-1", Outcome.RENEWED)
    assert len(wechat.calls) == 1


@pytest.mark.parametrize(
    "error", [SystemBusyError(-1, "system error"), WeChatError(40013, "invalid appid")]
)
def test_a_failed_refresh_keeps_every_credential(
    store: FirestoreStore, error: WeChatError, caplog: pytest.LogCaptureFixture
) -> None:
    put(store)
    wechat = FakeWeChat()
    wechat.fail = error
    with pytest.raises(RefreshFailedError, match=str(error.errcode)):
        manager(store, wechat).get(COMPONENT, MERCHANT)
    record = stored(store)
    assert record.status == AuthorizerStatus.AUTHORIZED
    assert record.refresh_token == "refreshtoken@@@r0"
    assert record.refresh_lease_owner is None and record.last_error
    assert "refreshtoken" not in (record.last_error or "")
    assert AUTHORIZER_REFRESH_FAILED in [getattr(r, "event", None) for r in caplog.records]


def test_a_failed_refresh_serves_the_still_valid_token(store: FirestoreStore) -> None:
    put(store, access_token_expires_at=time.time() + 100)
    wechat = FakeWeChat()
    wechat.fail = SystemBusyError(-1, "system error")
    token, outcome = manager(store, wechat).get(COMPONENT, MERCHANT)
    assert (token.access_token, outcome) == ("access-old", Outcome.KEPT)


def test_61023_marks_the_authorizer_for_reauthorization(
    store: FirestoreStore, caplog: pytest.LogCaptureFixture
) -> None:
    put(store)
    wechat = FakeWeChat()
    wechat.fail = RefreshTokenInvalidError(61023, "refresh_token is invalid")
    tokens = manager(store, wechat)
    with pytest.raises(AuthorizerUnavailableError) as raised:
        tokens.get(COMPONENT, MERCHANT)
    assert raised.value.status == AuthorizerStatus.NEEDS_REAUTHORIZATION
    record = stored(store)
    assert record.status == AuthorizerStatus.NEEDS_REAUTHORIZATION
    assert record.access_token is None and record.refresh_token == "refreshtoken@@@r0"
    rejected = [r for r in caplog.records if getattr(r, "event", None) == REFRESH_TOKEN_REJECTED]
    assert [r.levelname for r in rejected] == ["ERROR"]
    with pytest.raises(AuthorizerUnavailableError):  # and no second call
        tokens.get(COMPONENT, MERCHANT)
    assert len(wechat.calls) == 1


def test_61003_marks_the_authorizer_revoked(store: FirestoreStore) -> None:
    put(store)
    wechat = FakeWeChat()
    wechat.fail = NotAuthorizedError(61003, "component is not authorized by this account")
    with pytest.raises(AuthorizerUnavailableError) as raised:
        manager(store, wechat).get(COMPONENT, MERCHANT)
    assert raised.value.status == AuthorizerStatus.REVOKED
    assert stored(store).status == AuthorizerStatus.REVOKED


def test_a_revocation_during_the_refresh_is_never_served(store: FirestoreStore) -> None:
    put(store)
    wechat = FakeWeChat()

    def revoked() -> None:
        store.modify_authorizer(
            COMPONENT,
            MERCHANT,
            lambda r: r and r.but(status="revoked", access_token=None, refresh_token=None),
        )

    wechat.during = revoked
    with pytest.raises(AuthorizerUnavailableError):
        manager(store, wechat).get(COMPONENT, MERCHANT)
    record = stored(store)
    assert (record.status, record.access_token, record.refresh_token) == ("revoked", None, None)


def test_revoked_and_unknown_authorizers_get_no_token(store: FirestoreStore) -> None:
    wechat = FakeWeChat()
    tokens = manager(store, wechat)
    with pytest.raises(AuthorizerNotFoundError):
        tokens.get(COMPONENT, MERCHANT)
    put(store, status="revoked", access_token_expires_at=time.time() + 3600)
    with pytest.raises(AuthorizerUnavailableError):
        tokens.get(COMPONENT, MERCHANT)
    assert wechat.calls == []


def test_45009_pauses_every_call_of_the_component(store: FirestoreStore) -> None:
    put(store)
    wechat = FakeWeChat()
    wechat.fail = QuotaExceededError(45009, "reach max api daily quota limit")
    tokens = manager(store, wechat, quota_backoff=300)
    with pytest.raises(QuotaBackoffError) as raised:
        tokens.get(COMPONENT, MERCHANT)
    assert 60 <= raised.value.retry_after <= 300
    with pytest.raises(QuotaBackoffError):
        tokens.get(COMPONENT, MERCHANT)
    assert tokens.refresh_due(COMPONENT, MERCHANT, time.time() + 900) is Outcome.QUOTA_EXCEEDED
    assert len(wechat.calls) == 1  # the pause holds for requests and for the sweep
    tokens.end_quota_pause(COMPONENT)
    wechat.fail = None
    assert tokens.get(COMPONENT, MERCHANT)[1] is Outcome.RENEWED


def test_a_dead_holders_lease_is_taken_over(store: FirestoreStore) -> None:
    put(store, refresh_lease_owner="dead:1:x", refresh_lease_until=time.time() + 0.5)
    wechat = FakeWeChat()
    token, outcome = manager(store, wechat, poll_interval=0.05).get(COMPONENT, MERCHANT)
    assert (token.access_token, outcome) == ("access-1", Outcome.RENEWED)


def test_refresh_due_skips_what_is_not_due_or_leased(store: FirestoreStore) -> None:
    put(store, access_token_expires_at=time.time() + 3600)
    wechat = FakeWeChat()
    tokens = manager(store, wechat)
    assert tokens.refresh_due(COMPONENT, MERCHANT, time.time() + 900) is Outcome.SKIPPED
    put(store, refresh_lease_owner="other:1:x", refresh_lease_until=time.time() + 30)
    assert tokens.refresh_due(COMPONENT, MERCHANT, time.time() + 900) is Outcome.SKIPPED
    assert wechat.calls == []
    put(store)
    assert tokens.refresh_due(COMPONENT, MERCHANT, time.time() + 900) is Outcome.RENEWED


# ----- the sweep's renewal: the query's snapshot is the lease's precondition ----------


def other(n: int) -> str:
    return f"wx{n:016d}"


def due_now(store: FirestoreStore, *appids: str) -> list[AuthorizerRecord]:
    """Due authorizers written, then found by the sweep's query (records with versions)."""
    for appid in appids:
        record = AuthorizerRecord(component_appid=COMPONENT, appid=appid).but(
            access_token="access-old",
            access_token_expires_at=time.time() + 60,
            refresh_token=f"refreshtoken@@@{appid}",
        )
        store.modify_authorizer(COMPONENT, appid, lambda _, r=record: r)  # type: ignore[misc]
    return store.due_authorizers(COMPONENT, time.time() + 900)


def component_read_once() -> ComponentRecord:
    """The component record as the sweep read it, once, before its authorizers."""
    return ComponentRecord(
        appid=COMPONENT,
        component_token="component-token",
        component_token_expires_at=time.time() + 7200,
    )


def test_the_sweeps_renewal_reads_nothing_but_its_query_and_writes_twice(
    store: FirestoreStore,
) -> None:
    appids = [other(n) for n in range(5)]
    due = due_now(store, *appids)
    assert [r.appid for r in due] == appids and all(r.version is not None for r in due)
    wechat = FakeWeChat(rotate=True)
    tokens, component = manager(store, wechat), component_read_once()
    reads, writes = store.ops.snapshot()
    outcomes = [
        tokens.refresh_due(COMPONENT, r.appid, time.time() + 900, seen=r, component=component)
        for r in due
    ]
    assert outcomes == [Outcome.RENEWED] * 5
    assert store.ops.snapshot() == (reads, writes + 2 * 5)  # no read; the lease, the result
    for n, appid in enumerate(appids, start=1):
        record = store.get_authorizer(COMPONENT, appid)
        assert record is not None
        assert (record.access_token, record.refresh_token) == (
            f"access-{n}",
            f"refreshtoken@@@r{n}",  # the rotated refresh token is stored
        )
        assert record.lease_free_at(time.time()) and record.refresh_lease_owner is None


def test_a_stale_snapshot_loses_the_lease_and_nothing_is_renewed_twice(
    store: FirestoreStore,
) -> None:
    [seen] = due_now(store, MERCHANT)
    wechat = FakeWeChat(rotate=True)
    component = component_read_once()
    # Another sweep renewed it after our query: our snapshot is stale.
    assert manager(store, wechat).refresh_due(COMPONENT, MERCHANT, time.time() + 900) is (
        Outcome.RENEWED
    )
    late = manager(store, wechat)
    outcome = late.refresh_due(
        COMPONENT, MERCHANT, time.time() + 900, seen=seen, component=component
    )
    assert outcome is Outcome.SKIPPED
    assert len(wechat.calls) == 1
    record = stored(store)
    assert (record.access_token, record.refresh_token) == ("access-1", "refreshtoken@@@r1")


def test_a_stale_snapshot_never_takes_a_lease_taken_since(store: FirestoreStore) -> None:
    [seen] = due_now(store, MERCHANT)
    store.modify_authorizer(
        COMPONENT,
        MERCHANT,
        lambda r: (
            r and r.but(refresh_lease_owner="other:1:x", refresh_lease_until=time.time() + 30)
        ),
    )
    wechat = FakeWeChat()
    outcome = manager(store, wechat).refresh_due(
        COMPONENT, MERCHANT, time.time() + 900, seen=seen, component=component_read_once()
    )
    assert (outcome, wechat.calls) == (Outcome.SKIPPED, [])
    assert stored(store).refresh_lease_owner == "other:1:x"


def test_many_holders_of_one_snapshot_make_one_call(store: FirestoreStore) -> None:
    [seen] = due_now(store, MERCHANT)
    wechat = FakeWeChat(latency=0.2, rotate=True)
    component = component_read_once()

    def renew(_: int) -> Outcome:
        return manager(store, wechat).refresh_due(
            COMPONENT, MERCHANT, time.time() + 900, seen=seen, component=component
        )

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(renew, range(8)))
    assert sorted(outcomes) == sorted([Outcome.RENEWED] + [Outcome.SKIPPED] * 7)
    assert len(wechat.calls) == 1
    assert stored(store).refresh_token == "refreshtoken@@@r1"


def test_a_write_since_the_snapshot_is_kept_and_the_renewal_still_happens(
    store: FirestoreStore,
) -> None:
    [seen] = due_now(store, MERCHANT)
    # Unrelated writes after the query and during the call (a profile update, a push).
    store.modify_authorizer(COMPONENT, MERCHANT, lambda r: r and r.but(nick_name="before"))
    wechat = FakeWeChat(rotate=True)
    wechat.during = lambda: (
        store.modify_authorizer(COMPONENT, MERCHANT, lambda r: r and r.but(last_push_time=7)),
        None,
    )[1]
    reads, _ = store.ops.snapshot()
    outcome = manager(store, wechat).refresh_due(
        COMPONENT, MERCHANT, time.time() + 900, seen=seen, component=component_read_once()
    )
    assert outcome is Outcome.RENEWED
    record = stored(store)
    assert (record.nick_name, record.last_push_time) == ("before", 7)  # nothing overwritten
    assert (record.access_token, record.refresh_token) == ("access-1", "refreshtoken@@@r1")
    assert record.refresh_lease_owner is None
    # The two failed preconditions each fell back to one read (the hook's own read aside).
    assert store.ops.snapshot()[0] - reads == 2 + 1 + 1


def test_the_sweeps_component_record_is_read_again_once_its_token_expires(
    store: FirestoreStore,
) -> None:
    [seen] = due_now(store, MERCHANT)
    expired = component_read_once().but(component_token_expires_at=time.time() - 1)
    store.modify_component(
        COMPONENT, lambda r: r.but(authorizer_token_quota_until=time.time() + 600)
    )
    wechat = FakeWeChat()
    outcome = manager(store, wechat).refresh_due(
        COMPONENT, MERCHANT, time.time() + 900, seen=seen, component=expired
    )
    # Read again: the stored record has a 45009 pause, so no call is made.
    assert (outcome, wechat.calls) == (Outcome.QUOTA_EXCEEDED, [])
    assert stored(store).refresh_lease_owner is None  # the lease went back


def test_a_token_request_that_renews_reads_the_whole_authorizer_once(
    store: FirestoreStore,
) -> None:
    put(store)
    wechat = FakeWeChat(rotate=True)
    tokens = manager(store, wechat)
    reads, writes = store.ops.snapshot()
    token, outcome = tokens.get(COMPONENT, MERCHANT)
    assert (token.access_token, outcome) == ("access-1", Outcome.RENEWED)
    # A glance at the token (three fields), then the whole authorizer and the component
    # (its token and 45009 pause) once each; the lease and the result written, each on the
    # condition of the write before it.
    assert store.ops.snapshot() == (reads + 3, writes + 2)
    assert stored(store).refresh_token == "refreshtoken@@@r1"


def test_a_token_request_served_from_the_store_reads_three_fields(
    store: FirestoreStore,
) -> None:
    put(store, access_token="stored-token", access_token_expires_at=time.time() + 3600)
    wechat = FakeWeChat()
    reads, writes = store.ops.snapshot()
    token, outcome = manager(store, wechat).get(COMPONENT, MERCHANT)
    assert (token.access_token, outcome, wechat.calls) == ("stored-token", Outcome.FRESH, [])
    assert store.ops.snapshot() == (reads + 1, writes)
    assert store.get_authorizer_token(COMPONENT, MERCHANT) == TokenGlance(
        "authorized", "stored-token", token.expires_at
    )
