"""The console's audit log: one Firestore write per operator action (who, what, on which,
when, and the outcome), kept 400 days and shown on the console's 审计日志 page."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from service.console_store import AuditEntry, ConsoleStore
from service.redaction import redact_value
from service.store.records import StoreError

log = logging.getLogger(__name__)

AUDIT_TTL = 400 * 86400
RECENT = 200  # entries the page shows


class AuditLog:
    def __init__(self, store: ConsoleStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def record(self, who: str, action: str, target: str, outcome: str, **detail: Any) -> AuditEntry:
        """Write one entry. A failed write is logged (with the entry) and not raised: the
        action it records has happened already."""
        now = self.clock()
        entry = AuditEntry(
            # Newest first by id too, so a listing without an index reads well.
            key=f"{int(now * 1000):013d}-{secrets.token_hex(4)}",
            at=now,
            who=who,
            action=action,
            target=target,
            outcome=redact_value(outcome),
            detail=redact_value(detail),
            expire_at=datetime.fromtimestamp(now + AUDIT_TTL, UTC),
        )
        try:
            self.store.put_audit(entry)
        except StoreError as exc:
            log.error(
                "console audit entry not written",
                extra={
                    "who": who,
                    "action": action,
                    "target": target,
                    "outcome": outcome,
                    "error": str(exc),
                },
            )
        log.info(
            "console action",
            extra={"who": who, "action": action, "target": target, "outcome": entry.outcome},
        )
        return entry

    def recent(self, limit: int = RECENT) -> list[AuditEntry]:
        return self.store.recent_audit(limit)
