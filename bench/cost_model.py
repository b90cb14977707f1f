"""The monthly cost of running the gateway, from what ``make bench`` measured.

``python -m bench.cost_model`` (``make bench`` runs it last) reads ``bench/results.json``
and writes the table between the markers in ``bench/README.md``; ``--check`` only says
whether the README's table is this script's output for the JSON.

Load: ``AUTHORIZERS`` authorized accounts, and ``TOKEN_RPS_PER_10K`` token requests a
second per 10,000 of them, all cache hits. Each authorizer's token is renewed once per
``renewal_interval()`` (its 7,200 s life less the sweep's margin, half its jitter and half
the schedule's period). From ``results.json``, each figure measured in the same run:

- service CPU per renewal: the fan-out sweep's, one process (``fan-out sweep`` rows), or
  else the inline sweep's at ``SWEEP_CONCURRENCY=16``;
- service CPU per token request (cache hit) and per bare request (gunicorn serving a fixed
  body: what a request costs before the gateway does anything), at 16 clients;
- Firestore reads and writes per renewal (the fan-out sweep's row when the fan-out was
  measured, else the inline sweep's), per token hit and per sweep with nothing due.

Cloud Logging: ``LOG_LINES_PER_SHARD`` lines per shard (started, and its counts) of
``LOG_LINE_BYTES``; a renewal and a successful WeChat call log at DEBUG (a renewal that
brings a new refresh token logs at INFO, not counted), token hits log nothing. The first
50 GiB of a month are free and not subtracted.

Billing (request-based Cloud Run): vCPU-seconds = the measured CPU seconds, and GiB-seconds
= vCPU-seconds x 0.5 (512 MiB per CPU, infra/services.py). That assumes busy instances,
which the sweep (bound by CPU, bench/README.md) and a steady token load are; an instance
waiting on WeChat with spare threads is billed more. No free tier is subtracted.

The comparison, "each renewal a lone request": one HTTP request (and one Pub/Sub message
of at least 1 KB, published and delivered) per renewal instead of one per shard, its CPU
the renewal's plus a token request's (an authenticated request and a record read: the
nearest measured request), the same Firestore documents.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.config import NUMERIC_SETTINGS

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
README = HERE / "README.md"
BEGIN = "<!-- cost-model:begin (python -m bench.cost_model writes this table) -->"
END = "<!-- cost-model:end -->"

AUTHORIZERS = (10_000, 100_000, 1_000_000)
TOKEN_RPS_PER_10K = 10.0
MONTH_S = 30 * 24 * 3600
HOURS = 730  # a month, as Google's price pages count it
TOKEN_LIFETIME_S = 7200
SCHEDULE_PERIOD_S = 300  # */5 * * * *, the stack's default refresh_schedule
SHARD_SIZE = 200  # SWEEP_SHARD_SIZE's default
MEMORY_GIB_PER_VCPU = 0.5
# Assumptions (not measured here): an authorizer's document with its index entries, the
# bytes of a shard message per appid (JSON), and what one WeChat call moves through NAT.
DOCUMENT_BYTES = 2048
SHARD_BYTES_PER_APPID = 24
SHARD_BYTES_FIXED = 200
WECHAT_CALL_BYTES = 4096
PUBSUB_MIN_BYTES = 1000  # Pub/Sub bills each message as at least 1,000 bytes
LOG_LINE_BYTES = 500  # a JSON log line as Cloud Logging bills it (with its metadata)
LOG_LINES_PER_SHARD = 2  # service.sweep_shards: started, and its counts
GIB = 1024**3
TIB = 1024**4

# List prices in USD, Cloud Run tier 1 regions (asia-east2, the example stack's, is tier 2:
# CPU and memory about 1.4x). Checked on 2026-12-02 against copies of the pages below
# (this machine has no internet): Cloud Run's request-based CPU, memory and requests,
# Firestore's multi-region reads and writes, Pub/Sub, Cloud NAT (its hourly price is
# $0.0014 an instance up to 32, $0.044 beyond: the model takes the cap) and its address,
# Cloud Logging. Firestore's storage and Cloud Scheduler are as read in 2025.
PRICES_DATE = "checked on 2026-12-02 against copies of the pages named below"
PRICES: dict[str, tuple[float, str, str]] = {
    "run_vcpu_s": (0.000024, "per vCPU-second (request-based)", "cloud.google.com/run/pricing"),
    "run_gib_s": (0.0000025, "per GiB-second (request-based)", "cloud.google.com/run/pricing"),
    "run_request": (0.40 / 1e6, "per request", "cloud.google.com/run/pricing"),
    "fs_read": (0.06 / 1e5, "per document read (nam5)", "cloud.google.com/firestore/pricing"),
    "fs_write": (0.18 / 1e5, "per document write (nam5)", "cloud.google.com/firestore/pricing"),
    "fs_gib_month": (0.18, "per GiB-month stored (nam5)", "cloud.google.com/firestore/pricing"),
    "pubsub_tib": (40.0, "per TiB published or delivered", "cloud.google.com/pubsub/pricing"),
    "nat_hour": (0.044, "per gateway-hour (over 32 instances)", "cloud.google.com/nat/pricing"),
    "nat_gib": (0.045, "per GiB processed", "cloud.google.com/nat/pricing"),
    "ip_hour": (0.005, "per static IP-hour in use", "cloud.google.com/vpc/network-pricing"),
    "scheduler_job": (0.10, "per job-month", "cloud.google.com/scheduler/pricing"),
    "logging_gib": (0.50, "per GiB ingested", "cloud.google.com/stackdriver/pricing"),
}


def price(key: str) -> float:
    return PRICES[key][0]


def renewal_interval() -> float:
    """Seconds between two renewals of one authorizer's token, on average."""
    bounds = {bound.name: bound.default for bound in NUMERIC_SETTINGS}
    margin = bounds["AUTHORIZER_TOKEN_REFRESH_MARGIN"]
    jitter = bounds["SWEEP_JITTER"]
    return TOKEN_LIFETIME_S - margin - jitter / 2 - SCHEDULE_PERIOD_S / 2


