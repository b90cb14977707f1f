"""The fan-out sweep (SWEEP_MODE=fanout) over 20,000 due authorizers, 1 and 2 service processes.

The mock answers every api_authorizer_token after 50 ms, as in ``bench.sweep_bench``.
``POST /tasks/refresh`` publishes the due authorizers in shards of ``SHARD_SIZE`` to a
topic on the Pub/Sub emulator, whose push subscription delivers each shard to a relay in
this process that plays Cloud Run's front door (round robin over the service processes,
adding the internal API's bearer key where Cloud Run would check the push's OIDC token).
Timed: from the POST to the sweep's progress (``/healthz``) saying done; it must have
renewed all of them, each with one upstream call.

Figures: renewals a second and service CPU (all service processes' groups) per renewal,
against the references of ``bench.sweep_bench`` measured in this run: the floor
(N x latency / (processes x SWEEP_CONCURRENCY)) and the inline sweep of one process.
``BENCH_FANOUT_COUNT`` sets another count (a quick look; ``make bench`` uses 20,000).
"""

from __future__ import annotations

import os
import time
from typing import Any

import requests

from bench.stack import BenchError, BenchStack, authorizer_record, group_cpu_seconds, progress
from devstack.push_relay import PushRelay

COUNT = int(os.environ.get("BENCH_FANOUT_COUNT", "20000"))
LATENCY = 0.05
CONCURRENCY = 16
SHARD_SIZE = 200
TOPIC = "bench-refresh-shards"
SUBSCRIPTION = "bench-refresh-shards-push"
SHARD_PATH = "/tasks/refresh-shard"
DUE_IN = 60.0
SETTINGS = {
    "SWEEP_MODE": "fanout",
    "SWEEP_SHARD_TOPIC": TOPIC,
    "SWEEP_SHARD_SIZE": str(SHARD_SIZE),
    "SWEEP_CONCURRENCY": str(CONCURRENCY),
    "SWEEP_JITTER": "0",
}


def _wait_done(url: str, sweep_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sweep: dict[str, Any] = requests.get(f"{url}/healthz", timeout=30).json().get("sweep") or {}
        if sweep.get("sweep_id") == sweep_id and sweep.get("done"):
            return sweep
        time.sleep(0.5)
    raise BenchError(f"sweep {sweep_id} not done in {timeout:.0f} s")


def _sweep(stack: BenchStack, pgids: list[int], processes: int) -> dict[str, Any]:
    calls_before = len(stack.mock.calls("api_authorizer_token"))
    cpu_before = [group_cpu_seconds(p) for p in pgids]
    started = time.perf_counter()
    answer = requests.post(f"{stack.service_url}/tasks/refresh", headers=stack.auth, timeout=600)
    if answer.status_code != 200 or not answer.json().get("sweep_id"):
        raise BenchError(f"POST /tasks/refresh answered {answer.status_code}: {answer.text[:500]}")
    sweep = _wait_done(stack.service_url, answer.json()["sweep_id"], timeout=1200)
    seconds = time.perf_counter() - started
    cpu = sum(group_cpu_seconds(p) - b for p, b in zip(pgids, cpu_before, strict=True))
    calls = len(stack.mock.calls("api_authorizer_token")) - calls_before
    renewed = int((sweep.get("counts") or {}).get("renewed", calls))
    progress(f"  {processes} process(es): {seconds:.1f}s, {calls} upstream calls, CPU {cpu:.1f}s")
    if calls != COUNT:
        raise BenchError(f"{calls} api_authorizer_token calls for {COUNT} due authorizers: {sweep}")
    floor = COUNT * LATENCY / (processes * CONCURRENCY)
    return {
        "case": f"fan-out sweep, {processes} process(es)",
        "processes": processes,
        "renewed": renewed,
        "seconds": round(seconds, 2),
        "per_s": round(COUNT / seconds),
        "floor_s": round(floor, 2),
        "x_floor": round(seconds / floor, 2),
        "cpu_service_s": round(cpu, 1),
        "cpu_ms_per_renewal": round(cpu * 1000 / COUNT, 2),
    }


def _write_due(stack: BenchStack, seeded: list[dict[str, str]]) -> None:
    component = stack.component.appid
    stack.write_authorizers(
        authorizer_record(component, s["authorizer_appid"], s["refresh_token"], DUE_IN)
        for s in seeded
    )


def run() -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with BenchStack("fanout", service_settings=SETTINGS, topics=[TOPIC]) as stack:
        progress(f"seeding {COUNT} authorizers in the mock")
        seeded = stack.seed(COUNT)
        stack.mock.update_component(stack.component.appid, {"authorizer_token_latency": LATENCY})
        second_url, second = stack.start_gateway({**SETTINGS})
        assert stack.service is not None
        targets: list[str] = []
        relay = PushRelay(targets, stack.auth["Authorization"], timeout=600)
        try:
            stack.pubsub_admin().create_push_subscription(
                SUBSCRIPTION, TOPIC, relay.url + SHARD_PATH, ack_deadline=600
            )
            for processes in (1, 2):
                targets[:] = [stack.service_url, second_url][:processes]
                pgids = [stack.service.pid, second.pid][:processes]
                _write_due(stack, seeded)
                rows.append(_sweep(stack, pgids, processes))
        finally:
            relay.close()
    one = rows[0]["seconds"]
    for row in rows:
        row["x_faster_than_1_process"] = round(one / row["seconds"], 2)
    return {
        "name": f"fan-out sweep: {COUNT} due authorizers, WeChat latency {LATENCY * 1000:.0f} ms, "
        f"shards of {SHARD_SIZE}, SWEEP_CONCURRENCY={CONCURRENCY}",
        "unit": "renewals/s, CPU ms",
        "baseline": "floor = N x latency / (processes x concurrency); the inline sweep "
        "(refresh sweep rows) in the same run",
        "rows": rows,
    }
