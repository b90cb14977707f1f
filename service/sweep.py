"""The refresh sweep behind POST /tasks/refresh: keep every credential fresh.

Cloud Scheduler calls it every few minutes (``make dev`` does the same on a timer). For each
component: the ticket watchdog, the component token, then every authorizer token that
expires within the margin, renewed by a bounded pool of threads. Two sweeps at once are
safe: each credential has one refresher (a lease), the other sweep counts it skipped.

Jitter: each authorizer is due within the margin plus a random part of ``jitter``, so
tokens renewed together drift apart over the following sweeps instead of expiring, and
being renewed, in one burst forever.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import Any

from service.authorizer_tokens import AuthorizerTokenManager, Outcome
from service.component_token import ComponentTokenManager, TokenUnavailableError
from service.component_token import Outcome as ComponentOutcome
from service.log_events import AUTHORIZER_REFRESH_FAILED, SWEEP_DONE
from service.release_sends import ReleaseSends
from service.store.records import AuthorizationStore, AuthorizerRecord, StoreError
from service.sweep_shards import ShardPublisher, finish_if_done
from service.tickets import TicketKeeper

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepPolicy:
    margin: float = 900.0  # renew authorizer tokens expiring within this
    jitter: float = 300.0
    concurrency: int = 16
    progress_every: float = 5.0  # seconds between progress log lines


# Which count an authorizer's outcome adds to.
_REPORTED = {
    Outcome.RENEWED: "renewed",
    Outcome.SKIPPED: "skipped",
    Outcome.FAILED: "failed",
    Outcome.NEEDS_REAUTHORIZATION: "needs_reauthorization",
    Outcome.REVOKED: "revoked",
    Outcome.QUOTA_EXCEEDED: "quota_exceeded",
}


@dataclass
class SweepReport:
    """Counts over component and authorizer tokens, and the detail per component."""

    renewed: int = 0
    skipped: int = 0
    failed: int = 0
    needs_reauthorization: int = 0
    revoked: int = 0
    quota_exceeded: int = 0
    seconds: float = 0.0
    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    # SWEEP_MODE=fanout: the sweep's id and the shards published (their outcomes come
    # later, in sweeps/<id>: GET /healthz shows them).
    sweep_id: str | None = None
    shards: int | None = None

    def count(self, outcome: Outcome, n: int = 1) -> None:
        name = _REPORTED[outcome]
        setattr(self, name, getattr(self, name) + n)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RefreshSweep:
    def __init__(
        self,
        store: AuthorizationStore,
        tickets: TicketKeeper,
        component_tokens: ComponentTokenManager,
        authorizer_tokens: AuthorizerTokenManager,
        policy: SweepPolicy = SweepPolicy(),
        release_sends: ReleaseSends | None = None,
        clock: Callable[[], float] = time.time,
        fanout: ShardPublisher | None = None,
    ) -> None:
        self.store = store
        self.tickets = tickets
        self.component_tokens = component_tokens
        self.authorizer_tokens = authorizer_tokens
        self.policy = policy
        self.release_sends = release_sends
        self.clock = clock
        self.fanout = fanout

    def run(self, appids: Iterable[str]) -> SweepReport:
        started = time.monotonic()
        report = SweepReport()
        if self.fanout is not None:
            try:
                report.sweep_id = self.fanout.begin()
            except StoreError as exc:
                report.failed += 1
                log.error("refresh sweep: cannot start", extra={"error": str(exc)})
                return report
            report.shards = 0
        for appid in appids:
            detail: dict[str, Any] = {"ticket_push_requested": False}
            report.components[appid] = detail
            if self._component(appid, report, detail):
                if self.fanout is None:
                    detail["authorizers"] = self._authorizers(appid, report)
                else:
                    detail["authorizers"] = self._publish(appid, report)
            if self.release_sends is not None:
                detail["release_sends"] = self._release_sends(appid)
        report.seconds = round(time.monotonic() - started, 3)
        if self.fanout is not None:
            self._published(report)
            return report
        log.info(
            "refresh sweep done",
            extra={
                "event": SWEEP_DONE,
                "renewed": report.renewed,
                "skipped": report.skipped,
                "failed": report.failed,
                "needs_reauthorization": report.needs_reauthorization,
                "quota_exceeded": report.quota_exceeded,
                "seconds": report.seconds,
            },
        )
        return report

    def _publish(self, component_appid: str, report: SweepReport) -> dict[str, int]:
        """Fanout: the due authorizers in shards to the topic (service.sweep_shards)."""
        assert self.fanout is not None and report.sweep_id is not None
        policy = self.policy
        before = self.clock() + policy.margin + policy.jitter
        published = self.fanout.publish(report.sweep_id, component_appid, before, policy.margin)
        report.shards = (report.shards or 0) + published["shards"]
        if published["unpublished"] or published.get("failed"):
            report.failed += 1  # 503: Cloud Scheduler tries again
        return published

    def _published(self, report: SweepReport) -> None:
        """Fanout: publishing is over; the sweep is done once every shard is."""
        assert self.fanout is not None and report.sweep_id is not None
        unpublished = sum(
            d.get("authorizers", {}).get("unpublished", 0) for d in report.components.values()
        )
        try:
            self.fanout.progress.published(
                report.sweep_id,
                report.shards or 0,
                Counter(unpublished=unpublished),
            )
            finish_if_done(self.fanout.progress, report.sweep_id)
        except StoreError as exc:
            report.failed += 1
            log.error(
                "refresh sweep: progress not written",
                extra={"sweep_id": report.sweep_id, "error": str(exc)},
            )
        log.info(
            "refresh sweep published",
            extra={
                "sweep_id": report.sweep_id,
                "shards": report.shards,
                "unpublished": unpublished,
                "component_failed": report.failed,
                "seconds": report.seconds,
            },
        )

    def _component(self, appid: str, report: SweepReport, detail: dict[str, Any]) -> bool:
        """The ticket watchdog and the component token; False if the token is unavailable."""
        try:
            detail["ticket_push_requested"] = self.tickets.check(appid)
            _, outcome = self.component_tokens.obtain(appid)
        except (TokenUnavailableError, StoreError) as exc:
            report.failed += 1
            detail.update(component_token="failed", error=str(exc))
            log.error(
                "refresh sweep: component token failed",
                extra={"component_appid": appid, "error": str(exc)},
            )
            return False
        if outcome is ComponentOutcome.RENEWED:
            report.renewed += 1
        else:
            report.skipped += 1
        detail["component_token"] = outcome.value
        return True

    def _release_sends(self, appid: str) -> dict[str, int]:
        """The release check's customer-service texts a stopped process left behind."""
        assert self.release_sends is not None
        try:
            return self.release_sends.recover(appid)
        except StoreError as exc:
            log.error(
                "refresh sweep: cannot recover release sends",
                extra={"component_appid": appid, "error": str(exc)},
            )
            return {"error": 1}

    def _authorizers(self, component_appid: str, report: SweepReport) -> dict[str, int]:
        now = self.clock()
        policy = self.policy
        try:
            due = self.store.due_authorizers(component_appid, now + policy.margin + policy.jitter)
            component = self.store.get_component(component_appid)  # once per sweep
            paused = component.authorizer_token_paused_until(now)
        except StoreError as exc:
            report.failed += 1
            log.error(
                "refresh sweep: cannot list authorizers",
                extra={
                    "event": AUTHORIZER_REFRESH_FAILED,
                    "component_appid": component_appid,
                    "error": str(exc),
                },
            )
            return {"due": 0, "failed": 1}
        counts: Counter[str] = Counter(due=len(due))
        if paused is not None:
            # 45009: no api_authorizer_token call before the pause ends.
            counts[Outcome.QUOTA_EXCEEDED.value] = len(due)
            report.count(Outcome.QUOTA_EXCEEDED, len(due))
            return dict(counts)
        quota_hit = threading.Event()

        def refresh(record: AuthorizerRecord) -> Outcome:
            due_before = now + policy.margin + random.uniform(0, policy.jitter)
            return self.authorizer_tokens.sweep_one(record, due_before, component, quota_hit)

        self._run_pool(component_appid, due, refresh, counts)
        for name, n in counts.items():
            if name != "due":
                report.count(Outcome(name), n)
        return dict(counts)

    def _run_pool(
        self,
        component_appid: str,
        due: list[AuthorizerRecord],
        refresh: Callable[[AuthorizerRecord], Outcome],
        counts: Counter[str],
    ) -> None:
        if not due:
            return
        workers = max(1, min(self.policy.concurrency, len(due)))
        last_report = time.monotonic()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sweep") as pool:
            futures = [pool.submit(refresh, record) for record in due]
            for done, future in enumerate(as_completed(futures), start=1):
                counts[future.result().value] += 1
                if time.monotonic() - last_report >= self.policy.progress_every:
                    last_report = time.monotonic()
                    log.info(
                        "refresh sweep progress",
                        extra={
                            "component_appid": component_appid,
                            "done": done,
                            "due": len(due),
                            "renewed": counts[Outcome.RENEWED.value],
                        },
                    )
