"""The fanned-out sweep (SWEEP_MODE=fanout) on the real Firestore emulator: publishing in
shards, renewing a shard, redelivery, 45009, held leases, progress and the done line.

WeChat is faked in-process and Pub/Sub by a recorder here; tests/e2e/test_sweep_fanout.py
runs the same through the Pub/Sub emulator and two gunicorn instances.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from typing import Any

import pytest

from service import create_app
from service.authorizer_tokens import AuthorizerTokenManager, AuthorizerTokenPolicy
from service.config import Settings
from service.log_events import SWEEP_DONE
from service.publisher import PublishError
from service.runtime import Runtime
from service.store.firestore import FirestoreStore
from service.sweep import RefreshSweep, SweepPolicy
from service.sweep_shards import (
    Shard,
    ShardError,
    ShardPublisher,
    ShardRunner,
    SweepProgress,
    due_pages,
)
from service.wechat.client import AuthorizerAccessToken
from service.wechat.errors import SystemBusyError
from tests.service.test_authorizer_tokens import FakeWeChat
from tests.service.test_console import csrf_of
from tests.service.test_sweep_and_sync import (
    COMPONENT,
    FakeComponentTokens,
    FakeTickets,
    appid,
    seed,
)

TOPIC = "projects/gateway-test/topics/sweep-shards"


class AppidWeChat(FakeWeChat):
    """Counts api_authorizer_token per authorizer appid."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.by_appid: Counter[str] = Counter()
        self._appid_lock = threading.Lock()

    def api_authorizer_token(
        self,
        component_appid: str,
        authorizer_appid: str,
        refresh_token: str,
        component_token: str,
    ) -> AuthorizerAccessToken:
        with self._appid_lock:
            self.by_appid[authorizer_appid] += 1
        return super().api_authorizer_token(
            component_appid, authorizer_appid, refresh_token, component_token
        )


class RecordingPublisher:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, dict[str, str]]] = []
        self.fail_after: int | None = None

    def publish(self, topic_path: str, data: bytes, attributes: dict[str, str]) -> str:
        if self.fail_after is not None and len(self.messages) >= self.fail_after:
            raise PublishError("Pub/Sub did not acknowledge within 10 s")
        self.messages.append((topic_path, data, dict(attributes)))
        return str(len(self.messages))

    def shards(self) -> list[Shard]:
        return [Shard.from_push(push_body(data)) for _, data, _ in self.messages]


def push_body(data: bytes) -> dict[str, Any]:
    """What a push subscription POSTs."""
    return {
        "message": {"data": base64.b64encode(data).decode(), "messageId": "1"},
        "subscription": "projects/gateway-test/subscriptions/sweep-shards-push",
    }


class Fanout:
    def __init__(self, store: FirestoreStore, wechat: AppidWeChat, shard_size: int = 5) -> None:
        self.store = store
        self.wechat = wechat
        self.components = FakeComponentTokens(store)
        self.tokens = AuthorizerTokenManager(
            store,
            wechat,
            self.components,  # type: ignore[arg-type]
            AuthorizerTokenPolicy(lease_seconds=30),
        )
        self.progress = SweepProgress(store)
        self.publisher = RecordingPublisher()
        self.shard_publisher = ShardPublisher(
            store,
            self.progress,
            self.publisher,  # type: ignore[arg-type]
            TOPIC,
            shard_size,
            shard_deadline=600,
        )
        self.sweep = RefreshSweep(
            store,
            FakeTickets(),  # type: ignore[arg-type]
            self.components,  # type: ignore[arg-type]
            self.tokens,
            SweepPolicy(jitter=0.0, concurrency=4),
            fanout=self.shard_publisher,
        )
        self.runner = ShardRunner(store, self.tokens, self.progress, concurrency=4, jitter=0.0)


def done_lines(caplog: pytest.LogCaptureFixture) -> list[Any]:
    return [r for r in caplog.records if getattr(r, "event", None) == SWEEP_DONE]


def test_due_pages_reads_every_due_authorizer_a_page_at_a_time(store: FirestoreStore) -> None:
    due = seed(store, 23)
    seed(store, 3, first=100, access_token_expires_at=time.time() + 3600)
    pages = list(due_pages(store, COMPONENT, time.time() + 900, page=10))
    assert [len(p) for p in pages] == [10, 10, 3]
    assert sorted(a for p in pages for a in p) == sorted(due)


