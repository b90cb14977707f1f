"""``make bench``: run the benchmarks, print a table each, write bench/results.json."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench import (
    call_costs_bench,
    crypto_bench,
    fanout_bench,
    firestore_ops_bench,
    message_bench,
    outage_bench,
    sweep_bench,
    token_api_bench,
)

RESULTS = Path(__file__).with_name("results.json")


def print_table(result: dict[str, Any]) -> None:
    rows = result["rows"]
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print(f"\n## {result['name']} (baseline: {result['baseline']})")
    print("| " + " | ".join(c.ljust(widths[c]) for c in columns) + " |")
    print("|" + "|".join("-" * (widths[c] + 2) for c in columns) + "|")
    for row in rows:
        print("| " + " | ".join(str(row[c]).ljust(widths[c]) for c in columns) + " |")


BENCHMARKS = (
    crypto_bench,
    message_bench,
    outage_bench,
    token_api_bench,
    sweep_bench,
    fanout_bench,
    call_costs_bench,
    firestore_ops_bench,
)


def main(argv: list[str]) -> int:
    """All benchmarks, written to results.json; or only those named (``python -m bench
    token_api_bench``), printed and not written."""
    started = time.time()
    names = {b.__name__.rpartition(".")[2]: b for b in BENCHMARKS}
    unknown = [n for n in argv if n not in names]
    if unknown:
        print(f"unknown benchmark {unknown[0]!r}; choose from: {', '.join(names)}")
        return 2
    results = []
    for bench in [names[n] for n in argv] or BENCHMARKS:
        print(f"running {bench.__name__} ...", flush=True)
        ran = bench.run()
        for result in ran if isinstance(ran, list) else [ran]:
            print_table(result)
            results.append(result)
    if argv:
        print(f"\n{len(results)} result(s) in {time.time() - started:.0f} s (not written)")
        return 0
    RESULTS.write_text(
        json.dumps(
            {
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "seconds": round(time.time() - started, 1),
                "benchmarks": results,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
