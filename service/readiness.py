"""Whether this instance can do its work: Firestore answers, and WeChat's API host is
reachable through the egress (on Cloud Run: Direct VPC egress and Cloud NAT).

Cloud Run's startup probe calls GET /readyz (infra/services.py) and routes no request to a
new instance until it answers 200, so a cold instance never meets WeChat's 5 s with a
network that is still being connected. A success is kept for the life of the process: the
probe stops after it, and any later call costs nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

from service.store.records import StoreError

log = logging.getLogger(__name__)

# Each step's bound, so the whole check answers within the probe's timeout (3 s).
STEP_DEADLINE = 1.2


@dataclass(frozen=True)
class Readiness:
    ready: bool
    firestore_ms: float | None = None
    egress_ms: float | None = None
    problem: str | None = None  # what failed, without URLs' secrets or tokens (there are none)


class ReadinessCheck:
    """One check at a time per process; the first success is final."""

    def __init__(
        self,
        read_store: Callable[[float], object],
        egress_url: str,
        session: requests.Session | None = None,
        deadline: float = STEP_DEADLINE,
    ) -> None:
        self._read_store = read_store
        self._egress_url = egress_url
        self._session = session or requests.Session()
        self._deadline = deadline
        self._lock = threading.Lock()
        self._passed: Readiness | None = None

    def run(self) -> Readiness:
        with self._lock:
            if self._passed is not None:
                return self._passed
            result = self._check()
            if result.ready:
                self._passed = result
                log.info(
                    "startup check passed",
                    extra={"firestore_ms": result.firestore_ms, "egress_ms": result.egress_ms},
                )
            else:
                log.warning("startup check failed", extra={"problem": result.problem})
            return result

    def _check(self) -> Readiness:
        started = time.perf_counter()
        try:
            self._read_store(self._deadline)
        except StoreError as exc:
            return Readiness(False, problem=f"Firestore did not answer: {exc}")
        firestore_ms = _ms_since(started)
        started = time.perf_counter()
        try:
            # Any HTTP answer proves DNS, the route out and TLS; the status does not matter.
            self._session.get(
                self._egress_url, timeout=self._deadline, allow_redirects=False, stream=True
            ).close()
        except requests.RequestException as exc:
            return Readiness(
                False,
                firestore_ms=firestore_ms,
                problem=f"WeChat's API host is not reachable through the egress: "
                f"{type(exc).__name__}",
            )
        return Readiness(True, firestore_ms=firestore_ms, egress_ms=_ms_since(started))


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