def test_a_fanned_out_sweep_renews_each_due_authorizer_once(
    store: FirestoreStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    due = seed(store, 12)
    seed(store, 3, first=100, access_token_expires_at=time.time() + 3600)  # fresh
    f = Fanout(store, AppidWeChat(), shard_size=5)
    report = f.sweep.run([COMPONENT])
    assert report.failed == 0 and report.shards == 3 and report.sweep_id
    assert report.components[COMPONENT]["authorizers"] == {"due": 12, "shards": 3, "unpublished": 0}
    assert f.wechat.calls == []  # publishing renews nothing itself
    shards = f.publisher.shards()
    assert [len(s.appids) for s in shards] == [5, 5, 2]
    assert {t for t, _, _ in f.publisher.messages} == {TOPIC}
    assert not done_lines(caplog)
    state = f.progress.get(report.sweep_id)
    assert state is not None and (state.shards_published, state.shards_pending) == (3, 3)

    for shard in shards:
        result = f.runner.run(shard)
        assert not result.retry and result.recorded
    assert f.wechat.by_appid == Counter(due)
    state = f.progress.get(report.sweep_id)
    assert state is not None and state.done_at is not None
    assert (state.shards_done, state.shards_pending) == (3, 0)
    assert state.counts == {"renewed": 12}
    assert state.to_json()["done"] is True
    [line] = done_lines(caplog)
    assert (line.sweep_id, line.renewed, line.shards) == (report.sweep_id, 12, 3)


def test_a_redelivered_shard_calls_nobody_and_counts_nothing_twice(
    store: FirestoreStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    seed(store, 6)
    f = Fanout(store, AppidWeChat(), shard_size=3)
    report = f.sweep.run([COMPONENT])
    first, second = f.publisher.shards()
    assert f.runner.run(first).recorded
    again = f.runner.run(first)  # Pub/Sub's at-least-once
    assert (again.recorded, again.retry, again.counts) == (False, False, {})
    assert len(f.wechat.calls) == 3
    assert f.runner.run(second).recorded
    assert f.runner.run(second).recorded is False
    assert len(f.wechat.calls) == 6
    state = f.progress.get(report.sweep_id or "")
    assert state is not None and state.shards_done == 2 and state.counts == {"renewed": 6}
    assert len(done_lines(caplog)) == 1


def test_a_shard_finished_elsewhere_meanwhile_is_skipped_not_renewed(
    store: FirestoreStore,
) -> None:
    """Two deliveries of one shard at once (no marker yet): the lease and "not due"."""
    seed(store, 8)
    f = Fanout(store, AppidWeChat(latency=0.05), shard_size=8)
    f.sweep.run([COMPONENT])
    [shard] = f.publisher.shards()
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(f.runner.run(shard))) for _ in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert f.wechat.by_appid == Counter(shard.appids)  # each once
    assert sum(r.counts.get("renewed", 0) for r in results) == 8


def test_the_component_pause_stops_every_shard(store: FirestoreStore) -> None:
    seed(store, 6)
    f = Fanout(store, AppidWeChat(), shard_size=3)
    report = f.sweep.run([COMPONENT])
    store.modify_component(
        COMPONENT, lambda c: c.but(authorizer_token_quota_until=time.time() + 300)
    )
    for shard in f.publisher.shards():
        result = f.runner.run(shard)
        assert (result.retry, result.counts) == (False, {"quota_exceeded": 3})
    assert f.wechat.calls == []
    state = f.progress.get(report.sweep_id or "")
    assert state is not None and state.done_at is not None
    assert state.counts == {"quota_exceeded": 6}


def test_a_failure_has_the_shard_redelivered_until_its_deadline(store: FirestoreStore) -> None:
    seed(store, 2)
    f = Fanout(store, AppidWeChat())
    report = f.sweep.run([COMPONENT])
    [shard] = f.publisher.shards()
    f.wechat.fail = SystemBusyError(-1, "system error")
    failed = f.runner.run(shard)
    assert (failed.retry, failed.recorded, failed.counts) == (True, False, {"failed": 2})
    f.wechat.fail = None
    ok = f.runner.run(shard)
    assert (ok.retry, ok.recorded, ok.counts) == (False, True, {"renewed": 2})
    state = f.progress.get(report.sweep_id or "")
    assert state is not None and state.done_at is not None

    late = Shard(shard.sweep_id, COMPONENT, 99, shard.appids, 900.0, time.time() - 1)
    seed(store, 2)  # due again
    f.wechat.fail = SystemBusyError(-1, "system error")
    past = f.runner.run(late)
    assert (past.retry, past.recorded) == (False, True)  # left to the next sweep


def test_a_lease_held_elsewhere_is_retried_not_dropped(store: FirestoreStore) -> None:
    """An instance that died mid-renewal leaves its lease: the shard is redelivered until
    the lease expires, then renewed."""
    [held, free] = seed(store, 2)
    store.modify_authorizer(
        COMPONENT,
        held,
        lambda r: r.but(refresh_lease_owner="dead-instance", refresh_lease_until=time.time() + 30),  # type: ignore[union-attr]
    )
    f = Fanout(store, AppidWeChat())
    f.sweep.run([COMPONENT])
    [shard] = f.publisher.shards()
    first = f.runner.run(shard)
    assert (first.retry, first.counts) == (True, {"held": 1, "renewed": 1})
    store.modify_authorizer(
        COMPONENT,
        held,
        lambda r: r.but(refresh_lease_until=time.time() - 1),  # type: ignore[union-attr]
    )
    second = f.runner.run(shard)
    assert (second.retry, second.recorded, second.counts) == (
        False,
        True,
        {"renewed": 1, "skipped": 1},
    )
    assert f.wechat.by_appid == Counter([held, free])


def test_a_shard_pubsub_refused_makes_the_sweep_answer_failed(store: FirestoreStore) -> None:
    seed(store, 9)
    f = Fanout(store, AppidWeChat(), shard_size=3)
    f.publisher.fail_after = 2
    report = f.sweep.run([COMPONENT])
    assert report.failed == 1 and report.shards == 2
    assert report.components[COMPONENT]["authorizers"]["unpublished"] == 3
    for shard in f.publisher.shards():
        f.runner.run(shard)
    state = f.progress.get(report.sweep_id or "")
    assert state is not None and state.done_at is not None
    assert state.counts == {"renewed": 6, "unpublished": 3}


def test_a_sweep_with_nothing_due_is_done_at_once(
    store: FirestoreStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    f = Fanout(store, AppidWeChat())
    report = f.sweep.run([COMPONENT])
    assert report.shards == 0 and f.publisher.messages == []
    [line] = done_lines(caplog)
    assert line.sweep_id == report.sweep_id


def test_a_push_body_that_is_not_a_shard_is_refused() -> None:
    for body in (None, {}, {"message": {"data": "%%%"}}, push_body(b'{"sweep_id": "x"}')):
        with pytest.raises(ShardError):
            Shard.from_push(body)
    shard = Shard("s", COMPONENT, 1, (appid(1),), 900.0, 1e10)
    assert Shard.from_push(push_body(shard.encode())) == shard


def test_the_shard_endpoint_over_http(store: FirestoreStore, firestore_project: str) -> None:
    """Guarded like /tasks/*, 400 for a body that is no shard, 200 and the counts."""
    seed(store, 2)
    settings = Settings.from_env(
        {
            "WECHAT_COMPONENTS": json.dumps(
                [
                    {
                        "appid": COMPONENT,
                        "secret": "s" * 32,
                        "token": "t",
                        "encoding_aes_key": "a" * 43,
                    }
                ]
            ),
            "SERVICE_API_KEYS": "key-1",
            "GOOGLE_CLOUD_PROJECT": firestore_project,
            "SWEEP_MODE": "fanout",
            "SWEEP_SHARD_TOPIC": "sweep-shards",
        }
    )
    wechat = AppidWeChat()
    rt = Runtime(settings, store=store, client=wechat)
    rt.__dict__["authorizer_tokens"] = AuthorizerTokenManager(
        store,
        wechat,
        FakeComponentTokens(store),  # type: ignore[arg-type]
        AuthorizerTokenPolicy(),
    )
    app = create_app(settings, runtime=rt)
    client = app.test_client()
    progress = SweepProgress(store)
    progress.begin("sweep-1")
    progress.published("sweep-1", 1, Counter())
    shard = Shard("sweep-1", COMPONENT, 0, (appid(0), appid(1)), 900.0, time.time() + 600)
    auth = {"Authorization": "Bearer key-1"}
    assert client.post("/tasks/refresh-shard", json=push_body(shard.encode())).status_code == 401
    bad = client.post("/tasks/refresh-shard", json={"message": {"data": "e30="}}, headers=auth)
    assert bad.status_code == 400
    answer = client.post("/tasks/refresh-shard", json=push_body(shard.encode()), headers=auth)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["counts"] == {"renewed": 2}
    health = client.get("/healthz").get_json()
    assert health["sweep"]["sweep_id"] == "sweep-1"
    assert (health["sweep"]["shards_done"], health["sweep"]["shards_pending"]) == (1, 0)
    assert health["sweep"]["done"] is True
    assert health["sweep"]["counts"] == {"renewed": 2}
    # The console's overview shows the same line.
    form = client.get("/console/login")
    client.post("/console/login", data={"key": "key-1", "csrf_token": csrf_of(form.get_data(True))})
    overview = client.get("/console/").get_data(True)
    assert "分片刷新 sweep-1：分片完成 1，待完成 0；renewed 2（已完成）" in overview
