"""The token API on a cache hit: requests/s and latency at 1, 16 and 64 clients.

``POST /api/v1/components/<c>/authorizers/<a>/token`` for an authorizer whose stored
access token lives two more hours, so each request is one Firestore read and no WeChat
call (checked afterwards in the mock's call log). The service runs under gunicorn as
``devstack`` starts it, 2 workers x 8 threads, on the Firestore emulator.

Baseline, measured in the same run and the same way, level by level: the same gunicorn
settings (``-c service/gunicorn_conf.py``, same workers and threads) serving a WSGI app
that answers a fixed JSON body (``bench.hello_app``). Its figures are what the server,
loopback HTTP and the load generator cost; the ratio is the service's share of that.
The load generator (``bench.load``) shares the machine's cores with both.

``cpu_ms``: the server's CPU (its gunicorn process group, from /proc) per request, over the
warm-up and the timed part together (requests: the timed rate x both durations); the cost
model (bench/cost_model.py) bills the token API's from it.
"""

from __future__ import annotations

from typing import Any

import requests

from bench.load import LoadResult, run_load
from bench.stack import BenchError, BenchStack, authorizer_record, group_cpu_seconds, progress
from bench.timing import percentile

LEVELS = (1, 16, 64)
WARMUP = 1.0
DURATION = 4.0
WORKERS, THREADS = 2, 8


def _measured(url: str, clients: int, pgid: int, **kwargs: Any) -> tuple[LoadResult, float]:
    """The load's result and the server's CPU ms per request during it."""
    before = group_cpu_seconds(pgid)
    result = run_load(url, clients, DURATION, WARMUP, **kwargs)
    cpu = group_cpu_seconds(pgid) - before
    requests_made = result.per_second * (DURATION + WARMUP)
    return result, (cpu * 1000 / requests_made if requests_made else float("nan"))


def _row(case: str, result: LoadResult, baseline: LoadResult, cpu_ms: float) -> dict[str, Any]:
    if result.errors:
        raise BenchError(
            f"{case} at {result.clients} clients: {result.errors} failed requests; "
            f"first: {result.first_error}"
        )
    return {
        "case": case,
        "clients": result.clients,
        "req_per_s": round(result.per_second),
        "p50_ms": round(percentile(result.latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(result.latencies, 0.99) * 1000, 2),
        "ratio_vs_gunicorn": round(result.per_second / baseline.per_second, 3),
        "cpu_ms": round(cpu_ms, 3),
    }


def run() -> dict[str, Any]:
    with BenchStack("token-api", workers=WORKERS, threads=THREADS) as stack:
        baseline_url, baseline_process = stack.start_gunicorn_process(
            "baseline-gunicorn", "bench.hello_app:app"
        )
        component = stack.component.appid
        [seeded] = stack.seed(1)
        appid = seeded["authorizer_appid"]
        record = authorizer_record(component, appid, seeded["refresh_token"], expires_in=7200)
        stack.write_authorizers([record])
        path = f"/api/v1/components/{component}/authorizers/{appid}/token"
        token_url = stack.service_url + path
        first = requests.post(token_url, json={}, headers=stack.auth, timeout=30)
        if first.status_code != 200 or first.json().get("access_token") != record.access_token:
            raise BenchError(
                f"POST {path} answered {first.status_code}: {first.text[:300]} "
                "(expected 200 with the stored access token)"
            )

        rows = []
        for clients in LEVELS:
            progress(f"{clients} client(s): gunicorn baseline, then the token API")
            baseline, baseline_cpu = _measured(baseline_url + path, clients, baseline_process.pid)
            assert stack.service is not None
            service, service_cpu = _measured(
                token_url, clients, stack.service.pid, headers=stack.auth
            )
            rows.append(_row("gunicorn, fixed JSON (baseline)", baseline, baseline, baseline_cpu))
            rows.append(_row("token API, cache hit", service, baseline, service_cpu))
        refreshed = stack.mock.calls("api_authorizer_token")
        if refreshed:
            raise BenchError(
                f"the token API called api_authorizer_token {len(refreshed)} times: not cache hits"
            )
    return {
        "name": "token API: cache hit (2 workers x 8 threads)",
        "unit": "requests/s, ms",
        "baseline": "gunicorn with the same settings serving a fixed JSON body (bench.hello_app)",
        "rows": rows,
    }
