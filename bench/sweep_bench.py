"""One refresh sweep over 5,000 due authorizers, with WeChat answering in 50 ms.

The mock holds 5,000 authorized accounts (its seed endpoint) and answers every
api_authorizer_token after ``authorizer_token_latency`` = 50 ms; Firestore holds their
5,000 records, each access token expiring in a minute (due: the refresh margin is 900 s,
``SWEEP_JITTER`` = 0). One ``POST /tasks/refresh`` is timed per ``SWEEP_CONCURRENCY``
setting; it must report renewed == 5000 and failed == 0.

Two references, in every row's columns:

- the floor, N x latency / concurrency: WeChat's latency alone, perfectly overlapped;
- a sequential loop, one api_authorizer_token over HTTP and one Firestore write per
  authorizer at a time, timed on a sample of 200 and extrapolated to 5,000 (its floor is
  N x latency).
"""

from __future__ import annotations

import time
from typing import Any

from bench.stack import BenchError, BenchStack, authorizer_record, progress
from service.wechat.client import ComponentClient

COUNT = 5000
LATENCY = 0.05
CONCURRENCIES = (32, 16)
SAMPLE = 200
DUE_IN = 60.0  # seconds the stored access tokens have left: well inside the margin


def _settings(concurrency: int) -> dict[str, str]:
    return {"SWEEP_CONCURRENCY": str(concurrency), "SWEEP_JITTER": "0"}


def _write_due(stack: BenchStack, seeded: list[dict[str, str]]) -> None:
    component = stack.component.appid
    started = time.perf_counter()
    written = stack.write_authorizers(
        authorizer_record(component, s["authorizer_appid"], s["refresh_token"], DUE_IN)
        for s in seeded
    )
    progress(f"wrote {written} due authorizer records in {time.perf_counter() - started:.1f}s")


def _sweep(stack: BenchStack, concurrency: int) -> dict[str, Any]:
    calls_before = len(stack.mock.calls("api_authorizer_token"))
    progress(f"POST /tasks/refresh with SWEEP_CONCURRENCY={concurrency} ...")
    cpu_before = stack.cpu_seconds()
    started = time.perf_counter()
    report = stack.refresh(timeout=600)
    seconds = time.perf_counter() - started
    cpu = {k: round(v - cpu_before[k], 1) for k, v in stack.cpu_seconds().items()}
    counts = {k: report.get(k) for k in ("renewed", "skipped", "failed", "needs_reauthorization")}
    calls = len(stack.mock.calls("api_authorizer_token")) - calls_before
    progress(f"  {seconds:.1f}s, {counts}, {calls} api_authorizer_token calls, CPU s {cpu}")
    if report.get("renewed") != COUNT or report.get("failed") != 0:
        raise BenchError(
            f"the sweep did not renew all {COUNT} authorizers: {counts}; "
            f"report: {str(report)[:1500]}"
        )
    floor = COUNT * LATENCY / concurrency
    return {
        "case": f"one sweep, SWEEP_CONCURRENCY={concurrency}",
        "concurrency": concurrency,
        "seconds": round(seconds, 2),
        "per_s": round(COUNT / seconds),
        "floor_s": round(floor, 2),
        "x_floor": round(seconds / floor, 2),
        "upstream_calls": calls,
        # Where the time went: CPU seconds of each process during the sweep (2 cores).
        "cpu_service_s": cpu["service"],
        "cpu_emulator_s": cpu["emulator"],
        "cpu_mock_s": cpu["mock"],
    }


def _sequential(stack: BenchStack, seeded: list[dict[str, str]]) -> float:
    """Seconds per authorizer of the naive loop: call, then write, one at a time."""
    component = stack.component
    client = ComponentClient(stack.mock_url, timeout=30)
    # A token of our own (it supersedes the service's, which stays valid 5 minutes).
    token = client.api_component_token(
        component.appid, component.secret, stack.stored_ticket()
    ).token
    progress(f"sequential loop over {len(seeded)} authorizers ...")
    started = time.perf_counter()
    for item in seeded:
        appid, refresh_token = item["authorizer_appid"], item["refresh_token"]
        answer = client.api_authorizer_token(component.appid, appid, refresh_token, token)
        record = authorizer_record(
            component.appid, appid, answer.refresh_token or refresh_token, answer.expires_in
        ).but(access_token=answer.access_token)
        stack.authorizer_ref(appid).set(record.to_document())
    per_authorizer = (time.perf_counter() - started) / len(seeded)
    progress(f"  {per_authorizer * 1000:.1f} ms per authorizer")
    return per_authorizer


def run() -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    first = CONCURRENCIES[0]
    with BenchStack("sweep", service_settings=_settings(first)) as stack:
        progress(f"seeding {COUNT} authorizers in the mock")
        started = time.perf_counter()
        seeded = stack.seed(COUNT)
        progress(f"  seeded in {time.perf_counter() - started:.2f}s")
        stack.mock.update_component(stack.component.appid, {"authorizer_token_latency": LATENCY})
        for concurrency in CONCURRENCIES:
            if concurrency != first:
                stack.start_service(_settings(concurrency))
            _write_due(stack, seeded)
            rows.append(_sweep(stack, concurrency))
        per_authorizer = _sequential(stack, seeded[:SAMPLE])
    sequential = per_authorizer * COUNT
    for row in rows:
        row["x_faster_than_sequential"] = round(sequential / row["seconds"], 1)
    rows.append(
        {
            "case": f"sequential loop (measured on {SAMPLE}, x{COUNT // SAMPLE})",
            "concurrency": 1,
            "seconds": round(sequential, 1),
            "per_s": round(1 / per_authorizer, 1),
            "floor_s": round(COUNT * LATENCY, 2),
            "x_floor": round(sequential / (COUNT * LATENCY), 2),
            "upstream_calls": SAMPLE,
            "cpu_service_s": None,
            "cpu_emulator_s": None,
            "cpu_mock_s": None,
            "x_faster_than_sequential": 1.0,
        }
    )
    return {
        "name": f"refresh sweep: {COUNT} due authorizers, WeChat latency {LATENCY * 1000:.0f} ms",
        "unit": "seconds",
        "baseline": (
            "floor = N x latency / concurrency (floor_s, x_floor); and a sequential "
            f"call-then-write loop, measured on {SAMPLE} authorizers and extrapolated"
        ),
        "rows": rows,
    }
