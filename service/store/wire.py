"""GetDocument, BatchGetDocuments and conditional updates, sent as plain protobuf on the
client's channel.

The generated client wraps every call in proto-plus messages, a retry object, a timeout
object, an interceptor and a generic value codec. On a token request (one read) and a
renewal (two conditional updates) those layers were most of the service's CPU: a read
cost 1.0 ms and an update 1.4 ms where the same calls sent here cost about 0.5 ms each.
The channel is the client's own, so its credentials, endpoint and emulator setting hold;
the retries are the generated client's defaults for these methods (bench/call_costs_bench.py
measures each call against the library's).

Conditional updates made at the same time by several threads (a shard's renewals) share
one BatchWrite (``GroupedWrites``): each keeps its own precondition and its own answer.
"""

from __future__ import annotations

import datetime
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import grpc
from google.api_core import exceptions as gexc
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud.firestore_v1._helpers import decode_value, encode_value
from google.cloud.firestore_v1.types import document as document_types
from google.cloud.firestore_v1.types import firestore as firestore_types
from google.cloud.firestore_v1.types import write as write_types
from google.protobuf import timestamp_pb2

_GetDocumentRequest: Any = firestore_types.GetDocumentRequest.pb()
_BatchGetRequest: Any = firestore_types.BatchGetDocumentsRequest.pb()
_BatchGetResponse: Any = firestore_types.BatchGetDocumentsResponse.pb()
_CommitRequest: Any = firestore_types.CommitRequest.pb()
_CommitResponse: Any = firestore_types.CommitResponse.pb()
_BatchWriteRequest: Any = firestore_types.BatchWriteRequest.pb()
_BatchWriteResponse: Any = firestore_types.BatchWriteResponse.pb()
_Document: Any = document_types.Document.pb()
_Write: Any = write_types.Write.pb()
_Value: Any = document_types.Value.pb()
# Untyped in google-api-core: named here, as Any, once.
_from_grpc_error: Any = gexc.from_grpc_error
_failed_precondition: Any = gexc.FailedPrecondition
_unavailable: Any = gexc.ServiceUnavailable
_from_timestamp: Any = DatetimeWithNanoseconds.from_timestamp_pb
_from_nanos: Any = DatetimeWithNanoseconds.timestamp_pb

# The generated client's defaults (firestore_v1 transports/base.py): which codes are
# retried, and how. An update is retried on fewer codes: it may have been applied.
_READ_RETRIED = frozenset(
    {
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAVAILABLE,
    }
)
_WRITE_RETRIED = frozenset({grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE})
# BatchWrite applies each write on its own, so an aborted batch may be sent again too.
_BATCH_RETRIED = _WRITE_RETRIED | {grpc.StatusCode.ABORTED}
_OK, _FAILED_PRECONDITION = 0, grpc.StatusCode.FAILED_PRECONDITION.value[0]
_MAX_GROUP = 500  # BatchWrite's limit of writes per request
_DEFAULT_DEADLINE = 60.0
# What the routing header may carry unquoted (what urlencode leaves alone, and "/").
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_.~/-]*")
_FIRST_BACKOFF, _BACKOFF_FACTOR, _MAX_BACKOFF = 0.1, 1.3, 60.0


@dataclass(frozen=True)
class WireDocument:
    """A document as read: what the store uses of a snapshot."""

    exists: bool
    data: dict[str, Any]
    update_time: Any

    def to_dict(self) -> dict[str, Any]:
        return self.data


ABSENT = WireDocument(False, {}, None)