@dataclass(frozen=True)
class Inputs:
    """What the model takes from results.json."""

    renewal_cpu_s: float
    renewal_source: str
    token_cpu_s: float
    bare_request_cpu_s: float
    renewal_reads: float
    renewal_writes: float
    token_reads: float
    token_writes: float
    sweep_reads: float
    sweep_writes: float


def _benchmark(results: dict[str, Any], prefix: str) -> dict[str, Any] | None:
    for bench in results["benchmarks"]:
        if str(bench["name"]).startswith(prefix):
            return dict(bench)
    return None


def _row(bench: dict[str, Any] | None, **match: Any) -> dict[str, Any]:
    rows = [] if bench is None else bench["rows"]
    for row in rows:
        if all(row.get(key) == value for key, value in match.items()):
            return dict(row)
    name = None if bench is None else bench["name"]
    raise KeyError(f"no row {match} in benchmark {name!r}: run `make bench`")


def read_inputs(results: dict[str, Any]) -> Inputs:
    fanout = _benchmark(results, "fan-out sweep")
    if fanout is not None:
        row = _row(fanout, processes=1)
        renewal_cpu = row["cpu_service_s"] / row["renewed"]
        source = f"{fanout['name']}, 1 process"
    else:
        sweep = _benchmark(results, "refresh sweep")
        row = _row(sweep, concurrency=16)
        renewal_cpu = row["cpu_service_s"] / row["upstream_calls"]
        source = f"{sweep and sweep['name']}, SWEEP_CONCURRENCY=16"
    token = _benchmark(results, "token API")
    token_row = _row(token, case="token API, cache hit", clients=16)
    bare_row = _row(token, case="gunicorn, fixed JSON (baseline)", clients=16)
    ops = _benchmark(results, "Firestore documents")
    renewal = _row(ops, case="sweep: per authorizer renewed")
    fanned = [r for r in (ops or {}).get("rows", []) if str(r["case"]).startswith("fan-out")]
    if fanout is not None and fanned:
        renewal = fanned[0]  # the documents of the sweep whose CPU is billed
    hit = _row(ops, case="token request, cache hit")
    idle = _row(ops, case="sweep with nothing due (fixed cost)")
    return Inputs(
        renewal_cpu_s=renewal_cpu,
        renewal_source=source,
        token_cpu_s=token_row["cpu_ms"] / 1000,
        bare_request_cpu_s=bare_row["cpu_ms"] / 1000,
        renewal_reads=renewal["reads"],
        renewal_writes=renewal["writes"],
        token_reads=hit["reads"],
        token_writes=hit["writes"],
        sweep_reads=idle["reads"],
        sweep_writes=idle["writes"],
    )


