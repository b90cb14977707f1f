"""bench/cost_model.py: its arithmetic on a fixed results.json, and bench/README.md's table
being the script's output for the committed bench/results.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import cost_model
from bench.cost_model import Inputs, monthly_costs, read_inputs, render

ROOT = Path(__file__).resolve().parents[1]


def fixed_results(fanout: bool = True) -> dict[str, Any]:
    benchmarks: list[dict[str, Any]] = [
        {
            "name": "token API: cache hit",
            "rows": [
                {"case": "gunicorn, fixed JSON (baseline)", "clients": 16, "cpu_ms": 0.5},
                {"case": "token API, cache hit", "clients": 16, "cpu_ms": 2.0},
                {"case": "token API, cache hit", "clients": 1, "cpu_ms": 9.0},
            ],
        },
        {
            "name": "refresh sweep: 5000 due authorizers",
            "rows": [{"concurrency": 16, "cpu_service_s": 50.0, "upstream_calls": 5000}],
        },
        {
            "name": "Firestore documents per operation",
            "rows": [
                {"case": "sweep: per authorizer renewed", "reads": 4.0, "writes": 2.0},
                {
                    "case": "fan-out sweep: per authorizer renewed (one shard of 20)",
                    "reads": 2.5,
                    "writes": 2.25,
                },
                {"case": "token request, cache hit", "reads": 1.0, "writes": 0.0},
                {"case": "sweep with nothing due (fixed cost)", "reads": 5.0, "writes": 1.0},
            ],
        },
    ]
    if fanout:
        benchmarks.append(
            {
                "name": "fan-out sweep: 20000 due authorizers",
                "rows": [
                    {"processes": 1, "renewed": 20000, "cpu_service_s": 120.0},
                    {"processes": 2, "renewed": 20000, "cpu_service_s": 150.0},
                ],
            }
        )
    return {"when": "2026-01-01T00:00:00Z", "cpus": 2, "benchmarks": benchmarks}


def test_inputs_are_the_measured_figures() -> None:
    inputs = read_inputs(fixed_results())
    assert inputs.renewal_cpu_s == pytest.approx(0.006)  # 120 s / 20,000, one process
    assert (inputs.token_cpu_s, inputs.bare_request_cpu_s) == (0.002, 0.0005)  # 16 clients
    # The fan-out sweep's documents, as its CPU is the one billed.
    assert (inputs.renewal_reads, inputs.renewal_writes) == (2.5, 2.25)
    assert (inputs.sweep_reads, inputs.sweep_writes) == (5.0, 1.0)
    # Without the fan-out benchmark: the inline sweep's CPU and documents.
    inline = read_inputs(fixed_results(fanout=False))
    assert inline.renewal_cpu_s == pytest.approx(0.01)
    assert (inline.renewal_reads, inline.renewal_writes) == (4.0, 2.0)


def test_a_missing_figure_says_to_run_the_bench() -> None:
    results = fixed_results()
    results["benchmarks"][0]["rows"] = []
    with pytest.raises(KeyError, match="make bench"):
        read_inputs(results)


def test_the_arithmetic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Round numbers in, hand-computed dollars out."""
    monkeypatch.setattr(cost_model, "MONTH_S", 6000 * 100)  # 100 renewals per authorizer
    monkeypatch.setattr(cost_model, "SCHEDULE_PERIOD_S", 300)
    monkeypatch.setattr(cost_model, "renewal_interval", lambda: 6000.0)
    monkeypatch.setattr(cost_model, "SHARD_SIZE", 100)
    inputs = Inputs(
        renewal_cpu_s=0.01,
        renewal_source="fixed",
        token_cpu_s=0.002,
        bare_request_cpu_s=0.001,
        renewal_reads=4,
        renewal_writes=2,
        token_reads=1,
        token_writes=0,
        sweep_reads=5,
        sweep_writes=1,
    )
    costs = monthly_costs(inputs, 10_000)
    renewals = 1_000_000  # 10,000 x 100
    tokens = 10 * 600_000  # 10 a second for 600,000 s
    sweeps = 2000  # 600,000 s / 300
    vcpu = renewals * 0.01 + tokens * 0.002 + sweeps * 0.001  # 22,002 s
    assert costs["Cloud Run vCPU"] == pytest.approx(vcpu * 0.000024)
    assert costs["Cloud Run memory"] == pytest.approx(vcpu * 0.5 * 0.0000025)
    shards = renewals / 100
    assert costs["Cloud Run requests"] == pytest.approx((tokens + shards + sweeps) * 0.4e-6)
    assert costs["Firestore reads"] == pytest.approx((renewals * 4 + tokens + sweeps * 5) * 0.06e-5)
    assert costs["Firestore writes"] == pytest.approx((renewals * 2 + sweeps) * 0.18e-5)
    assert costs["Firestore storage"] == pytest.approx(10_000 * 2048 / 1024**3 * 0.18)
    # A shard of 100 appids: 200 + 2,400 bytes, published and delivered.
    assert costs["Pub/Sub"] == pytest.approx(2 * shards * 2600 / 1024**4 * 40)
    assert costs["Cloud NAT"] == pytest.approx(730 * 0.044 + renewals * 4096 / 1024**3 * 0.045)
    assert costs["Static IP"] == pytest.approx(730 * 0.005)
    assert costs["Cloud Scheduler"] == pytest.approx(0.10)
    # Two lines a shard (started, counts); a renewal logs at DEBUG.
    assert costs["Cloud Logging"] == pytest.approx(shards * 2 * 500 / 1024**3 * 0.50)

    lone = monthly_costs(inputs, 10_000, lone=True)
    # One request and one 1,000-byte message per renewal; a token request's CPU on top.
    assert lone["Cloud Run requests"] == pytest.approx((tokens + renewals + sweeps) * 0.4e-6)
    assert lone["Pub/Sub"] == pytest.approx(2 * renewals * 1000 / 1024**4 * 40)
    assert lone["Cloud Logging"] == pytest.approx(renewals * 2 * 500 / 1024**3 * 0.50)
    lone_vcpu = vcpu + renewals * 0.002
    assert lone["Cloud Run vCPU"] == pytest.approx(lone_vcpu * 0.000024)
    assert lone["Firestore reads"] == costs["Firestore reads"]


def test_the_renewal_interval_is_the_services_defaults() -> None:
    # 7,200 s less the 900 s margin, half the 300 s jitter, half the 300 s schedule.
    assert cost_model.renewal_interval() == 6000


def test_the_table_has_every_size_and_the_comparison() -> None:
    section = render(fixed_results())
    assert "| Item | 10,000 authorizers | 100,000 authorizers | 1,000,000 authorizers |" in section
    assert "**Total, shards**" in section and "each renewal a lone request" in section
    for _, _, page in cost_model.PRICES.values():
        assert page in section


def test_the_readme_table_is_the_scripts_output_for_the_committed_results() -> None:
    results = json.loads((ROOT / "bench" / "results.json").read_text())
    assert cost_model.readme_section(ROOT / "bench" / "README.md") == render(results)


def test_writing_replaces_only_between_the_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{cost_model.BEGIN}\nold\n{cost_model.END}\nafter\n")
    assert cost_model.write_readme("new\n", readme)
    assert readme.read_text() == f"before\n{cost_model.BEGIN}\nnew\n{cost_model.END}\nafter\n"
    assert not cost_model.write_readme("new\n", readme)
