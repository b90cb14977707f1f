"""The public pages' token buckets and the client address they are keyed by."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.web.rate_limit import TokenBuckets, Verdict, client_address


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_refusals_with_the_wait_then_refilled() -> None:
    clock = Clock()
    buckets = TokenBuckets(per_minute=30, burst=5, clock=clock)
    assert [buckets.take("a").allowed for _ in range(6)] == [True] * 5 + [False]
    refused = buckets.take("a")
    assert refused == Verdict(False, retry_after=2, report=False)  # 1 token / 2 s
    assert buckets.take("b").allowed  # its own bucket
    clock.now += 2
    assert buckets.take("a").allowed and not buckets.take("a").allowed
    clock.now += 3600  # never more than the burst
    assert [buckets.take("a").allowed for _ in range(6)] == [True] * 5 + [False]


def test_a_clients_refusals_are_reported_once_a_minute() -> None:
    clock = Clock()
    buckets = TokenBuckets(per_minute=60, burst=1, clock=clock)
    assert buckets.take("a").allowed
    assert [buckets.take("a").report for _ in range(3)] == [True, False, False]
    clock.now += 1
    assert buckets.take("a").allowed
    assert not buckets.take("a").report  # allowed in between, but within the minute
    assert buckets.take("b").allowed and buckets.take("b").report  # another client
    clock.now += 59
    assert buckets.take("a").allowed
    assert buckets.take("a").report


def test_a_costly_request_takes_more_and_never_more_than_the_burst() -> None:
    clock = Clock()
    buckets = TokenBuckets(per_minute=60, burst=10, clock=clock)
    assert buckets.take("a", 4).allowed and buckets.take("a", 4).allowed
    refused = buckets.take("a", 4)  # 2 left: 2 s to wait for 2 more
    assert not refused.allowed and refused.retry_after == 2
    assert buckets.take("a", 2).allowed
    clock.now += 60
    assert buckets.take("a", 1000).allowed  # taken as a whole bucket, else never allowed
    assert not buckets.take("a").allowed


def test_memory_is_bounded_least_recently_used_first() -> None:
    clock = Clock()
    buckets = TokenBuckets(per_minute=1, burst=1, max_clients=3, clock=clock)
    for client in ("a", "b", "c"):
        assert buckets.take(client).allowed
    assert not buckets.take("a").allowed  # a is now the most recent
    assert buckets.take("d").allowed  # b, the least recent, goes
    assert len(buckets) == 3
    assert not buckets.take("a").allowed and not buckets.take("c").allowed
    assert buckets.take("b").allowed  # forgotten: a full bucket again


@given(st.lists(st.text(min_size=1, max_size=8), max_size=200))
def test_never_more_clients_than_the_bound(clients: list[str]) -> None:
    buckets = TokenBuckets(per_minute=10, burst=2, max_clients=16)
    for client in clients:
        buckets.take(client)
        assert len(buckets) <= 16


def test_zero_a_minute_allows_everything() -> None:
    buckets = TokenBuckets(per_minute=0, burst=1)
    assert all(buckets.take("a", 50).allowed for _ in range(100))
    assert len(buckets) == 0


def test_threads_never_take_more_than_the_burst() -> None:
    buckets = TokenBuckets(per_minute=1, burst=50)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            verdicts = list(pool.map(lambda _: buckets.take("a"), range(4000)))
    finally:
        sys.setswitchinterval(interval)
    assert sum(v.allowed for v in verdicts) == 50


@pytest.mark.parametrize(
    ("remote", "forwarded", "hops", "expected"),
    [
        # Cloud Run alone appends the address it saw: the last one is the client's.
        ("169.254.1.1", ["203.0.113.9"], 1, "203.0.113.9"),
        ("169.254.1.1", ["6.6.6.6, 7.7.7.7, 203.0.113.9"], 1, "203.0.113.9"),
        # A Google load balancer in front appends its own address after the client's.
        ("169.254.1.1", ["6.6.6.6, 203.0.113.9, 130.211.0.5"], 2, "203.0.113.9"),
        # Two header lines read as one list.
        ("169.254.1.1", ["6.6.6.6", "203.0.113.9"], 1, "203.0.113.9"),
        # Fewer addresses than hops, none at all, or no proxy: the connection's address.
        ("192.0.2.7", ["203.0.113.9"], 2, "192.0.2.7"),
        ("192.0.2.7", [], 1, "192.0.2.7"),
        ("192.0.2.7", ["203.0.113.9"], 0, "192.0.2.7"),
        # IPv6 clients by their /64; IPv4-mapped ones as IPv4.
        ("::1", ["2001:db8:1:2:aaaa::1"], 1, "2001:db8:1:2::/64"),
        ("::1", ["2001:db8:1:2:bbbb::7"], 1, "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.8", [], 0, "192.0.2.8"),
        # Not an address: kept as text, cut short.
        ("192.0.2.7", ["unknown"], 1, "unknown"),
        (None, [], 1, "unknown"),
    ],
)
def test_client_address(remote: str | None, forwarded: list[str], hops: int, expected: str) -> None:
    assert client_address(remote, forwarded, hops) == expected


def test_a_client_cannot_pick_its_own_bucket_by_writing_x_forwarded_for() -> None:
    keys = {client_address("169.254.1.1", [f"10.0.0.{i}, 203.0.113.9"], 1) for i in range(50)}
    assert keys == {"203.0.113.9"}