class DocumentWire:
    """The reads and conditional updates, on ``client``'s channel (one per client, made
    with it)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        channel = client._firestore_api._transport.grpc_channel

        def method(name: str, request: Any, answer: Any, stream: bool = False) -> Any:
            make = channel.unary_stream if stream else channel.unary_unary
            return make(
                f"/google.firestore.v1.Firestore/{name}",
                request_serializer=request.SerializeToString,
                response_deserializer=answer.FromString,
            )

        self._get = method("GetDocument", _GetDocumentRequest, _Document)
        self._batch_get = method("BatchGetDocuments", _BatchGetRequest, _BatchGetResponse, True)
        self._commit = method("Commit", _CommitRequest, _CommitResponse)
        self._batch_write = method("BatchWrite", _BatchWriteRequest, _BatchWriteResponse)
        self._writes = GroupedWrites(self._send)
        self._database = client._database_string
        self._documents = self._database + "/documents/"
        self._quoted_documents = quote(self._documents, safe="/")
        # The resource prefix (and, on the emulator, its owner token) the client sends.
        self._metadata = tuple(client._rpc_metadata)
        self._commit_metadata = self._metadata + (
            ("x-goog-request-params", "database=" + quote(self._database)),
        )

    def get(
        self, path: str, deadline: float | None = None, fields: tuple[str, ...] | None = None
    ) -> WireDocument:
        """The document at ``path`` (``components/c/authorizers/a``: slash-separated
        names, none empty), ``ABSENT`` if there is none; with ``fields``, only those.

        Raises google.api_core exceptions, as the generated client does.
        """
        request = _GetDocumentRequest(name=self._documents + path)
        if fields is not None:  # only these fields come back (still billed as one read)
            request.mask.field_paths.extend(fields)
        routed = path if _PLAIN_PATH.fullmatch(path) else quote(path, safe="/")
        routing = ("x-goog-request-params", f"name={self._quoted_documents}{routed}")
        metadata = self._metadata + (routing,)
        try:
            found = _call(self._get, request, metadata, _READ_RETRIED, deadline)
        except gexc.NotFound:
            return ABSENT
        return self._found(found)

    def get_many(self, paths: list[str]) -> dict[str, WireDocument]:
        """The documents at ``paths``, by path, in one call (each billed as a read); a
        path with no document maps to ``ABSENT``."""
        if not paths:
            return {}
        request = _BatchGetRequest(
            database=self._database, documents=[self._documents + p for p in paths]
        )
        found: dict[str, WireDocument] = {}
        prefix = len(self._documents)

        def read_all(request: Any, metadata: Any, timeout: float) -> None:
            found.clear()
            for answer in self._batch_get(request, metadata=metadata, timeout=timeout):
                if answer.HasField("found"):
                    found[answer.found.name[prefix:]] = self._found(answer.found)

        _call(read_all, request, self._commit_metadata, _READ_RETRIED, None)
        return {path: found.get(path, ABSENT) for path in paths}

    def update(
        self, path: str, changes: Mapping[str, Any], last_update_time: Any
    ) -> DatetimeWithNanoseconds:
        """Set the top-level fields ``changes`` if the document is still at
        ``last_update_time``; returns the new update time.

        Raises ``FailedPrecondition`` if someone wrote since (or the document is gone).
        Updates made at the same time by other threads may go out in the same request.
        """
        write = _Write()  # filled in place: protobuf's keyword conversion costs more
        write.update.name = self._documents + path
        fields = write.update.fields
        for name, value in changes.items():
            fields[name].CopyFrom(encode(value))
        write.update_mask.field_paths.extend(changes)
        write.current_document.update_time.CopyFrom(_timestamp(last_update_time))
        update_time: DatetimeWithNanoseconds = self._writes.write(write)
        return update_time

    def _send(self, writes: list[Any]) -> list[Any]:
        """Each write's new update time, or the exception it failed with."""
        if len(writes) == 1:
            return [self._commit_one(writes[0])]
        request = _BatchWriteRequest(database=self._database, writes=writes)
        try:
            answer = _call(self._batch_write, request, self._commit_metadata, _BATCH_RETRIED, None)
        except gexc.GoogleAPICallError as exc:
            if exc.grpc_status_code in _BATCH_RETRIED | {grpc.StatusCode.DEADLINE_EXCEEDED}:
                return [_copy_error(exc) for _ in writes]  # the service is out of reach
            # Refused as a request (one bad write refuses them all): each goes alone, so
            # only a bad one fails. Their preconditions make sending them again safe.
            return [self._commit_one(write) for write in writes]
        results: list[Any] = []
        for write, status, result in zip(writes, answer.status, answer.write_results, strict=True):
            if status.code == _OK:
                results.append(_time(result.update_time))
            elif status.code == _FAILED_PRECONDITION:
                results.append(_failed_precondition(status.message))
            else:  # not applied this time; its precondition makes sending it again safe
                results.append(self._commit_one(write))
        return results

    def _commit_one(self, write: Any) -> Any:
        request = _CommitRequest(database=self._database, writes=[write])
        try:
            answer = _call(self._commit, request, self._commit_metadata, _WRITE_RETRIED, None)
        except gexc.GoogleAPICallError as exc:
            return exc
        return _time(answer.write_results[0].update_time)

    def _found(self, document: Any) -> WireDocument:
        return WireDocument(True, self.decode_fields(document.fields), _time(document.update_time))

    def decode_fields(self, fields: Any) -> dict[str, Any]:
        return {name: self._decode(value) for name, value in fields.items()}

    def _decode(self, value: Any) -> Any:
        kind = value.WhichOneof("value_type")
        if kind == "null_value":
            return None
        if kind in ("string_value", "integer_value", "double_value", "boolean_value"):
            return getattr(value, kind)
        if kind == "array_value":
            return [self._decode(item) for item in value.array_value.values]
        if kind == "map_value":
            return self.decode_fields(value.map_value.fields)
        return decode_value(value, self._client)  # timestamps, bytes, references, ...


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass(eq=False)
class _Waiting:
    write: Any
    name: str
    # Held until this writer is woken (answered, or handed the lead): a bare lock costs
    # less than an Event, and each writer is woken at most once while it waits.
    wake: threading.Lock = field(default_factory=_held_lock)
    leads: bool = False
    result: Any = None  # the update time, or the exception to raise
    answered: bool = False


