"""The store's plain-protobuf calls (service.store.wire), on the real Firestore emulator:
they read and write what the generated client reads and writes."""

from __future__ import annotations

from datetime import UTC, datetime

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
