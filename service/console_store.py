"""The console's own documents in Firestore, and the reads its pages need beyond the store's.

Layout (every collection but ``console_state`` has a TTL on ``expire_at``):

- ``components/<c>/push_log/<key>``: one events-URL push each (``PushLogEvent``), 30 days;
- ``push_log_batches/<process>-<n>``: one process's ordinary messages of up to a minute
  (``PushLogBatch``), 3 days;
- ``console_audit/<id>``: one operator action each (``AuditEntry``), 400 days;
- ``console_quota_resets/<appid>-<yyyymm>``: clear_quota calls counted per account and
  Beijing month (``QuotaResets``), 62 days;
- ``console_state/sweep``: the last refresh sweep's report, overwritten by each sweep.

Every read is bounded (a limit on each query) and counted in the store's ``OpCounter``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from service.store.firestore import AUTHORIZERS, COMPONENTS, FirestoreStore
from service.store.records import AuthorizationStore, AuthorizerRecord, Record, StoreError

PUSH_LOG = "push_log"
PUSH_LOG_BATCHES = "push_log_batches"
CONSOLE_AUDIT = "console_audit"
QUOTA_RESETS = "console_quota_resets"
CONSOLE_STATE = "console_state"
SWEEP_DOCUMENT = "sweep"
# The collection groups Firestore's TTL policies empty (infra/firestore.py lists them).
TTL_COLLECTIONS = (PUSH_LOG, PUSH_LOG_BATCHES, CONSOLE_AUDIT, QUOTA_RESETS)
# The end of a prefix range: sorts after every character a name or an appid holds.
PREFIX_END = "\uf8ff"


@dataclass(frozen=True)
class PushLogEvent(Record):
    """One push to the 授权事件接收URL and what the gateway did with it."""

    component_appid: str
    key: str  # a hash of the decrypted push: WeChat's retries of it share it
    info_type: str
    received_at: float
    xml: str  # decrypted, credentials masked (service.redaction)
    outcome: str
    authorizer_appid: str | None = None
    create_time: int | None = None
    route: str | None = None  # the MESSAGE_ROUTES route it matched, if any
    truncated: bool = False
    expire_at: datetime | None = None  # Firestore TTL


@dataclass(frozen=True)
class PushLogBatch(Record):
    """One process's ordinary messages, written at once (at most one a flush interval)."""

    key: str  # <process>-<n>
    process: str
    flushed_at: float
    first_at: float
    last_at: float
    entries: tuple[dict[str, Any], ...] = ()
    dropped: int = 0  # messages past the buffer's bound since the last flush: not kept
    expire_at: datetime | None = None  # Firestore TTL


@dataclass(frozen=True)
class AuditEntry(Record):
    """One operator action: who, what, on which, when, and how it ended."""

    key: str
    at: float
    who: str
    action: str
    target: str
    outcome: str  # "ok", or what went wrong
    detail: dict[str, Any] = field(default_factory=dict)
    expire_at: datetime | None = None  # Firestore TTL


@dataclass(frozen=True)
class QuotaResets(Record):
    key: str  # <appid>-<yyyymm>
    appid: str
    month: str  # yyyymm, Beijing time
    count: int = 0
    exhausted: bool = False  # WeChat answered 48006 this month
    expire_at: datetime | None = None  # Firestore TTL


