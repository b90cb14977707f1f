"""The refresh sweep and the sync on the real Firestore emulator, WeChat faked in-process."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from service.authorizer_sync import AuthorizerSync
from service.authorizer_tokens import AuthorizerTokenManager, AuthorizerTokenPolicy
from service.component_token import Outcome as ComponentOutcome
from service.component_token import TokenUnavailableError
from service.log_events import AUTHORIZER_QUOTA_EXCEEDED, SWEEP_DONE
from service.store.firestore import FirestoreStore
from service.store.records import AuthorizerRecord, AuthorizerStatus, SyncFlag
from service.sweep import RefreshSweep, SweepPolicy
from service.wechat.client import AuthorizerPage, ListedAuthorizer
from service.wechat.errors import QuotaExceededError, SystemBusyError
from tests.service.test_authorizer_tokens import FakeComponentTokens as StoredComponentTokens
from tests.service.test_authorizer_tokens import FakeWeChat

COMPONENT = "wx0123456789abcdef"


def appid(n: int) -> str:
    return f"wx{n:016x}"


class FakeComponentTokens(StoredComponentTokens):
    def __init__(self, store: FirestoreStore) -> None:
        super().__init__(store)
        self.fail = False

    def obtain(self, appid: str) -> tuple[str, ComponentOutcome]:
        if self.fail:
            raise TokenUnavailableError("no component_verify_ticket received yet")
        return "component-token", ComponentOutcome.FRESH


class FakeTickets:
    def check(self, appid: str) -> bool:
        return False


def seed(store: FirestoreStore, n: int, first: int = 0, **fields: Any) -> list[str]:
    values: dict[str, Any] = {
        "status": AuthorizerStatus.AUTHORIZED.value,
        "access_token": "access-old",
        "access_token_expires_at": time.time() + 60,
        "refresh_token": "refreshtoken@@@r0",
        **fields,
    }
    appids = [appid(i) for i in range(first, first + n)]
    for a in appids:
        record = AuthorizerRecord(component_appid=COMPONENT, appid=a).but(**values)
        store.modify_authorizer(COMPONENT, a, lambda _, r=record: r)  # type: ignore[misc]
    return appids


def make_sweep(
    store: FirestoreStore,
    wechat: FakeWeChat,
    component_tokens: FakeComponentTokens | None = None,
    **policy: Any,
) -> RefreshSweep:
    components = component_tokens or FakeComponentTokens(store)
    tokens = AuthorizerTokenManager(
        store,
        wechat,
        components,  # type: ignore[arg-type]
        AuthorizerTokenPolicy(),
    )
    return RefreshSweep(
        store,
        FakeTickets(),  # type: ignore[arg-type]
        components,  # type: ignore[arg-type]
        tokens,
        SweepPolicy(**{"jitter": 0.0, "concurrency": 4, **policy}),
    )


def test_the_sweep_renews_what_is_due_and_only_that(store: FirestoreStore) -> None:
    due = seed(store, 6)
    seed(store, 3, first=100, access_token_expires_at=time.time() + 3600)  # fresh
    seed(store, 2, first=200, status="revoked", access_token=None)
    wechat = FakeWeChat()
    report = make_sweep(store, wechat).run([COMPONENT])
    assert (report.renewed, report.failed) == (6, 0)
    assert report.skipped == 1  # the component token
    assert report.components[COMPONENT]["authorizers"] == {"due": 6, "renewed": 6}
    assert len(wechat.calls) == 6
    for a in due:
        record = store.get_authorizer(COMPONENT, a)
        assert record is not None and (record.access_token_expires_at or 0) > time.time() + 7000


def test_jitter_reaches_only_the_window_beyond_the_margin(store: FirestoreStore) -> None:
    seed(store, 4, access_token_expires_at=time.time() + 850)  # inside the margin
    seed(store, 4, first=10, access_token_expires_at=time.time() + 1500)  # beyond the jitter
    wechat = FakeWeChat()
    report = make_sweep(store, wechat, margin=900, jitter=300).run([COMPONENT])
    assert report.renewed == 4 and len(wechat.calls) == 4


def test_two_sweeps_at_once_renew_each_authorizer_once(store: FirestoreStore) -> None:
    seed(store, 12)
    wechat = FakeWeChat(latency=0.05)
    sweeps = [make_sweep(store, wechat), make_sweep(store, wechat)]
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda s: s.run([COMPONENT]), sweeps))
    assert len(wechat.calls) == 12
    assert sum(r.renewed for r in reports) == 12
    assert sum(r.failed for r in reports) == 0


def test_quota_stops_the_sweep_and_the_next_one(
    store: FirestoreStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    seed(store, 10)
    wechat = FakeWeChat()
    wechat.fail = QuotaExceededError(45009, "reach max api daily quota limit")
    report = make_sweep(store, wechat, concurrency=1).run([COMPONENT])
    assert len(wechat.calls) == 1
    assert (report.quota_exceeded, report.renewed) == (10, 0)
    assert [getattr(r, "event", None) for r in caplog.records].count(AUTHORIZER_QUOTA_EXCEEDED) == 1
    assert getattr(caplog.records[-1], "event", None) == SWEEP_DONE
    again = make_sweep(store, wechat, concurrency=4).run([COMPONENT])
    assert again.quota_exceeded == 10 and len(wechat.calls) == 1


def test_transient_failures_are_counted_and_keep_the_credentials(store: FirestoreStore) -> None:
    appids = seed(store, 3)
    wechat = FakeWeChat()
    wechat.fail = SystemBusyError(-1, "system error")
    report = make_sweep(store, wechat).run([COMPONENT])
    assert (report.failed, report.renewed) == (3, 0)
    for a in appids:
        record = store.get_authorizer(COMPONENT, a)
        assert record is not None and record.refresh_token == "refreshtoken@@@r0"
        assert record.status == AuthorizerStatus.AUTHORIZED


def test_without_a_component_token_no_authorizer_is_tried(store: FirestoreStore) -> None:
    seed(store, 3)
    wechat = FakeWeChat()
    components = FakeComponentTokens(store)
    components.fail = True
    report = make_sweep(store, wechat, components).run([COMPONENT])
    assert report.failed == 1 and wechat.calls == []
    assert "authorizers" not in report.components[COMPONENT]


# ----- sync ----------------------------------------------------------------------------


class ListingWeChat(FakeWeChat):
    def __init__(self, listed: list[ListedAuthorizer]) -> None:
        super().__init__()
        self.listed = listed
        self.pages: list[tuple[int, int]] = []
        self.fail_at_page: int | None = None
        self.mid_walk: Callable[[], None] | None = None  # runs after a page is read

    def api_get_authorizer_list(
        self, component_appid: str, offset: int, count: int, component_token: str
    ) -> AuthorizerPage:
        self.pages.append((offset, count))
        if self.fail_at_page == len(self.pages):
            raise SystemBusyError(-1, "system error")
        page = AuthorizerPage(len(self.listed), tuple(self.listed[offset : offset + count]))
        if self.mid_walk is not None:
            self.mid_walk()
        return page


def make_sync(store: FirestoreStore, wechat: ListingWeChat) -> AuthorizerSync:
    return AuthorizerSync(store, wechat, FakeComponentTokens(store))  # type: ignore[arg-type]


def listed(n: int, token: str | None = "refreshtoken@@@r0") -> ListedAuthorizer:
    return ListedAuthorizer(appid(n), token, 1700000000)


def test_sync_recovers_updates_and_flags(store: FirestoreStore) -> None:
    seed(store, 1, first=1)  # same token: unchanged
    seed(store, 1, first=2, refresh_token="refreshtoken@@@old")  # WeChat's differs: updated
    seed(store, 1, first=3, status="revoked", refresh_token=None)  # listed again: recovered
    seed(store, 1, first=4)  # not listed by WeChat: flagged
    wechat = ListingWeChat([listed(1), listed(2), listed(3), listed(5), listed(6, token=None)])
    report = make_sync(store, wechat).run(COMPONENT)
    assert report.listed == 5 and report.unchanged == 1
    assert report.updated == [appid(2)]
    assert sorted(report.recovered) == [appid(3), appid(5)]  # 5: we had lost it
    assert report.unexchanged == [appid(6)] and report.not_listed == [appid(4)]

    def get(n: int) -> AuthorizerRecord:
        record = store.get_authorizer(COMPONENT, appid(n))
        assert record is not None
        return record

    assert get(2).refresh_token == "refreshtoken@@@r0"
    for n in (3, 5):
        assert get(n).status == AuthorizerStatus.AUTHORIZED
        assert get(n).access_token_expires_at == 0.0  # due: the sweep finds it
    assert get(4).sync_flag == SyncFlag.NOT_LISTED and get(4).status == "authorized"
    assert get(6).status == AuthorizerStatus.NEEDS_REAUTHORIZATION
    assert get(6).sync_flag == SyncFlag.UNEXCHANGED
    assert [r.appid for r in store.due_authorizers(COMPONENT, 1.0)] == [appid(3), appid(5)]
    again = make_sync(store, wechat).run(COMPONENT)
    assert again.recovered == [] and again.updated == []


def test_sync_never_writes_the_list_over_changes_made_during_the_walk(
    store: FirestoreStore,
) -> None:
    seed(store, 1, first=1, refresh_token="refreshtoken@@@old")  # rotated during the walk
    seed(store, 1, first=2)  # revoked during the walk
    wechat = ListingWeChat([listed(1), listed(2), listed(3)])  # 3: authorized during it

    def changes() -> None:
        wechat.mid_walk = None
        later = time.time()
        store.modify_authorizer(
            COMPONENT,
            appid(1),
            lambda r: (
                None
                if r is None
                else r.but(refresh_token="refreshtoken@@@new", refresh_token_asked_at=later)
            ),
        )
        store.modify_authorizer(
            COMPONENT,
            appid(2),
            lambda r: None if r is None else r.but(status="revoked", refresh_token=None),
        )
        store.modify_authorizer(
            COMPONENT,
            appid(3),
            lambda _: AuthorizerRecord(
                component_appid=COMPONENT, appid=appid(3), refresh_token="refreshtoken@@@fresh"
            ),
        )

    wechat.mid_walk = changes  # after WeChat's page was read, before sync writes
    report = make_sync(store, wechat).run(COMPONENT)
    assert report.updated == [] and report.recovered == []
    stored = {r.appid: r for r in store.list_authorizers(COMPONENT)}
    assert stored[appid(1)].refresh_token == "refreshtoken@@@new"  # not the listed, older one
    assert stored[appid(2)].status == AuthorizerStatus.REVOKED  # not "recovered"
    assert stored[appid(3)].refresh_token == "refreshtoken@@@fresh"
    # The next sync, with nothing changing meanwhile, acts on what WeChat now lists.
    wechat.listed = [ListedAuthorizer(appid(1), "refreshtoken@@@new", 1700000000)]
    assert make_sync(store, wechat).run(COMPONENT).updated == []


def test_sync_walks_every_page_of_500(store: FirestoreStore) -> None:
    wechat = ListingWeChat([listed(n) for n in range(1001)])
    report = make_sync(store, wechat).run(COMPONENT)
    assert wechat.pages == [(0, 500), (500, 500), (1000, 500)]
    assert report.listed == 1001 and len(report.recovered) == 1001


def test_a_failed_walk_writes_nothing(store: FirestoreStore) -> None:
    wechat = ListingWeChat([listed(n) for n in range(600)])
    wechat.fail_at_page = 2
    with pytest.raises(SystemBusyError):
        make_sync(store, wechat).run(COMPONENT)
    assert store.list_authorizers(COMPONENT) == []


def test_listing_filters_and_pages_by_appid(store: FirestoreStore) -> None:
    seed(store, 5, account_type="official_account")
    seed(store, 2, first=10, account_type="mini_program")
    seed(store, 1, first=20, status="revoked", account_type="official_account")
    first = store.list_authorizers(COMPONENT, status="authorized", limit=4)
    assert [r.appid for r in first] == [appid(n) for n in range(4)]
    rest = store.list_authorizers(COMPONENT, status="authorized", after=first[-1].appid)
    assert [r.appid for r in rest] == [appid(4), appid(10), appid(11)]
    minis = store.list_authorizers(COMPONENT, account_type="mini_program")
    assert [r.appid for r in minis] == [appid(10), appid(11)]
    revoked = store.list_authorizers(COMPONENT, status="revoked", account_type="official_account")
    assert [r.appid for r in revoked] == [appid(20)]
