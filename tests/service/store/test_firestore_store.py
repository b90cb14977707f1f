"""Contract tests of the store, on the real Firestore emulator."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from service.store.firestore import FirestoreStore
from service.store.records import (
    HISTORY_LIMIT,
    AuthorizerRecord,
    Change,
    CodeExchange,
    ComponentRecord,
    InboxEntry,
)

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


AUTHORIZER = "wx326eecacf7370d4e"


def test_authorizer_round_trips_with_tuples_and_history(store: FirestoreStore) -> None:
    assert store.get_authorizer(APPID, AUTHORIZER) is None
    record = AuthorizerRecord(
        component_appid=APPID,
        appid=AUTHORIZER,
        account_type="mini_program",
        nick_name="美妆饰品",
        func_info=(17, 18),
        authorized_at=1700000000.0,
        access_token="ACCESS-TOKEN-VALUE",
        access_token_expires_at=1700007200.0,
        refresh_token="refreshtoken@@@r",
        last_push_time=1700000000,
    ).with_event(1700000000.0, "authorized", source="push", func_info=[17, 18])
    created = store.modify_authorizer(APPID, AUTHORIZER, lambda current: current or record)
    assert created.changed and created.record == record
    assert store.get_authorizer(APPID, AUTHORIZER) == record
    assert "ACCESS-TOKEN-VALUE" not in repr(record) and "refreshtoken" not in repr(record)

    public = record.public()
    assert "access_token" not in public and "refresh_token" not in public
    assert public["has_refresh_token"] is True and public["func_info"] == [17, 18]


def test_absent_authorizer_change_may_decline_to_create(store: FirestoreStore) -> None:
    result = store.modify_authorizer(APPID, AUTHORIZER, lambda current: None)
    assert not result.changed and result.record is None
    assert store.get_authorizer(APPID, AUTHORIZER) is None


def test_history_keeps_the_newest_entries_only() -> None:
    record = AuthorizerRecord(component_appid=APPID, appid=AUTHORIZER)
    for i in range(HISTORY_LIMIT + 5):
        record = record.with_event(float(i), "e")
    assert len(record.history) == HISTORY_LIMIT
    assert record.history[-1]["at"] == float(HISTORY_LIMIT + 4)


def test_code_exchange_claim_is_won_by_exactly_one_writer(store: FirestoreStore) -> None:
    def claim(owner: str) -> Change[CodeExchange]:
        def change(current: CodeExchange | None) -> CodeExchange | None:
            if current is not None:
                return None
            return CodeExchange(component_appid=APPID, key="k1", lease_owner=owner)

        return change

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(lambda i: store.modify_code_exchange(APPID, "k1", claim(f"o{i}")), range(4))
        )
    winners = [r for r in results if r.changed]
    assert len(winners) == 1
    owners = {r.record.lease_owner for r in results if r.record is not None}
    assert owners == {winners[0].record.lease_owner if winners[0].record else None}


def test_inbox_entry_round_trips_with_its_ttl_field(store: FirestoreStore) -> None:
    expire = datetime(2030, 1, 1, tzinfo=UTC)
    entry = InboxEntry(
        component_appid=APPID,
        key="abc",
        info_type="notify_third_fasteregister",
        create_time=1700000000,
        received_at=1700000001.0,
        outcome="recorded",
        final=True,
        fields={"AppId": APPID, "status": "0"},
        expire_at=expire,
    )
    assert store.get_inbox_entry(APPID, "abc") is None
    store.put_inbox_entry(entry)
    stored = store.get_inbox_entry(APPID, "abc")
    assert stored is not None and stored.expire_at == expire
    assert stored == entry.but(expire_at=stored.expire_at)


def test_a_write_from_a_snapshot_reads_nothing_and_returns_the_new_version(
    store: FirestoreStore,
) -> None:
    written = store.modify_authorizer(
        APPID, AUTHORIZER, lambda _: AuthorizerRecord(APPID, AUTHORIZER)
    )
    seen = written.record
    assert seen is not None and seen.version is not None
    assert "version" not in seen.to_document()  # the store's, not the document's
    reads, writes = store.ops.snapshot()
    second = store.modify_authorizer(APPID, AUTHORIZER, lambda r: r and r.but(nick_name="a"), seen)
    assert second.changed and second.record is not None
    assert second.record.version is not None and second.record.version > seen.version
    third = store.modify_authorizer(
        APPID, AUTHORIZER, lambda r: r and r.but(user_name="gh_a"), second.record
    )
    assert store.ops.snapshot() == (reads, writes + 2)
    assert third.record == store.get_authorizer(APPID, AUTHORIZER)
    assert third.record is not None and (third.record.nick_name, third.record.user_name) == (
        "a",
        "gh_a",
    )


def test_a_write_from_a_stale_snapshot_rereads_and_loses_no_update(store: FirestoreStore) -> None:
    seen = store.modify_authorizer(
        APPID, AUTHORIZER, lambda _: AuthorizerRecord(APPID, AUTHORIZER)
    ).record
    store.modify_authorizer(APPID, AUTHORIZER, lambda r: r and r.but(nick_name="theirs"))
    reads, _ = store.ops.snapshot()
    result = store.modify_authorizer(
        APPID, AUTHORIZER, lambda r: r and r.but(user_name="ours"), seen
    )
    assert result.changed and store.ops.snapshot()[0] == reads + 1  # re-read once
    stored = store.get_authorizer(APPID, AUTHORIZER)
    assert stored is not None and (stored.nick_name, stored.user_name) == ("theirs", "ours")
    assert result.record is not None and result.record.version == stored.version


def test_no_change_on_a_snapshot_is_decided_without_a_read(store: FirestoreStore) -> None:
    seen = store.modify_authorizer(
        APPID, AUTHORIZER, lambda _: AuthorizerRecord(APPID, AUTHORIZER)
    ).record
    reads, writes = store.ops.snapshot()
    assert not store.modify_authorizer(APPID, AUTHORIZER, lambda r: None, seen).changed
    assert store.ops.snapshot() == (reads, writes)


def test_queried_authorizers_carry_their_snapshots_version(store: FirestoreStore) -> None:
    written = store.modify_authorizer(
        APPID,
        AUTHORIZER,
        lambda _: AuthorizerRecord(APPID, AUTHORIZER, access_token_expires_at=1.0),
    ).record
    assert written is not None
    [listed] = store.list_authorizers(APPID)
    [due] = store.due_authorizers(APPID, 2.0)
    assert listed.version == due.version == written.version


def test_an_update_sends_only_the_fields_that_changed(store: FirestoreStore) -> None:
    ref = store.client.collection("components").document(APPID)
    ref.collection("authorizers").document(AUTHORIZER).set(
        {"component_appid": APPID, "appid": AUTHORIZER, "status": "authorized"}
    )
    store.modify_authorizer(APPID, AUTHORIZER, lambda r: r and r.but(nick_name="a"))
    document = ref.collection("authorizers").document(AUTHORIZER).get().to_dict()
    assert document == {
        "component_appid": APPID,
        "appid": AUTHORIZER,
        "status": "authorized",
        "nick_name": "a",
    }