class ConsoleStore:
    """The console's reads and writes on the store's own Firestore client."""

    def __init__(self, store: AuthorizationStore) -> None:
        if not isinstance(store, FirestoreStore):
            raise TypeError("the console needs the Firestore store")
        self.store = store

    @property
    def _client(self) -> Any:
        return self.store.client

    def _component(self, appid: str) -> Any:
        return self._client.collection(COMPONENTS).document(appid)

    def _set(self, ref: Any, document: Mapping[str, Any]) -> None:
        self.store.ops.add(writes=1)
        try:
            ref.set(dict(document))
        except gexc.GoogleAPICallError as exc:
            raise StoreError(f"Firestore write failed: {type(exc).__name__}") from None

    def _get(self, ref: Any) -> dict[str, Any] | None:
        self.store.ops.add(reads=1)
        try:
            snapshot = ref.get()
        except gexc.GoogleAPICallError as exc:
            raise StoreError(f"Firestore read failed: {type(exc).__name__}") from None
        return (snapshot.to_dict() or {}) if snapshot.exists else None

    def _stream(self, query: Any) -> list[Any]:
        try:
            snapshots = list(query.stream())
        except gexc.GoogleAPICallError as exc:
            raise StoreError(f"Firestore query failed: {type(exc).__name__}") from None
        self.store.ops.add(reads=max(1, len(snapshots)))
        return snapshots

    # ----- the push log ---------------------------------------------------------------

    def put_event(self, event: PushLogEvent) -> None:
        ref = self._component(event.component_appid).collection(PUSH_LOG).document(event.key)
        self._set(ref, event.to_document())

    def get_event(self, component_appid: str, key: str) -> PushLogEvent | None:
        ref = self._component(component_appid).collection(PUSH_LOG).document(key)
        data = self._get(ref)
        if data is None:
            return None
        return PushLogEvent.from_document(data, component_appid=component_appid, key=key)

    def recent_events(self, component_appid: str, since: float, limit: int) -> list[PushLogEvent]:
        query = (
            self._component(component_appid)
            .collection(PUSH_LOG)
            .where(filter=FieldFilter("received_at", ">=", since))
            .order_by("received_at", direction=firestore.Query.DESCENDING)
            .limit(limit)
        )
        return [
            PushLogEvent.from_document(s.to_dict() or {}, component_appid=component_appid, key=s.id)
            for s in self._stream(query)
        ]

    def put_batch(self, batch: PushLogBatch) -> None:
        self._set(
            self._client.collection(PUSH_LOG_BATCHES).document(batch.key), batch.to_document()
        )

    def get_batch(self, key: str) -> PushLogBatch | None:
        data = self._get(self._client.collection(PUSH_LOG_BATCHES).document(key))
        return None if data is None else PushLogBatch.from_document(data, key=key)

    def recent_batches(self, since: float, limit: int) -> list[PushLogBatch]:
        query = (
            self._client.collection(PUSH_LOG_BATCHES)
            .where(filter=FieldFilter("last_at", ">=", since))
            .order_by("last_at", direction=firestore.Query.DESCENDING)
            .limit(limit)
        )
        return [
            PushLogBatch.from_document(s.to_dict() or {}, key=s.id) for s in self._stream(query)
        ]

    # ----- the audit log --------------------------------------------------------------

    def put_audit(self, entry: AuditEntry) -> None:
        self._set(self._client.collection(CONSOLE_AUDIT).document(entry.key), entry.to_document())

    def recent_audit(self, limit: int) -> list[AuditEntry]:
        query = (
            self._client.collection(CONSOLE_AUDIT)
            .order_by("at", direction=firestore.Query.DESCENDING)
            .limit(limit)
        )
        return [AuditEntry.from_document(s.to_dict() or {}, key=s.id) for s in self._stream(query)]

    # ----- quota resets ---------------------------------------------------------------

    def quota_resets(self, appid: str, month: str) -> QuotaResets:
        key = f"{appid}-{month}"
        data = self._get(self._client.collection(QUOTA_RESETS).document(key))
        if data is None:
            return QuotaResets(key=key, appid=appid, month=month)
        return QuotaResets.from_document(data, key=key)

    def count_quota_reset(self, resets: QuotaResets, exhausted: bool) -> None:
        """One more reset (or WeChat's 48006): an increment, so two at once both count."""
        ref = self._client.collection(QUOTA_RESETS).document(resets.key)
        update: dict[str, Any] = {
            "appid": resets.appid,
            "month": resets.month,
            "expire_at": resets.expire_at,
        }
        if exhausted:
            update["exhausted"] = True
        else:
            update["count"] = firestore.Increment(1)
        self.store.ops.add(writes=1)
        try:
            ref.set(update, merge=True)
        except gexc.GoogleAPICallError as exc:
            raise StoreError(f"Firestore write failed: {type(exc).__name__}") from None

    # ----- the last sweep -------------------------------------------------------------

    def put_sweep(self, at: float, report: Mapping[str, Any]) -> None:
        ref = self._client.collection(CONSOLE_STATE).document(SWEEP_DOCUMENT)
        self._set(ref, {"at": at, "report": dict(report)})

    def last_sweep(self) -> dict[str, Any] | None:
        return self._get(self._client.collection(CONSOLE_STATE).document(SWEEP_DOCUMENT))

    # ----- authorizers ----------------------------------------------------------------

    def _authorizers(self, component_appid: str, status: str | None, kind: str | None) -> Any:
        query = self._component(component_appid).collection(AUTHORIZERS)
        if status:
            query = query.where(filter=FieldFilter("status", "==", status))
        if kind:
            query = query.where(filter=FieldFilter("account_type", "==", kind))
        return query

    def authorizers_named(
        self,
        component_appid: str,
        prefix: str,
        status: str | None,
        kind: str | None,
        limit: int,
    ) -> list[AuthorizerRecord]:
        """Authorizers whose nick_name starts with ``prefix``, by name: one range query on
        an index (nick_name, or the composite ones with status and account type)."""
        query = (
            self._authorizers(component_appid, status, kind)
            .where(filter=FieldFilter("nick_name", ">=", prefix))
            .where(filter=FieldFilter("nick_name", "<", prefix + PREFIX_END))
            .order_by("nick_name")
            .limit(limit)
        )
        return [
            AuthorizerRecord.from_document(
                s.to_dict() or {}, component_appid=component_appid, appid=s.id
            )
            for s in self._stream(query)
        ]

    def count_authorizers(self, component_appid: str, status: str | None = None) -> int:
        """A count aggregation: Firestore bills one read per 1,000 entries counted."""
        query = self._authorizers(component_appid, status, None)
        try:
            results = query.count().get()
        except gexc.GoogleAPICallError as exc:
            raise StoreError(f"Firestore count failed: {type(exc).__name__}") from None
        count = int(results[0][0].value)
        self.store.ops.add(reads=max(1, -(-count // 1000)))
        return count

    def recent_errors(
        self, component_appid: str, since: float, limit: int
    ) -> list[AuthorizerRecord]:
        query = (
            self._component(component_appid)
            .collection(AUTHORIZERS)
            .where(filter=FieldFilter("last_error_at", ">=", since))
            .order_by("last_error_at", direction=firestore.Query.DESCENDING)
            .limit(limit)
        )
        return [
            AuthorizerRecord.from_document(
                s.to_dict() or {}, component_appid=component_appid, appid=s.id
            )
            for s in self._stream(query)
        ]
