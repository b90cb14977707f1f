"""Writes that record what WeChat answered: retried with backoff, never dropped silently.

Once WeChat has answered a call that changes its side (a code exchanged, a token issued, a
refresh token rotated), the answer exists nowhere but in this process until it is stored.
A failed write is therefore tried again, with a growing pause; each failure is logged with
an ``event`` the deployment's alerts count, and only after the last one does the error go
up, leaving the lease to expire for another process (or sync) to recover from.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from service.log_events import CREDENTIAL_WRITE_FAILED
from service.store.records import StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")

ATTEMPTS = 6  # about 6 s of pauses in all: 0.2 + 0.4 + 0.8 + 1.6 + 3.2
FIRST_PAUSE = 0.2


def write_after_answer(
    write: Callable[[], T],
    what: str,
    where: Mapping[str, object],
    attempts: int = ATTEMPTS,
    first_pause: float = FIRST_PAUSE,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    pause = first_pause
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except StoreError as exc:
            last = attempt == attempts
            log.log(
                logging.CRITICAL if last else logging.ERROR,
                f"could not store {what} after WeChat answered"
                + (": giving up" if last else f"; trying again in {pause:g} s"),
                extra={
                    **where,
                    "event": CREDENTIAL_WRITE_FAILED,
                    "attempt": attempt,
                    "error": str(exc),
                },
            )
            if last:
                raise
            sleep(pause)
            pause *= 2
    raise AssertionError("unreachable")
