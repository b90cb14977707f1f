"""Contract tests of the store, on the real Firestore emulator."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from service.store.firestore import FirestoreStore
from service.store.records import ComponentRecord

APPID = "wx0123456789abcdef"


def test_absent_component_reads_as_empty_record(store: FirestoreStore) -> None:
    assert store.get_component(APPID) == ComponentRecord(appid=APPID)


def test_modify_creates_then_updates_and_round_trips_every_field(store: FirestoreStore) -> None:
    full = ComponentRecord(
        appid=APPID,
        ticket="ticket@@@abc",
        ticket_create_time=1700000000,
        ticket_received_at=1700000001.5,
        component_token="49_token",
        component_token_expires_at=1700007200.25,
        refresh_lease_owner="host:1:x",
        refresh_lease_until=1700000030.0,
        push_ticket_requested_at=1699999999.0,
        last_error="61005: component ticket is expired",
        last_error_at=1699999998.0,
    )
    created = store.modify_component(APPID, lambda current: full)
    assert created.changed and created.record == full
    assert store.get_component(APPID) == full

    updated = store.modify_component(APPID, lambda r: r.but(ticket="ticket@@@new"))
    assert updated.changed
    assert store.get_component(APPID) == full.but(ticket="ticket@@@new")


def test_change_returning_none_or_same_record_writes_nothing(store: FirestoreStore) -> None:
    store.modify_component(APPID, lambda r: r.but(ticket="t1"))
    before = store.client.collection("components").document(APPID).get().update_time
    assert not store.modify_component(APPID, lambda r: None).changed
    assert not store.modify_component(APPID, lambda r: r).changed
    after = store.client.collection("components").document(APPID).get().update_time
    assert before == after


def test_concurrent_modifications_lose_no_update(store: FirestoreStore) -> None:
    """Compare-and-set: eight writers each add one; the final count is exact."""

    def increment(record: ComponentRecord) -> ComponentRecord:
        return record.but(ticket_create_time=(record.ticket_create_time or 0) + 1)

    writers = 8
    with ThreadPoolExecutor(writers) as pool:
        results = list(pool.map(lambda _: store.modify_component(APPID, increment), range(writers)))
    assert all(result.changed for result in results)
    assert store.get_component(APPID).ticket_create_time == writers


def test_concurrent_creation_has_one_winner(store: FirestoreStore) -> None:
    """Only one of several racing 'claim if unclaimed' changes takes effect."""

    def claim(owner: str):  # type: ignore[no-untyped-def]
        def change(record: ComponentRecord) -> ComponentRecord | None:
            return None if record.refresh_lease_owner else record.but(refresh_lease_owner=owner)

        return change

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda i: store.modify_component(APPID, claim(f"o{i}")), range(6)))
    winners = [r.record.refresh_lease_owner for r in results if r.changed]
    assert len(winners) == 1
    assert store.get_component(APPID).refresh_lease_owner == winners[0]


def test_unknown_document_fields_are_ignored(store: FirestoreStore) -> None:
    """Records written by a newer version still load."""
    store.client.collection("components").document(APPID).set({"ticket": "t", "a_future_field": 1})
    assert store.get_component(APPID) == ComponentRecord(appid=APPID, ticket="t")