class GroupedWrites:
    """Conditional updates from many threads, sent together (group commit).

    A writer who finds no request in flight sends its write at once: a lone write waits
    for nothing. Writes that come while a request is in flight wait, and go out together
    in the next one, sent by the first of them. A renewal makes two writes and a shard's
    renewals run side by side, so under load one request carries many writes, each with
    its own precondition and its own answer (BatchWrite applies them one by one).
    """

    def __init__(self, send: Callable[[list[Any]], list[Any]]) -> None:
        self._send = send  # writes -> each one's update time or exception, in order
        self._lock = threading.Lock()
        self._waiting: list[_Waiting] = []
        self._in_flight = False

    def write(self, write: Any) -> Any:
        me = _Waiting(write, write.update.name)
        with self._lock:
            self._waiting.append(me)
            me.leads = not self._in_flight
            self._in_flight = True
        while not me.answered:
            if me.leads:
                self._send_group(me)
            else:
                me.wake.acquire()
        if isinstance(me.result, Exception):
            raise me.result
        return me.result

    def _send_group(self, leader: _Waiting) -> None:
        group: list[_Waiting] = []
        names: set[str] = set()
        with self._lock:
            later: list[_Waiting] = []
            for waiting in self._waiting:
                # One request may not write a document twice; the second goes next time.
                if len(group) < _MAX_GROUP and waiting.name not in names:
                    group.append(waiting)
                    names.add(waiting.name)
                else:
                    later.append(waiting)
            self._waiting = later
        results: list[Any] | None = None
        try:
            results = self._send([waiting.write for waiting in group])
        except Exception as exc:  # a bug below: every writer of the group hears of it
            results = [exc] * len(group)
        finally:  # even if this thread is stopped: nobody waits forever, nor blocks the rest
            if results is None:
                results = [_unavailable("the write's request was abandoned") for _ in group]
            with self._lock:
                for waiting, result in zip(group, results, strict=True):
                    waiting.result, waiting.answered, waiting.leads = result, True, False
                if self._waiting:
                    self._waiting[0].leads = True
                else:
                    self._in_flight = False
                woken = [w for w in group if w is not leader] + self._waiting[:1]
            for waiting in woken:
                waiting.wake.release()


def _copy_error(error: gexc.GoogleAPICallError) -> gexc.GoogleAPICallError:
    """The same error for another writer (an exception is raised in one thread only)."""
    return type(error)(error.message, errors=error.errors, response=error.response)


def encode(value: Any) -> Any:
    """A Python value as a protobuf ``Value`` (field names in maps must be plain)."""
    if value is None:
        return _Value(null_value=0)
    if isinstance(value, bool):
        return _Value(boolean_value=value)
    if isinstance(value, int):
        return _Value(integer_value=value)
    if isinstance(value, float):
        return _Value(double_value=value)
    if isinstance(value, str):
        return _Value(string_value=value)
    if isinstance(value, (list, tuple)):
        return _Value(array_value={"values": [encode(item) for item in value]})
    if isinstance(value, dict):
        return _Value(map_value={"fields": {k: encode(v) for k, v in value.items()}})
    return encode_value(value)._pb  # datetimes, bytes, GeoPoints, ...


def _call(
    method: Any,
    request: Any,
    metadata: tuple[tuple[str, str], ...],
    retried: frozenset[grpc.StatusCode],
    deadline: float | None,
) -> Any:
    """``method(request)``, retried with backoff on ``retried`` codes until ``deadline``
    seconds have passed; failures as google.api_core exceptions."""
    budget = _DEFAULT_DEADLINE if deadline is None else deadline
    give_up = time.monotonic() + budget
    backoff = _FIRST_BACKOFF
    while True:
        left = give_up - time.monotonic()
        try:
            return method(request, metadata=metadata, timeout=max(left, 0.001))
        except grpc.RpcError as exc:
            error = exc
        pause = random.uniform(0, backoff)
        if error.code() not in retried or time.monotonic() + pause >= give_up:
            raise _from_grpc_error(error) from None
        time.sleep(pause)
        backoff = min(backoff * _BACKOFF_FACTOR, _MAX_BACKOFF)


def _time(stamp: Any) -> DatetimeWithNanoseconds:
    moment: DatetimeWithNanoseconds = _from_timestamp(stamp)
    return moment


def _timestamp(moment: Any) -> timestamp_pb2.Timestamp:
    if isinstance(moment, DatetimeWithNanoseconds):
        stamp: timestamp_pb2.Timestamp = _from_nanos(moment)
        return stamp
    if isinstance(moment, datetime.datetime):
        plain = timestamp_pb2.Timestamp()
        plain.FromDatetime(moment)
        return plain
    if isinstance(moment, timestamp_pb2.Timestamp):
        return moment
    raise TypeError(f"an update time must be a datetime, not {type(moment).__name__}")
