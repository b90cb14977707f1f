"""The fanned-out refresh sweep (SWEEP_MODE=fanout) across two instances, through Pub/Sub.

Real parts: the Firestore emulator, a Pub/Sub emulator of this module's own, mock WeChat,
and two gunicorn service processes ("instances" A and B) on the same store. One push
subscription on the shard topic pushes to a small round-robin relay in this test, which
plays Cloud Run's front door: it spreads the pushes over A and B and adds the internal
API's bearer key (in the cloud, the push subscription's OIDC token). An instance that does
not answer gets a 502 back to Pub/Sub, which redelivers the shard; the relay then sends it
to the instance still up.

2,000 authorizers are seeded in the mock and written due to Firestore. Asserted: each is
renewed exactly once (the mock's call log), both instances renewed some (their logs), the
sweep's progress in /healthz ends done with every shard; and with instance B killed (its
process group) mid-sweep, every authorizer is still renewed by the end.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from bench.stack import BATCH, authorizer_record
from devstack.emulator import clear_emulator
from devstack.processes import ManagedProcess, free_port
from devstack.pubsub_emulator import PubSubAdmin, start_pubsub_emulator
from devstack.push_relay import PushRelay
from devstack.stack import service_env, start_service
from tests.e2e.helpers import log_entries, wait_for
from tests.stack import API_KEY, E2E_PROJECT, Stack, start_stack

COUNT = 2000
SHARD_SIZE = 200  # 10 shards
TOPIC = "sweep-shards"
SUBSCRIPTION = "sweep-shards-push"
SHARD_PATH = "/tasks/refresh-shard"
FANOUT_ENV = {
    "SWEEP_MODE": "fanout",
    "SWEEP_SHARD_TOPIC": TOPIC,
    "SWEEP_SHARD_SIZE": str(SHARD_SIZE),
    "SWEEP_JITTER": "0",
    "SWEEP_CONCURRENCY": "16",
    # A killed instance's leases are free again soon, so its redelivered shards finish.
    "REFRESH_LEASE_SECONDS": "3",
}


@dataclass
class Fleet:
    stack: Stack
    b_url: str
    b: ManagedProcess
    pubsub: ManagedProcess
    relay: PushRelay
    logs: Path

    @property
    def a(self) -> ManagedProcess:
        return self.stack.service


@pytest.fixture(scope="module")
def fleet(firestore_emulator: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    logs = tmp_path_factory.mktemp("sweep-fanout")
    pubsub, pubsub_host = start_pubsub_emulator(logs / "pubsub.log")
    env = {**FANOUT_ENV, "PUBSUB_EMULATOR_HOST": pubsub_host}
    processes: list[Any] = [pubsub]
    try:
        admin = PubSubAdmin(pubsub_host, E2E_PROJECT)
        admin.create_topic(TOPIC)
        stack = start_stack(firestore_emulator, logs, env)
        processes += [stack.mock_process, stack.service]
        b_port = free_port()
        b_url = f"http://127.0.0.1:{b_port}"
        b_env = service_env(
            [stack.demo], b_url, stack.mock_url, E2E_PROJECT, firestore_emulator, API_KEY
        )
        b = start_service(b_port, {**b_env, **env}, logs / "service-b.log", workers=2)
        processes.append(b)
        relay = PushRelay([stack.service_url, b_url], f"Bearer {API_KEY}", timeout=120)
        # A shard's whole time is its push's: 60 s is plenty for 200 authorizers.
        admin.create_push_subscription(SUBSCRIPTION, TOPIC, relay.url + SHARD_PATH, ack_deadline=60)
        yield Fleet(stack, b_url, b, pubsub, relay, logs)
        relay.close()
    finally:
        for process in reversed(processes):
            process.stop()


def _ready(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """An empty store, the component up, and COUNT authorizers due; their appids."""
    stack = fleet.stack
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", stack.firestore_host)
    stack.mock.reset()
    clear_emulator(stack.firestore_host, E2E_PROJECT)
    stack.register_component()
    assert stack.mock.push_ticket(stack.demo.appid)["delivered"]
    _sweep_and_wait(fleet)  # the component token (nothing due yet)
    seeded = stack.mock.seed_authorizers(stack.demo.appid, COUNT)
    _write_due(stack, seeded)
    return [s["authorizer_appid"] for s in seeded]


def _write_due(stack: Stack, seeded: list[dict[str, str]]) -> None:
    from google.cloud import firestore

    client = firestore.Client(project=E2E_PROJECT)
    authorizers = (
        client.collection("components").document(stack.demo.appid).collection("authorizers")
    )
    for start in range(0, len(seeded), BATCH):
        batch = client.batch()
        for s in seeded[start : start + BATCH]:
            record = authorizer_record(
                stack.demo.appid, s["authorizer_appid"], s["refresh_token"], 60.0
            )
            batch.set(authorizers.document(record.appid), record.to_document())
        batch.commit()


def _sweep(fleet: Fleet) -> dict[str, Any]:
    stack = fleet.stack
    answer = requests.post(f"{stack.service_url}/tasks/refresh", headers=stack.auth, timeout=60)
    assert answer.status_code == 200, answer.text
    report: dict[str, Any] = answer.json()
    assert report["sweep_id"], report
    return report


def _health_sweep(fleet: Fleet) -> dict[str, Any]:
    health = requests.get(f"{fleet.stack.service_url}/healthz", timeout=10).json()
    sweep: dict[str, Any] = health["sweep"]
    return sweep


def _wait_done(fleet: Fleet, sweep_id: str, timeout: float = 120) -> dict[str, Any]:
    def done() -> bool:
        sweep = _health_sweep(fleet)
        return bool(sweep["sweep_id"] == sweep_id and sweep["done"])

    wait_for(done, timeout, f"sweep {sweep_id} done")
    return _health_sweep(fleet)


def _sweep_and_wait(fleet: Fleet) -> dict[str, Any]:
    report = _sweep(fleet)
    return _wait_done(fleet, report["sweep_id"])


def _token_calls(fleet: Fleet) -> int:
    """api_authorizer_token calls WeChat answered (the mock logs the component's appid)."""
    return sum(1 for c in fleet.stack.mock.calls("api_authorizer_token") if c["errcode"] == 0)


def _not_renewed(fleet: Fleet, appids: list[str]) -> set[str]:
    """The appids whose stored token is still the seeded one, or not good for ~2 hours."""
    from google.cloud import firestore

    client = firestore.Client(project=E2E_PROJECT)
    authorizers = (
        client.collection("components").document(fleet.stack.demo.appid).collection("authorizers")
    )
    fresh_after = time.time() + 7000
    renewed = {
        s.id
        for s in authorizers.select(["access_token", "access_token_expires_at"]).stream()
        if not str((s.to_dict() or {}).get("access_token", "")).startswith("seed-")
        and float((s.to_dict() or {}).get("access_token_expires_at") or 0) > fresh_after
    }
    return set(appids) - renewed


def _shards_renewed(process: ManagedProcess, sweep_id: str) -> int:
    return sum(
        e.get("renewed", 0)
        for e in log_entries(process.log_text(), "refresh sweep shard")
        if e.get("sweep_id") == sweep_id
    )


def test_both_instances_renew_each_due_authorizer_exactly_once(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    appids = _ready(fleet, monkeypatch)
    report = _sweep(fleet)
    assert report["shards"] == COUNT // SHARD_SIZE
    assert report["components"][fleet.stack.demo.appid]["authorizers"]["due"] == COUNT
    sweep = _wait_done(fleet, report["sweep_id"])
    # Every one renewed, and WeChat asked COUNT times: so each exactly once.
    assert not _not_renewed(fleet, appids)
    assert _token_calls(fleet) == COUNT
    assert sweep["shards_done"] == sweep["shards_published"] == COUNT // SHARD_SIZE
    assert sweep["shards_pending"] == 0
    assert sweep["counts"].get("renewed") == COUNT
    by_a = _shards_renewed(fleet.a, report["sweep_id"])
    by_b = _shards_renewed(fleet.b, report["sweep_id"])
    assert by_a > 0 and by_b > 0 and by_a + by_b == COUNT, (by_a, by_b)
    done = [
        e
        for p in (fleet.a, fleet.b)
        for e in log_entries(p.log_text(), "refresh sweep done")
        if e.get("sweep_id") == report["sweep_id"]
    ]
    assert len(done) == 1 and done[0]["renewed"] == COUNT


def test_killing_an_instance_mid_sweep_loses_nothing(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    appids = _ready(fleet, monkeypatch)
    # WeChat answers in 100 ms: a shard takes over a second, time to kill B in the middle.
    fleet.stack.mock.update_component(fleet.stack.demo.appid, {"authorizer_token_latency": 0.1})
    report = _sweep(fleet)

    def b_mid_shard() -> bool:
        """B has finished a shard of this sweep and is in the middle of another."""
        text = fleet.b.log_text()
        started, finished = (
            [e for e in log_entries(text, message) if e.get("sweep_id") == report["sweep_id"]]
            for message in ("refresh sweep shard started", "refresh sweep shard")
        )
        return 0 < len(finished) < len(started)

    wait_for(b_mid_shard, 60, "instance B in the middle of a shard")
    # An instance that dies: SIGKILL to its process group (SIGTERM would let gunicorn
    # finish the request). The shard in flight there is never answered.
    os.killpg(fleet.b.pid, signal.SIGKILL)
    fleet.b.stop()

    sweep = _wait_done(fleet, report["sweep_id"])
    assert not _not_renewed(fleet, appids)
    # At most the renewals B had in flight (2 workers x 16 threads) happen twice: WeChat
    # answered B, which died before writing, and A renewed again after B's lease expired.
    assert COUNT <= _token_calls(fleet) <= COUNT + 32
    assert sweep["shards_done"] == sweep["shards_published"]
    assert fleet.relay.down == {fleet.b_url}
    # The shard B was in the middle of came back, and A finished it.
    b_text = fleet.b.log_text()
    b_started, b_finished = (
        {
            e["shard"]
            for e in log_entries(b_text, message)
            if e.get("sweep_id") == report["sweep_id"]
        }
        for message in ("refresh sweep shard started", "refresh sweep shard")
    )
    lost = b_started - b_finished
    assert lost, (b_started, b_finished)
    a_finished = {
        e["shard"]
        for e in log_entries(fleet.a.log_text(), "refresh sweep shard")
        if e.get("sweep_id") == report["sweep_id"] and e.get("recorded")
    }
    assert lost <= a_finished, (lost, a_finished)
