"""A per-client rate limit for the public merchant pages: token buckets in process memory.

Each client (its address, see ``client_address``) has a bucket of ``burst`` tokens that
refills at ``per_minute`` tokens a minute. A request takes tokens; when too few are left it
is refused with the seconds until enough will be there (for ``Retry-After``). The buckets
live in an LRU of at most ``max_clients`` entries, so memory stays bounded whatever the
number of addresses: a client pushed out of it comes back with a full bucket.

The buckets are per process (each gunicorn worker of each Cloud Run instance has its own):
the limit bounds what one client costs one process, not the whole service.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

DEFAULT_MAX_CLIENTS = 10_000
# IPv6 clients get whole /64 networks from their provider: one bucket per network.
IPV6_PREFIX = 64
REPORT_INTERVAL = 60.0  # a client's refusals are reported at most once in this many seconds


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0  # whole seconds until the request would be allowed
    report: bool = False  # the client's first refusal in REPORT_INTERVAL: worth a log line


@dataclass
class _Bucket:
    tokens: float
    at: float
    reported_at: float | None = None  # when a refusal was last reported


class TokenBuckets:
    """Thread-safe token buckets keyed by client; ``per_minute <= 0`` allows everything."""

    def __init__(
        self,
        per_minute: float,
        burst: int,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = per_minute / 60.0  # tokens a second
        self.burst = float(max(burst, 1))
        self.max_clients = max(max_clients, 1)
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, client: str, cost: float = 1.0) -> Verdict:
        """Take ``cost`` tokens (at most a full bucket) from ``client``'s bucket, or refuse."""
        if not self.enabled:
            return Verdict(True)
        cost = min(cost, self.burst)
        now = self.clock()
        with self._lock:
            bucket = self._buckets.pop(client, None)
            if bucket is None:
                bucket = _Bucket(tokens=self.burst, at=now)
            else:
                elapsed = max(now - bucket.at, 0.0)
                bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
                bucket.at = now
            self._buckets[client] = bucket  # the most recently used goes last
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            if bucket.tokens >= cost:
                bucket.tokens -= cost
                return Verdict(True)
            report = bucket.reported_at is None or now - bucket.reported_at >= REPORT_INTERVAL
            if report:
                bucket.reported_at = now
            wait = (cost - bucket.tokens) / self.rate
            return Verdict(False, retry_after=max(1, math.ceil(wait)), report=report)


def client_address(remote_addr: str | None, forwarded_for: Iterable[str], hops: int) -> str:
    """The client's address, as the proxies in front of us saw it.

    ``hops`` is how many proxies append to ``X-Forwarded-For`` before the request reaches
    us. Cloud Run's front end appends the address it saw to whatever the client sent, so
    the client's own address is the ``hops``-th from the right (1 behind Cloud Run alone, 2
    behind a Google load balancer too); anything to its left is the client's to invent.
    With ``hops=0``, or too few addresses in the header, it is the connection's address.
    """
    address = remote_addr or ""
    if hops > 0:
        listed = [a.strip() for value in forwarded_for for a in value.split(",") if a.strip()]
        if len(listed) >= hops:
            address = listed[-hops]
    return _bucket_key(address)


def _bucket_key(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address[:64] or "unknown"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)
