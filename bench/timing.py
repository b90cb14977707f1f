"""Timing helpers: rounds interleaved between the contenders, best round kept.

Absolute figures on these machines are noisy; ratios measured in the same run are not.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def calibrate(fn: Callable[[], object], target_seconds: float = 0.2) -> int:
    """How many calls of ``fn`` take about ``target_seconds``."""
    n = 1
    while True:
        started = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - started
        if elapsed >= target_seconds / 4:
            return max(1, int(n * target_seconds / elapsed))
        n *= 4


def best_rates(contenders: dict[str, Callable[[], object]], rounds: int = 7) -> dict[str, float]:
    """Operations per second of each contender: the best of ``rounds`` interleaved rounds."""
    sizes = {name: calibrate(fn) for name, fn in contenders.items()}
    best = dict.fromkeys(contenders, 0.0)
    for _ in range(rounds):
        for name, fn in contenders.items():
            n = sizes[name]
            started = time.perf_counter()
            for _ in range(n):
                fn()
            best[name] = max(best[name], n / (time.perf_counter() - started))
    return best


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]
