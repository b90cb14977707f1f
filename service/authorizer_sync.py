"""POST /api/v1/components/<c>/sync: reconcile our authorizers with WeChat's list (§3.7).

``api_get_authorizer_list`` is walked to the end (500 a page) before anything is written,
so a failure half-way changes nothing. Then, for each authorizer:

- listed with a refresh token we lack or hold differently: WeChat's is stored, and a lost,
  revoked or refused authorizer is recovered (its token is due at the next sweep);
- listed with an empty refresh token (its authorization code was never exchanged): flagged,
  and marked ``needs_reauthorization`` unless it holds a refresh token of its own;
- held as authorized but not listed: flagged only. The next refresh asks WeChat, which
  answers 61003 if the authorization is really gone.

Sync never writes older data over newer: the records are read *before* the walk, and each
write is a compare-and-set that applies only if the record is still exactly as it was then.
A re-authorization, a rotated refresh token or a revocation that lands during the walk is
newer than the list, so that record is left alone (counted ``unchanged``; the next sync
looks again). A refresh token taken from the list counts as asked when its page was read.
Those changes are ``service.authorizer_status``'s; this module walks the list and reports.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from service.authorizer_status import AuthorizerStatusKeeper, Reconciled
from service.component_token import ComponentTokenManager
from service.store.records import AuthorizationStore, AuthorizerRecord, AuthorizerStatus
from service.wechat.client import AuthorizerPage, ComponentClient, ListedAuthorizer

log = logging.getLogger(__name__)

PAGE_SIZE = 500  # the most api_get_authorizer_list gives at once


@dataclass
class SyncReport:
    listed: int = 0
    pages: int = 0
    unchanged: int = 0
    recovered: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)  # refresh token replaced by WeChat's
    unexchanged: list[str] = field(default_factory=list)
    not_listed: list[str] = field(default_factory=list)
    # WeChat's total changed during the walk: not_listed is not judged this time.
    incomplete: bool = False
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class AuthorizerSync:
    def __init__(
        self,
        store: AuthorizationStore,
        client: ComponentClient,
        component_tokens: ComponentTokenManager,
        fill_profile: Callable[[str, str], object] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.client = client
        self.component_tokens = component_tokens
        self.statuses = AuthorizerStatusKeeper(store)
        self.fill_profile = fill_profile
        self.clock = clock

    def run(self, component_appid: str) -> SyncReport:
        started = time.monotonic()
        report = SyncReport()
        # Before the walk: anything written after this is newer than what WeChat lists.
        held = {r.appid: r for r in self.store.list_authorizers(component_appid)}
        listed = self._walk(component_appid, report)
        for entry, asked_at in listed.values():
            self._reconcile(component_appid, entry, asked_at, held.get(entry.appid), report)
        if not report.incomplete:
            for appid, record in held.items():
                if record.status == AuthorizerStatus.AUTHORIZED and appid not in listed:
                    self._flag_not_listed(record, report)
        if self.fill_profile is not None:
            for appid in report.recovered:
                self.fill_profile(component_appid, appid)
        report.seconds = round(time.monotonic() - started, 3)
        log.info(
            "authorizer sync done",
            extra={
                "component_appid": component_appid,
                "listed": report.listed,
                "recovered": len(report.recovered),
                "updated": len(report.updated),
                "unexchanged": len(report.unexchanged),
                "not_listed": len(report.not_listed),
                "incomplete": report.incomplete,
            },
        )
        return report

    def _walk(
        self, component_appid: str, report: SyncReport
    ) -> dict[str, tuple[ListedAuthorizer, float]]:
        """Every listed authorizer, with when its page was asked for."""
        listed: dict[str, tuple[ListedAuthorizer, float]] = {}
        first_total: int | None = None
        offset = 0
        while True:
            asked_at = self.clock()
            page = self._page(component_appid, offset)
            report.pages += 1
            first_total = page.total_count if first_total is None else first_total
            if page.total_count != first_total:
                report.incomplete = True
            for entry in page.authorizers:
                listed[entry.appid] = (entry, asked_at)
            offset += len(page.authorizers)
            log.info(
                "authorizer sync: page read",
                extra={
                    "component_appid": component_appid,
                    "read": offset,
                    "total_count": page.total_count,
                },
            )
            if not page.authorizers or offset >= page.total_count:
                break
        report.listed = len(listed)
        if len(listed) < (first_total or 0):
            report.incomplete = True
        return listed

    def _page(self, component_appid: str, offset: int) -> AuthorizerPage:
        return self.component_tokens.call_with_token(
            component_appid,
            lambda token: self.client.api_get_authorizer_list(
                component_appid, offset, PAGE_SIZE, token
            ),
        )

    def _reconcile(
        self,
        component_appid: str,
        entry: ListedAuthorizer,
        asked_at: float,
        seen: AuthorizerRecord | None,
        report: SyncReport,
    ) -> None:
        now = self.clock()
        kind = self.statuses.reconcile_listed(component_appid, entry, asked_at, seen, now)
        if kind in (Reconciled.UNCHANGED, Reconciled.RACED):
            report.unchanged += 1
        else:
            getattr(report, kind.value).append(entry.appid)

    def _flag_not_listed(self, seen: AuthorizerRecord, report: SyncReport) -> None:
        self.statuses.flag_not_listed(seen)
        report.not_listed.append(seen.appid)
        log.warning(
            "authorizer held but not listed by WeChat",
            extra={"component_appid": seen.component_appid, "authorizer_appid": seen.appid},
        )