def monthly_costs(inputs: Inputs, authorizers: int, lone: bool = False) -> dict[str, float]:
    """USD a month by line item, for ``authorizers`` at the model's token load."""
    renewals = authorizers * MONTH_S / renewal_interval()
    token_requests = authorizers / 10_000 * TOKEN_RPS_PER_10K * MONTH_S
    sweeps = MONTH_S / SCHEDULE_PERIOD_S
    if lone:
        messages = renewals
        message_bytes = float(PUBSUB_MIN_BYTES)
        renewal_cpu = inputs.renewal_cpu_s + inputs.token_cpu_s
    else:
        messages = renewals / SHARD_SIZE
        message_bytes = max(
            PUBSUB_MIN_BYTES, SHARD_BYTES_FIXED + SHARD_BYTES_PER_APPID * SHARD_SIZE
        )
        renewal_cpu = inputs.renewal_cpu_s
    vcpu_s = renewals * renewal_cpu + token_requests * inputs.token_cpu_s
    vcpu_s += sweeps * inputs.bare_request_cpu_s
    requests = token_requests + messages + sweeps
    reads = (
        renewals * inputs.renewal_reads
        + token_requests * inputs.token_reads
        + sweeps * inputs.sweep_reads
    )
    writes = (
        renewals * inputs.renewal_writes
        + token_requests * inputs.token_writes
        + sweeps * inputs.sweep_writes
    )
    log_bytes = messages * LOG_LINES_PER_SHARD * LOG_LINE_BYTES
    return {
        "Cloud Run vCPU": vcpu_s * price("run_vcpu_s"),
        "Cloud Run memory": vcpu_s * MEMORY_GIB_PER_VCPU * price("run_gib_s"),
        "Cloud Run requests": requests * price("run_request"),
        "Firestore reads": reads * price("fs_read"),
        "Firestore writes": writes * price("fs_write"),
        "Firestore storage": authorizers * DOCUMENT_BYTES / GIB * price("fs_gib_month"),
        # Published once and delivered once: both are billed.
        "Pub/Sub": 2 * messages * message_bytes / TIB * price("pubsub_tib"),
        "Cloud NAT": HOURS * price("nat_hour")
        + renewals * WECHAT_CALL_BYTES / GIB * price("nat_gib"),
        "Static IP": HOURS * price("ip_hour"),
        "Cloud Scheduler": price("scheduler_job"),
        "Cloud Logging": log_bytes / GIB * price("logging_gib"),
    }


def _money(value: float) -> str:
    if value < 10:
        return f"${value:,.2f}"
    return f"${value:,.0f}"


def render(results: dict[str, Any]) -> str:
    """The README's cost section (between the markers): inputs, table, comparison."""
    inputs = read_inputs(results)
    columns = [f"{n:,} authorizers" for n in AUTHORIZERS]
    batched = [monthly_costs(inputs, n) for n in AUTHORIZERS]
    lone = [monthly_costs(inputs, n, lone=True) for n in AUTHORIZERS]
    lines = [
        f"Measured inputs (`bench/results.json` of {results['when']}, {results['cpus']} CPUs):",
        "",
        f"- service CPU per renewal: {inputs.renewal_cpu_s * 1000:.2f} ms "
        f"({inputs.renewal_source});",
        f"- service CPU per token request (cache hit, 16 clients): "
        f"{inputs.token_cpu_s * 1000:.2f} ms; per bare gunicorn request: "
        f"{inputs.bare_request_cpu_s * 1000:.2f} ms;",
        f"- Firestore per renewal {inputs.renewal_reads:g} reads, {inputs.renewal_writes:g} "
        f"writes; per token hit {inputs.token_reads:g} reads, {inputs.token_writes:g} writes; "
        f"per sweep with nothing due {inputs.sweep_reads:g} reads, {inputs.sweep_writes:g} "
        "writes.",
        "",
        f"Load: {TOKEN_RPS_PER_10K:g} token requests a second per 10,000 authorizers; a "
        f"renewal per authorizer every {renewal_interval():,.0f} s; a sweep every "
        f"{SCHEDULE_PERIOD_S} s; shards of {SHARD_SIZE}. USD a month at list prices "
        f"({PRICES_DATE}; Cloud Run tier 1):",
        "",
        "| Item | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for item in batched[0]:
        lines.append(f"| {item} | " + " | ".join(_money(c[item]) for c in batched) + " |")
    totals = [sum(c.values()) for c in batched]
    lone_totals = [sum(c.values()) for c in lone]
    lines.append("| **Total, shards** | " + " | ".join(f"**{_money(t)}**" for t in totals) + " |")
    lines.append(
        "| Total, each renewal a lone request | "
        + " | ".join(_money(t) for t in lone_totals)
        + " |"
    )
    lines.append(
        "| lone requests / shards | "
        + " | ".join(f"{lt / t:.2f}" for lt, t in zip(lone_totals, totals, strict=True))
        + " |"
    )
    lines += [
        "",
        "Prices used: "
        + "; ".join(
            f"{key} ${value:g} {unit} ({page})" for key, (value, unit, page) in PRICES.items()
        )
        + ".",
    ]
    return "\n".join(lines) + "\n"


def write_readme(section: str, readme: Path = README) -> bool:
    """Put ``section`` between the markers; True if the file changed."""
    text = readme.read_text()
    head, sep, rest = text.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise SystemExit(f"{readme} lacks the markers {BEGIN!r} ... {END!r}")
    new = f"{head}{BEGIN}\n{section}{END}{tail}"
    if new == text:
        return False
    readme.write_text(new)
    return True


def readme_section(readme: Path = README) -> str:
    text = readme.read_text()
    return text.partition(BEGIN)[2].partition(END)[0].removeprefix("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--check", action="store_true", help="only compare with the README")
    args = parser.parse_args(argv)
    section = render(json.loads(args.results.read_text()))
    if args.check:
        if readme_section() != section:
            print(
                "bench/README.md's cost table is not the model's output: run "
                "python -m bench.cost_model",
                file=sys.stderr,
            )
            return 1
        return 0
    print(section)
    changed = write_readme(section)
    print(f"{'updated' if changed else 'unchanged'}: {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
