"""Daily API quotas (protocol §3.9, §5): limits, today's counters, and quota resets.

WeChat counts every account's calls of every API over a day that starts at midnight
Beijing time (UTC+8), and answers 45009 once a limit is reached. A quota rule gives one
API a daily limit: for one account when it names an ``appid``, else for every account,
each counted on its own (an ``appid`` rule wins over a general one for its account).
Calls are counted whether or not a rule exists, so a rule set at noon also sees the
morning. The account of a call is the component for component APIs and the authorizer
for calls made with an authorizer access token; a call counts once its caller is
identified (credentials checked) and a call refused with 45009 does not count.

``clear_quota`` zeroes an account's counters for the day, at most 10 times a calendar
month per account (Beijing time), then 48006. ``Quotas`` takes the state's one lock.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from mock_wechat import errcodes as ec
from mock_wechat.config import InvalidField
from mock_wechat.errcodes import MockApiError
from mock_wechat.state_part import StatePart

log = logging.getLogger(__name__)

BEIJING = timezone(timedelta(hours=8), "UTC+08:00")
CLEARS_PER_MONTH = 10


def beijing_day(now: float) -> date:
    """The WeChat day (midnight to midnight, UTC+8) that mock time ``now`` falls in."""
    return datetime.fromtimestamp(now, BEIJING).date()


def next_midnight(now: float) -> float:
    """Unix time of the next Beijing midnight after ``now``: when the counters reset."""
    day = beijing_day(now) + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=BEIJING).timestamp()


@dataclass(frozen=True)
class QuotaRule:
    api: str
    limit: int  # calls a day; 0 refuses every call
    appid: str | None = None  # None: every account, each with its own count

    def __post_init__(self) -> None:
        if not self.api:
            raise InvalidField("api", "must be an API name")
        if self.limit < 0:
            raise InvalidField("limit", "must be an integer >= 0 (calls a day)")
        if self.appid is not None and not self.appid:
            raise InvalidField("appid", "must be a non-empty string (omit it for every account)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Quotas(StatePart):
    """Quota rules and counters; every method is thread-safe."""

    def clear(self) -> None:
        """Forget the rules, today's counters and this month's resets."""
        with self._lock:
            self._rules: list[QuotaRule] = []
            self._day: date | None = None
            self._usage: dict[tuple[str, str], int] = {}  # (api, appid) -> calls today
            self._resets: dict[tuple[str, str], int] = {}  # ("YYYY-MM", appid) -> resets

    def set_rules(self, rules: Iterable[QuotaRule]) -> None:
        """Replace the rules; today's counters are kept."""
        rules = list(rules)
        seen: set[tuple[str, str | None]] = set()
        for index, rule in enumerate(rules):
            key = (rule.api, rule.appid)
            if key in seen:
                raise InvalidField(f"rules[{index}]", "repeats the api and appid of a rule above")
            seen.add(key)
        with self._lock:
            self._rules = rules
        log.info("quota rules set", extra={"rules": len(rules)})

    def limit(self, api: str, appid: str) -> int | None:
        """The daily limit of ``api`` for ``appid``; None when no rule applies."""
        with self._lock:
            general: int | None = None
            for rule in self._rules:
                if rule.api != api:
                    continue
                if rule.appid == appid:
                    return rule.limit
                if rule.appid is None:
                    general = rule.limit
            return general

    def consume(self, api: str, appid: str) -> None:
        """Count one call of ``api`` by ``appid``, or refuse it with 45009 at the limit."""
        with self._lock:
            self._roll()
            used = self._usage.get((api, appid), 0)
            limit = self.limit(api, appid)
            if limit is not None and used >= limit:
                raise MockApiError(ec.QUOTA_EXCEEDED)
            self._usage[(api, appid)] = used + 1

    def reset_account(self, appid: str) -> None:
        """clear_quota: zero ``appid``'s counters for today (48006 past 10 a month)."""
        with self._lock:
            self._roll()
            month = self._month()
            done = self._resets.get((month, appid), 0)
            if done >= CLEARS_PER_MONTH:
                raise MockApiError(ec.CLEAR_QUOTA_LIMIT)
            self._resets[(month, appid)] = done + 1
            self._usage = {k: v for k, v in self._usage.items() if k[1] != appid}
        log.info("quota cleared", extra={"appid": appid, "clears_this_month": done + 1})

    def view(self) -> dict[str, Any]:
        """What the control plane shows: rules, today's counters and their limits."""
        with self._lock:
            self._roll()
            now = self._clock.now()
            month = self._month()
            return {
                "day": beijing_day(now).isoformat(),
                "resets_at": next_midnight(now),
                "rules": [rule.to_dict() for rule in self._rules],
                "usage": [
                    {"api": api, "appid": appid, "count": count, "limit": self.limit(api, appid)}
                    for (api, appid), count in sorted(self._usage.items())
                ],
                "clears": [
                    {"appid": appid, "count": count, "left": CLEARS_PER_MONTH - count}
                    for (m, appid), count in sorted(self._resets.items())
                    if m == month
                ],
            }

    def _roll(self) -> None:
        """Start a new day's counters when the mock clock has passed Beijing midnight."""
        today = beijing_day(self._clock.now())
        if today != self._day:
            self._day = today
            self._usage = {}

    def _month(self) -> str:
        return beijing_day(self._clock.now()).strftime("%Y-%m")
