"""The fanned-out refresh sweep (SWEEP_MODE=fanout): shards through Pub/Sub, any instance.

POST /tasks/refresh still runs each component's ticket watchdog and component token, then
pages through the due authorizers (``due_pages``: 1,000 a query, never an unbounded read)
and publishes them in shards of SWEEP_SHARD_SIZE appids to SWEEP_SHARD_TOPIC. The topic's
push subscription delivers each shard to POST /tasks/refresh-shard on whichever instance
Cloud Run picks (``ShardRunner``), which renews it through the same per-authorizer lease
as the inline sweep. A shard reads its authorizers in one BatchGetDocuments call and the
component record once; each lease is then taken on the condition that nobody wrote the
record since that read. Per renewal: 2 reads (the sweep's query and the shard's batch)
and 2 writes (the lease and the result).

- Twice delivered: harmless. A renewed authorizer is not due any more (``refresh_due``
  skips it without a write), one being renewed elsewhere is leased, and a finished shard's
  marker (``sweeps/<id>/shards/<n>``) keeps its counts from being added twice.
- Instance died: Pub/Sub redelivers the unanswered shard. An authorizer whose lease the
  dead instance still holds is "held": the shard answers 503 until the lease expires
  (REFRESH_LEASE_SECONDS) or SWEEP_SHARD_DEADLINE passes; then the next sweep has it.
- 45009: the component record's pause is read once per shard; a paused component's
  shards are acknowledged without a call (quota_exceeded), as is the rest of a shard
  that hits 45009 itself.
- Concurrency: one pool of SWEEP_CONCURRENCY threads per process, shared by every shard
  it is handling at once; across the fleet, the instances and their request concurrency.
- Progress: ``sweeps/<id>`` (shards published, done, counts by outcome), one commit per
  finished shard (its marker and the increments, atomically). The sweep is done when every
  published shard is; whoever sees that first (a shard or /tasks/refresh) claims it with a
  compare-and-set on the document and logs ``refresh_sweep_done``, once per sweep.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from service.authorizer_tokens import AuthorizerTokenManager, Outcome
from service.log_events import AUTHORIZER_REFRESH_FAILED, SWEEP_DONE
from service.publisher import Publisher, PublishError
from service.store.firestore import AUTHORIZERS, COMPONENTS, FirestoreStore
from service.store.records import AuthorizerStatus, ComponentRecord, StoreError

log = logging.getLogger(__name__)

SWEEPS = "sweeps"
SHARDS = "shards"
DUE_PAGE = 1000  # authorizers per due query
SWEEP_TTL = timedelta(days=7)  # sweeps/<id> and its markers: Firestore TTL on expire_at
# The counts a sweep keeps, by outcome; "held": leased elsewhere and still due.
COUNTS = (*(o.value for o in Outcome), "held")
SHARD_MESSAGE_VERSION = 1


class ShardError(ValueError):
    """A push body that is not a shard of ours (answered 400: redelivering cannot help)."""


@dataclass(frozen=True)
class Shard:
    sweep_id: str
    component: str
    index: int
    appids: tuple[str, ...]
    due_margin: float  # renew what expires within this (plus up to the jitter) of delivery
    deadline: float  # epoch seconds: past it, acknowledge and leave the rest to the next sweep

    @property
    def key(self) -> str:
        """Its marker's name under ``sweeps/<id>/shards``: unique within the sweep."""
        return f"{self.component}-{self.index}"

    def encode(self) -> bytes:
        body = {
            "v": SHARD_MESSAGE_VERSION,
            "sweep_id": self.sweep_id,
            "component": self.component,
            "index": self.index,
            "appids": list(self.appids),
            "due_margin": self.due_margin,
            "deadline": self.deadline,
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_push(cls, body: Any) -> Shard:
        """From Pub/Sub's push body: ``{"message": {"data": <base64>, ...}, ...}``."""
        try:
            data = json.loads(base64.b64decode(body["message"]["data"], validate=True))
            shard = cls(
                sweep_id=str(data["sweep_id"]),
                component=str(data["component"]),
                index=int(data["index"]),
                appids=tuple(str(a) for a in data["appids"]),
                due_margin=float(data["due_margin"]),
                deadline=float(data["deadline"]),
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ShardError(f"not a refresh shard ({type(exc).__name__})") from None
        return shard


def new_sweep_id(now: float) -> str:
    """Sorts by time: ``20261202T021238Z-1a2b3c``."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)


def due_pages(
    store: FirestoreStore, component: str, before: float, page: int = DUE_PAGE
) -> Iterator[list[str]]:
    """The appids of authorized authorizers expiring before ``before``, a page a query.

    The inline sweep's query (the same composite index), cut into pages with a cursor on
    the last document, and only the field the order needs read back.
    """
    base = (
        store.client.collection(COMPONENTS)
        .document(component)
        .collection(AUTHORIZERS)
        .where(filter=FieldFilter("status", "==", AuthorizerStatus.AUTHORIZED.value))
        .where(filter=FieldFilter("access_token_expires_at", "<", before))
        .order_by("access_token_expires_at")
        .select(["access_token_expires_at"])
    )
    last: Any = None
    while True:
        query = base.limit(page) if last is None else base.start_after(last).limit(page)
        try:
            snapshots = list(query.stream())
        except gexc.GoogleAPICallError as exc:
            raise StoreError(f"Firestore query failed: {type(exc).__name__}") from None
        store.ops.add(reads=max(1, len(snapshots)))
        if snapshots:
            yield [s.id for s in snapshots]
        if len(snapshots) < page:
            return
        last = snapshots[-1]


@dataclass
class SweepState:
    sweep_id: str
    started_at: float | None = None
    published: bool = False
    shards_published: int = 0
    shards_done: int = 0
    done_at: float | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def shards_pending(self) -> int:
        return max(0, self.shards_published - self.shards_done)

    def to_json(self) -> dict[str, Any]:
        return {
            "sweep_id": self.sweep_id,
            "started_at": self.started_at,
            "published": self.published,
            "shards_published": self.shards_published,
            "shards_done": self.shards_done,
            "shards_pending": self.shards_pending if self.published else None,
            "done": self.done_at is not None,
            "done_at": self.done_at,
            "counts": self.counts,
        }

    @classmethod
    def from_document(cls, sweep_id: str, data: dict[str, Any]) -> SweepState:
        return cls(
            sweep_id=sweep_id,
            started_at=data.get("started_at"),
            published=bool(data.get("published")),
            shards_published=int(data.get("shards_published") or 0),
            shards_done=int(data.get("shards_done") or 0),
            done_at=data.get("done_at"),
            counts={k: int(v) for k, v in (data.get("counts") or {}).items() if v},
        )


class SweepProgress:
    """``sweeps/<id>``: what a fanned-out sweep published and what its shards did."""

    def __init__(self, store: FirestoreStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def _ref(self, sweep_id: str) -> Any:
        return self.store.client.collection(SWEEPS).document(sweep_id)

    def begin(self, sweep_id: str) -> None:
        now = self.clock()
        self._write(
            lambda: self._ref(sweep_id).set(
                {
                    "started_at": now,
                    "published": False,
                    "shards_published": 0,
                    "shards_done": 0,
                    "counts": {},
                    "expire_at": datetime.fromtimestamp(now, UTC) + SWEEP_TTL,
                }
            )
        )

    def published(self, sweep_id: str, shards: int, counts: Counter[str]) -> None:
        """Publishing is over: ``shards`` were published (and ``counts`` already decided)."""
        changes = {"published": True, "shards_published": shards, **_increments(counts)}
        self._write(lambda: self._ref(sweep_id).update(changes))

    def shard_done(self, shard: Shard, counts: Counter[str]) -> bool:
        """The shard's counts, once: False if it was recorded before (a redelivery)."""
        batch = self.store.client.batch()
        batch.create(self._marker(shard), {"at": self.clock(), "expire_at": self._expiry()})
        changes = {"shards_done": firestore.Increment(1), **_increments(counts)}
        batch.update(self._ref(shard.sweep_id), changes)
        try:
            self._write(batch.commit)
        except _AlreadyRecorded:
            return False
        return True

    def recorded(self, shard: Shard) -> bool:
        """Whether the shard was finished before (one read): a redelivery to acknowledge."""
        return bool(self._read(self._marker(shard).get).exists)

    def get(self, sweep_id: str) -> SweepState | None:
        snapshot = self._read(lambda: self._ref(sweep_id).get())
        if not snapshot.exists:
            return None
        return SweepState.from_document(sweep_id, snapshot.to_dict() or {})

    def latest(self) -> SweepState | None:
        query = (
            self.store.client.collection(SWEEPS)
            .order_by("started_at", direction=firestore.Query.DESCENDING)
            .limit(1)
        )
        found = self._read(lambda: list(query.stream()))
        if not found:
            return None
        return SweepState.from_document(found[0].id, found[0].to_dict() or {})

    def claim_done(self, sweep_id: str) -> SweepState | None:
        """The finished sweep's state if this call is the one that marks it done, else None."""
        for _ in range(10):
            snapshot = self._read(lambda: self._ref(sweep_id).get())
            if not snapshot.exists:
                return None
            state = SweepState.from_document(sweep_id, snapshot.to_dict() or {})
            if state.done_at is not None or not state.published or state.shards_pending:
                return None
            state.done_at = self.clock()
            option = self.store.client.write_option(last_update_time=snapshot.update_time)
            try:
                ref, change = self._ref(sweep_id), {"done_at": state.done_at}
                self._write(partial(ref.update, change, option))
            except _AlreadyRecorded:
                continue  # someone wrote meanwhile: look again
            return state
        return None

    def _marker(self, shard: Shard) -> Any:
        """``sweeps/<id>/shards/<key>``: written when the shard is finished."""
        return self._ref(shard.sweep_id).collection(SHARDS).document(shard.key)

    def _expiry(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC) + SWEEP_TTL

    def _read(self, call: Callable[[], Any]) -> Any:
        try:
            found = call()
        except gexc.GoogleAPICallError as exc:
            raise StoreError(f"Firestore read of the sweep failed: {type(exc).__name__}") from None
        self.store.ops.add(reads=len(found) if isinstance(found, list) else 1)
        return found

    def _write(self, call: Callable[[], Any]) -> None:
        try:
            call()
        except (gexc.AlreadyExists, gexc.FailedPrecondition, gexc.Conflict):
            raise _AlreadyRecorded() from None
        except gexc.GoogleAPICallError as exc:
            raise StoreError(f"Firestore write of the sweep failed: {type(exc).__name__}") from None
        self.store.ops.add(writes=1)


class _AlreadyRecorded(Exception):
    pass


def _increments(counts: Counter[str]) -> dict[str, Any]:
    """The sweep document's ``counts.<outcome>`` fields, each raised by its count."""
    return {f"counts.{k}": firestore.Increment(n) for k, n in counts.items() if n}


def log_done(state: SweepState) -> None:
    """``refresh_sweep_done`` (the alert ``sweep-done`` counts it): once per sweep."""
    counts = state.counts
    log.info(
        "refresh sweep done",
        extra={
            "event": SWEEP_DONE,
            "sweep_id": state.sweep_id,
            "mode": "fanout",
            "shards": state.shards_published,
            "renewed": counts.get(Outcome.RENEWED.value, 0),
            "skipped": counts.get(Outcome.SKIPPED.value, 0),
            "failed": counts.get(Outcome.FAILED.value, 0),
            "held": counts.get("held", 0),
            "needs_reauthorization": counts.get(Outcome.NEEDS_REAUTHORIZATION.value, 0),
            "quota_exceeded": counts.get(Outcome.QUOTA_EXCEEDED.value, 0),
            "seconds": round((state.done_at or 0.0) - (state.started_at or 0.0), 3),
        },
    )


def finish_if_done(progress: SweepProgress, sweep_id: str) -> None:
    state = progress.claim_done(sweep_id)
    if state is not None:
        log_done(state)


class ShardPublisher:
    """The publishing side, called by the sweep in /tasks/refresh for each component."""

    def __init__(
        self,
        store: FirestoreStore,
        progress: SweepProgress,
        publisher: Publisher,
        topic_path: str,
        shard_size: int,
        shard_deadline: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.progress = progress
        self.publisher = publisher
        self.topic_path = topic_path
        self.shard_size = shard_size
        self.shard_deadline = shard_deadline
        self.clock = clock

    def begin(self) -> str:
        sweep_id = new_sweep_id(self.clock())
        self.progress.begin(sweep_id)
        return sweep_id

    def publish(
        self, sweep_id: str, component: str, before: float, due_margin: float
    ) -> dict[str, int]:
        """Publish the component's due authorizers: ``{"due", "shards", "unpublished"}``,
        and ``"failed": 1`` if the due query failed on the way.

        A shard Pub/Sub did not take is counted unpublished: its authorizers are the next
        sweep's, and the sweep answers 503 so Cloud Scheduler tries again sooner.
        """
        result = Counter(due=0, shards=0, unpublished=0)
        deadline = self.clock() + self.shard_deadline
        index = 0
        try:
            for page in due_pages(self.store, component, before):
                result["due"] += len(page)
                for start in range(0, len(page), self.shard_size):
                    appids = tuple(page[start : start + self.shard_size])
                    shard = Shard(sweep_id, component, index, appids, due_margin, deadline)
                    try:
                        self.publisher.publish(
                            self.topic_path,
                            shard.encode(),
                            {"sweep_id": sweep_id, "component_appid": component},
                        )
                    except PublishError as exc:
                        result["unpublished"] += len(appids)
                        log.error(
                            "refresh sweep: shard not published",
                            extra={"sweep_id": sweep_id, "shard": index, "error": str(exc)},
                        )
                        continue
                    index += 1
                    result["shards"] += 1
        except StoreError as exc:
            result["failed"] = 1
            log.error(
                "refresh sweep: cannot list due authorizers",
                extra={"sweep_id": sweep_id, "component_appid": component, "error": str(exc)},
            )
        return dict(result)


@dataclass(frozen=True)
class ShardResult:
    counts: dict[str, int]
    retry: bool  # answer 503: Pub/Sub redelivers the shard
    recorded: bool  # this delivery's counts were added to the sweep


class ShardRunner:
    """Renews one delivered shard; every shard a process handles shares one thread pool."""

    def __init__(
        self,
        store: FirestoreStore,
        authorizer_tokens: AuthorizerTokenManager,
        progress: SweepProgress,
        concurrency: int,
        jitter: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.authorizer_tokens = authorizer_tokens
        self.progress = progress
        self.jitter = jitter
        self.clock = clock
        self._concurrency = concurrency
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._concurrency, thread_name_prefix="shard")
            return self._pool

    def run(self, shard: Shard) -> ShardResult:
        now = self.clock()
        counts: Counter[str] = Counter()
        if self.progress.recorded(shard):
            return ShardResult({}, retry=False, recorded=False)
        log.info(
            "refresh sweep shard started",
            extra={
                "sweep_id": shard.sweep_id,
                "shard": shard.index,
                "authorizers": len(shard.appids),
            },
        )
        component = self.store.get_component(shard.component)
        if component.authorizer_token_paused_until(now) is not None:
            # 45009: no api_authorizer_token call before the pause ends; the next sweep.
            counts[Outcome.QUOTA_EXCEEDED.value] = len(shard.appids)
        else:
            self._renew(shard, component, now, counts)
        expired = self.clock() >= shard.deadline
        retry = bool(counts[Outcome.FAILED.value] or counts["held"]) and not expired
        recorded = False
        if not retry:
            recorded = self.progress.shard_done(shard, counts)
            if recorded:
                finish_if_done(self.progress, shard.sweep_id)
        log.info(
            "refresh sweep shard",
            extra={
                "sweep_id": shard.sweep_id,
                "shard": shard.index,
                "component_appid": shard.component,
                "authorizers": len(shard.appids),
                "retry": retry,
                "recorded": recorded,
                **{k: n for k, n in counts.items() if n},
            },
        )
        return ShardResult(dict(counts), retry, recorded)

    def _renew(
        self, shard: Shard, component: ComponentRecord, now: float, counts: Counter[str]
    ) -> None:
        quota_hit = threading.Event()
        cutoffs = {a: now + shard.due_margin + random.uniform(0, self.jitter) for a in shard.appids}
        try:
            # One call for the shard; each lease is then taken on the condition that
            # nobody wrote the record since this read (no read of its own).
            stored = self.store.get_authorizers(shard.component, list(shard.appids))
        except StoreError as exc:
            log.error(
                "refresh sweep: shard not read",
                extra={"event": AUTHORIZER_REFRESH_FAILED, "error": str(exc)},
            )
            counts[Outcome.FAILED.value] += len(shard.appids)
            return

        def refresh(appid: str) -> str:
            seen = stored.get(appid)  # None: deleted since the sweep listed it
            outcome = self.authorizer_tokens.sweep_one(seen, cutoffs[appid], component, quota_hit)
            skipped = outcome is Outcome.SKIPPED and seen is not None
            if skipped and self._held(shard.component, appid, cutoffs[appid]):
                return "held"
            return outcome.value

        for outcome in self.pool.map(refresh, shard.appids):
            counts[outcome] += 1

    def _held(self, component: str, appid: str, cutoff: float) -> bool:
        """Skipped yet still due: another refresher holds its lease (perhaps a dead one)."""
        record = self.store.get_authorizer(component, appid)
        return (
            record is not None
            and record.status == AuthorizerStatus.AUTHORIZED
            and (record.access_token_expires_at or 0.0) < cutoff
        )
