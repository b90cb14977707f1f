"""The refresh sweep behind POST /tasks/refresh: keep every credential fresh.

Cloud Scheduler calls it every few minutes (``make dev`` does the same on a timer). Two
sweeps at once are safe: each credential has one refresher, the others see it fresh.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from service.component_token import ComponentTokenManager, Outcome, TokenUnavailableError
from service.store.records import StoreError
from service.tickets import TicketKeeper

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    renewed: int = 0
    skipped: int = 0
    failed: int = 0
    needs_reauthorization: int = 0
    components: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def sweep(
    appids: Iterable[str], tokens: ComponentTokenManager, tickets: TicketKeeper
) -> SweepReport:
    report = SweepReport()
    for appid in appids:
        detail: dict[str, Any] = {"ticket_push_requested": False}
        try:
            detail["ticket_push_requested"] = tickets.check(appid)
            _, outcome = tokens.obtain(appid)
        except (TokenUnavailableError, StoreError) as exc:
            report.failed += 1
            detail.update(component_token="failed", error=str(exc))
            log.error(
                "refresh sweep: component token failed",
                extra={"component_appid": appid, "error": str(exc)},
            )
        else:
            if outcome is Outcome.RENEWED:
                report.renewed += 1
            else:
                report.skipped += 1
            detail["component_token"] = outcome.value
        report.components[appid] = detail
    log.info(
        "refresh sweep done",
        extra={"renewed": report.renewed, "skipped": report.skipped, "failed": report.failed},
    )
    return report
