"""The store on Cloud Firestore (or its emulator, through ``FIRESTORE_EMULATOR_HOST``).

Writes are optimistic compare-and-set on the document's update time: cheap when nobody
else writes, and no transaction locks (which stall for seconds under contention).

Layout: ``components/<c>`` with the subcollections ``authorizers/<appid>``,
``authorization_codes/<hash>``, ``inbox/<hash>`` and ``release_sends/<hash>``.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from service.store.records import (
    OPEN_RELEASE_SEND_STATUSES,
    AuthorizerRecord,
    AuthorizerStatus,
    Change,
    CodeExchange,
    ComponentChange,
    ComponentRecord,
    ContentionError,
    InboxEntry,
    MaybeModified,
    Modified,
    Record,
    ReleaseSend,
    StoreError,
    TokenGlance,
)
from service.store.wire import DocumentWire, WireDocument

COMPONENTS = "components"
AUTHORIZERS = "authorizers"
AUTHORIZATION_CODES = "authorization_codes"
INBOX = "inbox"
RELEASE_SENDS = "release_sends"
# Someone else wrote first (or, on a write from a snapshot, the document is gone).
_LOST_RACE = (
    gexc.FailedPrecondition,
    gexc.AlreadyExists,
    gexc.Conflict,
    gexc.Aborted,
    gexc.NotFound,
)
R = TypeVar("R", bound=Record)
_TOKEN_FIELDS = ("status", "access_token", "access_token_expires_at")


class OpCounter:
    """Documents read and written, for the benchmarks and for logs (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reads = 0
        self.writes = 0

    def add(self, reads: int = 0, writes: int = 0) -> None:
        with self._lock:
            self.reads += reads
            self.writes += writes

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self.reads, self.writes


class FirestoreStore:
    def __init__(
        self,
        project: str | None = None,
        database: str = "(default)",
        max_attempts: int = 40,
    ) -> None:
        self.project = project
        self.database = database
        self.max_attempts = max_attempts
        self._client: Any = None
        self._wire: DocumentWire | None = None
        self._client_pid = 0
        self.ops = OpCounter()

    @property
    def client(self) -> Any:
        # gRPC channels do not survive fork: one client per process, made on first use.
        if self._client is None or self._client_pid != os.getpid():
            self._client = firestore.Client(project=self.project, database=self.database)
            self._wire = DocumentWire(self._client)
            self._client_pid = os.getpid()
        return self._client

    @property
    def wire(self) -> DocumentWire:
        """The hot paths' read and conditional update, on the client's channel."""
        self.client  # noqa: B018 (made with the client, in this process)
        assert self._wire is not None
        return self._wire

    def _read(
        self, path: str, deadline: float | None = None, fields: tuple[str, ...] | None = None
    ) -> WireDocument:
        """The document at ``path`` (relative: ``components/<c>``, ...)."""
        self.ops.add(reads=1)
        try:
            return self.wire.get(path, deadline, fields)
        except gexc.GoogleAPICallError as exc:
            raise StoreError(f"Firestore read failed: {type(exc).__name__}") from None

    def _update(self, path: str, changes: dict[str, Any], last_update_time: Any) -> Any:
        """Only ``changes``, if the document is still at ``last_update_time``; returns its
        new update time. Raises what ``_LOST_RACE`` names if someone wrote since."""
        return self.wire.update(path, changes, last_update_time)

    def _query(self, query: Any) -> list[Any]:
        try:
            snapshots = list(query.stream())
        except gexc.GoogleAPICallError as exc:
            raise StoreError(f"Firestore query failed: {type(exc).__name__}") from None
        self.ops.add(reads=max(1, len(snapshots)))  # an empty answer is billed as one read
        return snapshots

    def _component_ref(self, appid: str) -> Any:
        return self.client.collection(COMPONENTS).document(appid)

    def _child_ref(self, component_appid: str, collection: str, key: str) -> Any:
        return self._component_ref(component_appid).collection(collection).document(key)

    # ----- components ---------------------------------------------------------------

    def get_component(self, appid: str, deadline: float | None = None) -> ComponentRecord:
        snapshot = self._read(_path(COMPONENTS, appid), deadline)
        if not snapshot.exists:
            return ComponentRecord(appid=appid)
        return ComponentRecord.from_document(snapshot.to_dict() or {}, appid=appid)

    def modify_component(self, appid: str, change: ComponentChange) -> Modified[ComponentRecord]:
        empty = ComponentRecord(appid=appid)
        result = self._modify(
            _path(COMPONENTS, appid),
            lambda snapshot: ComponentRecord.from_document(snapshot.to_dict() or {}, appid=appid),
            lambda current: change(current or empty),
            f"component {appid}",
        )
        return Modified(result.record or empty, result.changed)

    # ----- authorizers --------------------------------------------------------------

    def get_authorizer(
        self, component_appid: str, appid: str, deadline: float | None = None
    ) -> AuthorizerRecord | None:
        snapshot = self._read(_path(COMPONENTS, component_appid, AUTHORIZERS, appid), deadline)
        if not snapshot.exists:
            return None
        return _authorizer(component_appid, appid, snapshot)

    def get_authorizer_token(self, component_appid: str, appid: str) -> TokenGlance | None:
        """Only the status, access token and its expiry: what a token request served
        from the store needs (three fields: not the whole record to send and decode).
        None if there is no such authorizer."""
        path = _path(COMPONENTS, component_appid, AUTHORIZERS, appid)
        found = self._read(path, fields=_TOKEN_FIELDS)
        if not found.exists:
            return None
        return TokenGlance(*(found.data.get(name) for name in _TOKEN_FIELDS))

    def get_authorizers(
        self, component_appid: str, appids: list[str]
    ) -> dict[str, AuthorizerRecord]:
        """The stored ``appids`` (those that exist), in one call: a shard's worth."""
        paths = {_path(COMPONENTS, component_appid, AUTHORIZERS, a): a for a in appids}
        self.ops.add(reads=len(paths))
        try:
            documents = self.wire.get_many(list(paths))
        except gexc.GoogleAPICallError as exc:
            raise StoreError(f"Firestore read failed: {type(exc).__name__}") from None
        return {
            paths[path]: _authorizer(component_appid, paths[path], document)
            for path, document in documents.items()
            if document.exists
        }

    def modify_authorizer(
        self,
        component_appid: str,
        appid: str,
        change: Change[AuthorizerRecord],
        seen: AuthorizerRecord | None = None,
    ) -> MaybeModified[AuthorizerRecord]:
        path = _path(COMPONENTS, component_appid, AUTHORIZERS, appid)
        if seen is not None and seen.version is not None:
            first = self._write_from(path, seen, change)
            if first is not None:
                return first
        result = self._modify(
            path,
            lambda snapshot: _authorizer(component_appid, appid, snapshot),
            change,
            f"authorizer {appid}",
        )
        if result.changed and result.version is not None and result.record is not None:
            return MaybeModified(result.record.but(version=result.version), True)
        return MaybeModified(result.record, result.changed)

    def _write_from(
        self, path: str, seen: AuthorizerRecord, change: Change[AuthorizerRecord]
    ) -> MaybeModified[AuthorizerRecord] | None:
        """``change`` applied to ``seen`` and written if the document is still ``seen``'s
        version, without a read; None if it is not (someone else wrote since)."""
        new = change(seen)
        if new is None or new == seen:
            return MaybeModified(seen, False)
        self.ops.add(writes=1)
        try:
            # The precondition says the document is ``seen``: only the differences go.
            version = self._update(path, new.changes_from(seen), seen.version)
        except _LOST_RACE:
            return None
        except gexc.GoogleAPICallError as exc:
            raise StoreError(f"Firestore write failed: {type(exc).__name__}") from None
        return MaybeModified(new.but(version=version), True)

    def list_authorizers(
        self,
        component_appid: str,
        status: str | None = None,
        account_type: str | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> list[AuthorizerRecord]:
        query = self._component_ref(component_appid).collection(AUTHORIZERS)
        if status is not None:
            query = query.where(filter=FieldFilter("status", "==", status))
        if account_type is not None:
            query = query.where(filter=FieldFilter("account_type", "==", account_type))
        query = query.order_by("appid")
        if after is not None:
            query = query.start_after({"appid": after})
        if limit is not None:
            query = query.limit(limit)
        return [_authorizer(component_appid, s.id, s) for s in self._query(query)]

    def due_authorizers(self, component_appid: str, before: float) -> list[AuthorizerRecord]:
        # The composite index (status, access_token_expires_at) serves this query.
        query = (
            self._component_ref(component_appid)
            .collection(AUTHORIZERS)
            .where(filter=FieldFilter("status", "==", AuthorizerStatus.AUTHORIZED.value))
            .where(filter=FieldFilter("access_token_expires_at", "<", before))
            .order_by("access_token_expires_at")
        )
        # Each record carries its snapshot's update time: the renewal's lease is taken
        # on the condition that nobody wrote it since this query (no read of its own).
        return [_authorizer(component_appid, s.id, s) for s in self._query(query)]

    # ----- authorization code exchanges ---------------------------------------------

    def modify_code_exchange(
        self, component_appid: str, key: str, change: Change[CodeExchange]
    ) -> MaybeModified[CodeExchange]:
        return self._modify(
            _path(COMPONENTS, component_appid, AUTHORIZATION_CODES, key),
            lambda snapshot: CodeExchange.from_document(
                snapshot.to_dict() or {}, component_appid=component_appid, key=key
            ),
            change,
            "authorization code exchange",
        ).plain()

    # ----- push inbox ---------------------------------------------------------------

    def get_inbox_entry(self, component_appid: str, key: str) -> InboxEntry | None:
        snapshot = self._read(_path(COMPONENTS, component_appid, INBOX, key))
        if not snapshot.exists:
            return None
        return InboxEntry.from_document(
            snapshot.to_dict() or {}, component_appid=component_appid, key=key
        )

    def put_inbox_entry(self, entry: InboxEntry) -> None:
        ref = self._child_ref(entry.component_appid, INBOX, entry.key)
        self.ops.add(writes=1)
        try:
            ref.set(entry.to_document())
        except gexc.GoogleAPICallError as exc:
            raise StoreError(f"Firestore write failed: {type(exc).__name__}") from None

    # ----- the release check's customer-service sends --------------------------------

    def create_release_send(self, send: ReleaseSend, deadline: float | None = None) -> bool:
        ref = self._child_ref(send.component_appid, RELEASE_SENDS, send.key)
        self.ops.add(writes=1)
        try:
            ref.create(send.to_document(), **_within(deadline))
        except gexc.AlreadyExists:
            return False
        except gexc.GoogleAPICallError as exc:
            raise StoreError(f"Firestore write failed: {type(exc).__name__}") from None
        except gexc.RetryError:
            raise StoreError(f"Firestore write took longer than {deadline} s") from None
        return True

    def modify_release_send(
        self, component_appid: str, key: str, change: Change[ReleaseSend]
    ) -> MaybeModified[ReleaseSend]:
        return self._modify(
            _path(COMPONENTS, component_appid, RELEASE_SENDS, key),
            lambda snapshot: ReleaseSend.from_document(
                snapshot.to_dict() or {}, component_appid=component_appid, key=key
            ),
            change,
            "release send",
        ).plain()

    def open_release_sends(self, component_appid: str) -> list[ReleaseSend]:
        query = (
            self._component_ref(component_appid)
            .collection(RELEASE_SENDS)
            .where(filter=FieldFilter("status", "in", list(OPEN_RELEASE_SEND_STATUSES)))
        )
        return [
            ReleaseSend.from_document(s.to_dict() or {}, component_appid=component_appid, key=s.id)
            for s in self._query(query)
        ]

    # ----- compare-and-set ----------------------------------------------------------

    def _modify(
        self,
        path: str,
        decode: Callable[[Any], R],
        change: Change[R],
        what: str,
    ) -> _Written[R]:
        for attempt in range(self.max_attempts):
            snapshot = self._read(path)
            current = decode(snapshot) if snapshot.exists else None
            new = change(current)
            if new is None or new == current:
                return _Written(current, False)
            self.ops.add(writes=1)
            try:
                if current is not None:
                    # The precondition says the document is ``current``: only the differences.
                    version = self._update(path, new.changes_from(current), snapshot.update_time)
                else:
                    version = self.client.document(path).create(new.to_document()).update_time
            except _LOST_RACE:
                # Someone else wrote first: back off a little, re-read and re-decide.
                time.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))
                continue
            except gexc.GoogleAPICallError as exc:
                raise StoreError(f"Firestore write failed: {type(exc).__name__}") from None
            return _Written(new, True, version)
        raise ContentionError(f"{what}: gave up after {self.max_attempts} conflicts")


