"""The store's plain-protobuf calls (service.store.wire), on the real Firestore emulator:
they read and write what the generated client reads and writes."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import SimpleNamespace

import grpc
import pytest
from google.api_core import exceptions as gexc

from service.store import wire
from service.store.firestore import FirestoreStore
from service.store.records import AuthorizerRecord, StoreError

COMPONENT = "wxcomponent0000001"

EVERY_KIND = {
    "none": None,
    "yes": True,
    "count": -7,
    "big": 2**62,
    "ratio": 0.25,
    "text": "中文 and `quotes`",
    "raw": b"\x00\x01",
    "when": datetime(2026, 12, 2, 4, 5, 6, 123456, tzinfo=UTC),
    "list": [1, "two", None, {"four": [4]}],  # no array directly in an array
    "map": {"inner": {"deeper": [True, 1.5]}, "empty": {}},
    "empty_list": [],
}


def test_a_read_decodes_every_kind_as_the_generated_client_does(store: FirestoreStore) -> None:
    ref = store.client.collection("things").document("every-kind")
    ref.set(EVERY_KIND)
    expected = ref.get()

    read = store.wire.get("things/every-kind")

    assert read.exists
    assert read.data == expected.to_dict()
    assert read.update_time == expected.update_time


def test_an_absent_document_reads_as_absent(store: FirestoreStore) -> None:
    assert not store.wire.get("things/nobody").exists


def test_an_update_writes_only_its_fields_under_the_precondition(store: FirestoreStore) -> None:
    ref = store.client.collection("things").document("updated")
    ref.set({"keep": "me", "change": 1})
    version = ref.get().update_time

    new_version = store.wire.update("things/updated", EVERY_KIND | {"change": 2}, version)

    after = ref.get()
    assert after.update_time == new_version > version
    assert after.to_dict() == {"keep": "me", **EVERY_KIND, "change": 2}


def test_an_update_from_a_stale_version_is_refused_and_writes_nothing(
    store: FirestoreStore,
) -> None:
    ref = store.client.collection("things").document("raced")
    ref.set({"owner": "nobody"})
    stale = ref.get().update_time
    ref.update({"owner": "someone else"})

    with pytest.raises(gexc.FailedPrecondition):
        store.wire.update("things/raced", {"owner": "me"}, stale)
    assert ref.get().to_dict() == {"owner": "someone else"}


def test_names_outside_the_plain_set_are_read_by_their_own_name(store: FirestoreStore) -> None:
    name = "a b%c(d)é"
    store.client.collection("things").document(name).set({"n": 1})
    assert store.wire.get(f"things/{name}").data == {"n": 1}


def test_a_batch_read_returns_what_exists_by_path(store: FirestoreStore) -> None:
    for appid in ("wxa", "wxb"):
        record = AuthorizerRecord(
            component_appid=COMPONENT, appid=appid, status="authorized", refresh_token=appid
        )
        store.modify_authorizer(COMPONENT, appid, lambda current, r=record: r)  # type: ignore[misc]

    found = store.get_authorizers(COMPONENT, ["wxa", "wxmissing", "wxb"])

    assert set(found) == {"wxa", "wxb"}
    assert found["wxb"].refresh_token == "wxb"
    assert found["wxa"] == store.get_authorizer(COMPONENT, "wxa")
    assert found["wxa"].version is not None


def test_an_invalid_document_name_is_refused_before_any_call(store: FirestoreStore) -> None:
    with pytest.raises(StoreError, match="invalid document name"):
        store.get_authorizer(COMPONENT, "wx/../other")
    with pytest.raises(StoreError, match="invalid document name"):
        store.get_authorizer(COMPONENT, "")


class _Refusal(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "refused"

    def trailing_metadata(self) -> tuple[()]:
        return ()


def test_a_call_is_retried_on_the_retried_codes_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire.time, "sleep", lambda _: None)
    answers: list[object] = [_Refusal(grpc.StatusCode.UNAVAILABLE)] * 2 + ["document"]

    def flaky(request: object, metadata: object, timeout: float) -> object:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert wire._call(flaky, "request", (), wire._READ_RETRIED, 5.0) == "document"
    assert answers == []

    answers[:] = [_Refusal(grpc.StatusCode.PERMISSION_DENIED), "never reached"]
    with pytest.raises(gexc.PermissionDenied):
        wire._call(flaky, "request", (), wire._READ_RETRIED, 5.0)
    assert answers == ["never reached"]

    # An update is not retried on a lost answer's DEADLINE_EXCEEDED: it may have applied.
    answers[:] = [_Refusal(grpc.StatusCode.DEADLINE_EXCEEDED), "never reached"]
    with pytest.raises(gexc.DeadlineExceeded):
        wire._call(flaky, "request", (), wire._WRITE_RETRIED, 5.0)


class _GatedSend:
    """The wire's own BatchWrite/Commit, with the first request held until ``release``:
    writes made meanwhile queue, as they do behind a request in flight."""

    def __init__(self, store: FirestoreStore) -> None:
        self.send = store.wire._send
        self.sizes: list[int] = []
        self.first_in_flight = threading.Event()
        self.release = threading.Event()

    def __call__(self, writes: list[object]) -> list[object]:
        self.sizes.append(len(writes))
        if len(self.sizes) == 1:
            self.first_in_flight.set()
            assert self.release.wait(30)
        return self.send(writes)


def _queued_updates(
    store: FirestoreStore, gate: _GatedSend, updates: list[tuple[str, dict[str, object], object]]
) -> list[object]:
    """``updates`` made from threads of their own while a first update is in flight; each
    thread's new update time, or what it raised."""
    outcomes: list[object] = [None] * len(updates)

    def update(i: int) -> None:
        path, changes, version = updates[i]
        try:
            outcomes[i] = store.wire.update(path, changes, version)
        except Exception as exc:  # the test looks at it
            outcomes[i] = exc

    first_ref = store.client.document("things/first")
    first_ref.set({"n": 0})
    first = threading.Thread(
        target=store.wire.update, args=("things/first", {"n": 1}, first_ref.get().update_time)
    )
    first.start()
    assert gate.first_in_flight.wait(30)
    threads = [threading.Thread(target=update, args=(i,)) for i in range(len(updates))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(store.wire._writes._waiting) < len(updates) and time.monotonic() < deadline:
        time.sleep(0.01)
    gate.release.set()
    for thread in [first, *threads]:
        thread.join(30)
    assert first_ref.get().to_dict() == {"n": 1}
    return outcomes


def test_updates_made_while_one_is_in_flight_go_out_together_each_with_its_own_answer(
    store: FirestoreStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = _GatedSend(store)
    monkeypatch.setattr(store.wire, "_writes", wire.GroupedWrites(gate))
    refs = [store.client.document(f"things/grouped-{i}") for i in range(6)]
    versions = []
    for ref in refs:
        ref.set({"n": 0, "keep": "me"})
        versions.append(ref.get().update_time)
    refs[2].update({"n": 99})  # someone else wrote this one: its version is stale

    outcomes = _queued_updates(
        store, gate, [(f"things/grouped-{i}", {"n": i + 1}, versions[i]) for i in range(6)]
    )

    assert gate.sizes == [1, 6]  # the lone first write waited for nothing; then one request
    assert isinstance(outcomes[2], gexc.FailedPrecondition)
    assert refs[2].get().to_dict() == {"n": 99, "keep": "me"}
    for i in (0, 1, 3, 4, 5):
        after = refs[i].get()
        assert after.to_dict() == {"n": i + 1, "keep": "me"}
        assert outcomes[i] == after.update_time


def test_two_updates_of_one_document_go_in_separate_requests(
    store: FirestoreStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # BatchWrite refuses a request that writes a document twice (INVALID_ARGUMENT).
    gate = _GatedSend(store)
    monkeypatch.setattr(store.wire, "_writes", wire.GroupedWrites(gate))
    ref = store.client.document("things/twice")
    ref.set({"owner": None})
    version = ref.get().update_time

    outcomes = _queued_updates(
        store,
        gate,
        [("things/twice", {"owner": "a"}, version), ("things/twice", {"owner": "b"}, version)],
    )

    assert gate.sizes == [1, 1, 1]
    won = [o for o in outcomes if not isinstance(o, Exception)]
    lost = [o for o in outcomes if isinstance(o, gexc.FailedPrecondition)]
    assert len(won) == 1 and len(lost) == 1
    assert ref.get().to_dict()["owner"] in ("a", "b")


def test_a_write_the_batch_did_not_apply_is_sent_again_alone(
    store: FirestoreStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = [store.client.document(f"things/retried-{i}") for i in range(2)]
    for ref in refs:
        ref.set({"n": 0})
    writes = [
        wire._Write(
            update=wire._Document(
                name=store.wire._documents + f"things/retried-{i}", fields={"n": wire.encode(7)}
            ),
            update_mask={"field_paths": ["n"]},
            current_document={"update_time": wire._timestamp(ref.get().update_time)},
        )
        for i, ref in enumerate(refs)
    ]
    batch_write = store.wire._batch_write

    def first_write_aborted(request: object, metadata: object, timeout: float) -> object:
        only_second = wire._BatchWriteRequest()
        only_second.CopyFrom(request)
        del only_second.writes[0]
        applied = batch_write(only_second, metadata=metadata, timeout=timeout)
        answer = wire._BatchWriteResponse()
        answer.write_results.add()
        answer.write_results.append(applied.write_results[0])
        answer.status.add(code=grpc.StatusCode.ABORTED.value[0], message="contention")
        answer.status.append(applied.status[0])
        return answer

    monkeypatch.setattr(store.wire, "_batch_write", first_write_aborted)

    outcomes = store.wire._send(writes)

    for ref, outcome in zip(refs, outcomes, strict=True):
        after = ref.get()
        assert after.to_dict() == {"n": 7}
        assert outcome == after.update_time


def test_an_unreachable_service_fails_each_write_with_an_error_of_its_own(
    store: FirestoreStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wire.time, "sleep", lambda _: None)
    monkeypatch.setattr(wire, "_DEFAULT_DEADLINE", 0.2)

    def unavailable(request: object, metadata: object, timeout: float) -> object:
        raise _Refusal(grpc.StatusCode.UNAVAILABLE)

    monkeypatch.setattr(store.wire, "_batch_write", unavailable)
    writes = [_plain_write(store, f"things/unreached-{i}", 1) for i in range(3)]

    outcomes = store.wire._send(writes)

    assert all(isinstance(o, gexc.ServiceUnavailable) for o in outcomes)
    assert len({id(o) for o in outcomes}) == 3
    assert not store.client.document("things/unreached-0").get().exists


def test_a_request_refused_as_a_whole_sends_each_write_alone(
    store: FirestoreStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One bad write makes BatchWrite refuse the request: it must not fail the others.
    def refused(request: object, metadata: object, timeout: float) -> object:
        raise _Refusal(grpc.StatusCode.INVALID_ARGUMENT)

    monkeypatch.setattr(store.wire, "_batch_write", refused)
    writes = [_plain_write(store, f"things/alone-{i}", i) for i in range(3)]

    outcomes = store.wire._send(writes)

    for i, outcome in enumerate(outcomes):
        after = store.client.document(f"things/alone-{i}").get()
        assert after.to_dict() == {"n": i}
        assert outcome == after.update_time


def _plain_write(store: FirestoreStore, path: str, n: int) -> object:
    """An unconditional write of ``{"n": n}`` (it creates the document)."""
    return wire._Write(
        update=wire._Document(name=store.wire._documents + path, fields={"n": wire.encode(n)})
    )


def test_many_threads_updating_at_once_all_get_their_answer(store: FirestoreStore) -> None:
    ref_names = [f"things/busy-{i}" for i in range(16)]
    for name in ref_names:
        store.client.document(name).set({"n": 0})

    def count_up(name: str) -> int:
        version = store.client.document(name).get().update_time
        for n in range(1, 26):
            version = store.wire.update(name, {"n": n}, version)
        return n

    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(count_up, ref_names)) == [25] * 16
    assert [store.client.document(n).get().to_dict() for n in ref_names] == [{"n": 25}] * 16
    assert not store.wire._writes._waiting


def test_a_sender_stopped_mid_request_leaves_nobody_waiting() -> None:
    class Stopped(BaseException):
        pass

    in_flight, release = threading.Event(), threading.Event()
    sizes: list[int] = []

    def send(writes: list[object]) -> list[object]:
        sizes.append(len(writes))
        if len(sizes) == 1:
            in_flight.set()
            release.wait(30)
            raise Stopped  # the thread is stopped, not an error to hand out
        return [f"time-{i}" for i in range(len(writes))]

    grouped = wire.GroupedWrites(send)

    def write(name: str) -> object:
        return grouped.write(SimpleNamespace(update=SimpleNamespace(name=name)))

    heard: dict[str, object] = {}

    def first() -> None:
        try:
            write("first")
        except Stopped:
            heard["first"] = "stopped"

    def queued(name: str) -> None:
        heard[name] = write(name)

    threads = [threading.Thread(target=first)]
    threads[0].start()
    assert in_flight.wait(30)
    threads += [threading.Thread(target=queued, args=(f"w{i}",)) for i in range(3)]
    for thread in threads[1:]:
        thread.start()
    while len(grouped._waiting) < 3:
        time.sleep(0.01)
    release.set()
    for thread in threads:
        thread.join(30)

    assert heard == {"first": "stopped", "w0": "time-0", "w1": "time-1", "w2": "time-2"}
    assert sizes == [1, 3]
    assert write("later") == "time-0"  # nothing is left in flight
