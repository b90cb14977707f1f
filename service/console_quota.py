"""clear_quota from the console, behind a confirmation that says how many resets are left.

WeChat allows 10 resets per account per month (Beijing time; both clear_quota forms count)
and says nothing of how many are left until it answers 48006. The console counts the
resets it made in Firestore (one document per account and month, an atomic increment), and
records a 48006 as "none left". Resets made elsewhere (the internal API, another tool) are
not counted, so the page says "at most".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from service.console_store import ConsoleStore, QuotaResets
from service.runtime import Runtime
from service.wechat.errors import ClearQuotaLimitError

CLEARS_PER_MONTH = 10
BEIJING = timezone(timedelta(hours=8))
COUNTER_TTL = 62 * 86400

Clear = Callable[[str, str | None], None]


@dataclass(frozen=True)
class ResetsLeft:
    used: int  # counted by the console this month
    left: int  # at most this many
    exhausted: bool  # WeChat answered 48006 this month


def beijing_month(moment: float) -> str:
    return datetime.fromtimestamp(moment, BEIJING).strftime("%Y%m")


def core_clear(rt: Runtime) -> Clear:
    """The core's quota reset (service/quota_clearing.py), as the internal API makes it: a
    component's (which also ends a 45009 pause) or, with an authorizer appid, that one's."""
    return rt.quotas.clear


class QuotaResetCounter:
    def __init__(
        self, store: ConsoleStore, clear: Clear, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self._clear = clear
        self.clock = clock

    def _resets(self, appid: str) -> QuotaResets:
        now = self.clock()
        found = self.store.quota_resets(appid, beijing_month(now))
        return found.but(expire_at=datetime.fromtimestamp(now + COUNTER_TTL, UTC))

    def left(self, appid: str) -> ResetsLeft:
        resets = self._resets(appid)
        left = 0 if resets.exhausted else max(0, CLEARS_PER_MONTH - resets.count)
        return ResetsLeft(resets.count, left, resets.exhausted)

    def clear(self, component_appid: str, authorizer_appid: str | None) -> None:
        """Reset, then count it; 48006 is counted as "none left" and raised."""
        resets = self._resets(authorizer_appid or component_appid)
        try:
            self._clear(component_appid, authorizer_appid)
        except ClearQuotaLimitError:
            self.store.count_quota_reset(resets, exhausted=True)
            raise
        self.store.count_quota_reset(resets, exhausted=False)