@dataclass(frozen=True)
class _Written(Generic[R]):
    """``MaybeModified``, with the written document's update time."""

    record: R | None
    changed: bool
    version: Any = None

    def plain(self) -> MaybeModified[R]:
        return MaybeModified(self.record, self.changed)


def _within(deadline: float | None) -> dict[str, Any]:
    """The arguments that bound a call, its retries included, to ``deadline`` seconds."""
    if deadline is None:
        return {}
    return {"retry": gretry.Retry(timeout=deadline), "timeout": deadline}


def _path(*names: str) -> str:
    """A document's path below the database's ``documents/``, from its names."""
    for name in names:
        if not name or "/" in name:
            raise StoreError(f"invalid document name {name[:80]!r}")
    return "/".join(names)


def _data(snapshot: Any) -> dict[str, Any]:
    """A query result's fields, without ``to_dict``'s deep copy (records copy what they
    keep into tuples and never change what they share)."""
    data = getattr(snapshot, "_data", None)
    return data if isinstance(data, dict) else (snapshot.to_dict() or {})


def _authorizer(component_appid: str, appid: str, snapshot: Any) -> AuthorizerRecord:
    return AuthorizerRecord.from_document(
        _data(snapshot),
        component_appid=component_appid,
        appid=appid,
        version=snapshot.update_time,
    )
