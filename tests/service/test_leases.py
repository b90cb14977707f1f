"""The one lease primitive, applied by the Firestore store's compare-and-set on the emulator.

A code exchange's record stands in for every leased record (component, authorizer, code,
release-check send): they share ``LeasedRecord``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from service import leases
from service.store.firestore import FirestoreStore
from service.store.records import CodeExchange, ExchangeStatus

COMPONENT = "wx0123456789abcdef"
KEY = "code-hash"
NOW = 1_700_000_000.0


@pytest.fixture
def record(store: FirestoreStore) -> CodeExchange:
    created = store.modify_code_exchange(
        COMPONENT, KEY, lambda _: CodeExchange(component_appid=COMPONENT, key=KEY)
    ).record
    assert created is not None
    return created


def apply(store: FirestoreStore, change: leases.LeaseChange[CodeExchange]) -> bool:
    return store.modify_code_exchange(COMPONENT, KEY, change).changed


def stored(store: FirestoreStore) -> CodeExchange:
    current = store.modify_code_exchange(COMPONENT, KEY, lambda _: None).record
    assert current is not None
    return current


def status(value: ExchangeStatus) -> leases.LeaseOutcome[CodeExchange]:
    return lambda current: current.but(status=value.value)


def test_a_free_lease_is_taken_by_one_of_many_at_once(
    store: FirestoreStore, record: CodeExchange
) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        won = list(pool.map(lambda i: apply(store, leases.take(f"p{i}", NOW, 30)), range(8)))
    assert won.count(True) == 1
    assert stored(store).lease.until == NOW + 30


def test_a_held_lease_is_not_taken_until_it_expires(
    store: FirestoreStore, record: CodeExchange
) -> None:
    assert apply(store, leases.take("a", NOW, 30))
    assert not apply(store, leases.take("b", NOW + 29, 30))
    assert apply(store, leases.take("b", NOW + 30, 30))  # expired: a takeover
    assert stored(store).lease == leases.Lease("b", NOW + 60)


def test_take_asks_whether_the_work_is_still_wanted(
    store: FirestoreStore, record: CodeExchange
) -> None:
    assert not apply(store, leases.take("a", NOW, 30, when=lambda r: r.status == "done"))
    assert stored(store).lease == leases.RELEASED


def test_only_the_owner_renews_releases_or_changes_while_held(
    store: FirestoreStore, record: CodeExchange
) -> None:
    assert apply(store, leases.take("a", NOW, 30))
    assert not apply(store, leases.renew("b", NOW + 10, 30))
    assert apply(store, leases.renew("a", NOW + 10, 30))
    assert stored(store).lease.until == NOW + 40
    assert not apply(store, leases.while_held("b", status(ExchangeStatus.UNKNOWN)))
    assert apply(store, leases.while_held("a", status(ExchangeStatus.UNKNOWN)))
    assert stored(store).lease.owner == "a"  # still held
    assert not apply(store, leases.release("b"))
    assert apply(store, leases.release("a"))
    assert stored(store).lease == leases.RELEASED


def test_an_overtaken_holder_may_not_release_or_renew_the_new_holders_lease(
    store: FirestoreStore, record: CodeExchange
) -> None:
    assert apply(store, leases.take("a", NOW, 30))
    assert apply(store, leases.take("b", NOW + 31, 30))
    assert not apply(store, leases.release("a"))
    assert not apply(store, leases.renew("a", NOW + 32, 30))
    assert stored(store).lease == leases.Lease("b", NOW + 61)


def test_a_reversible_outcome_is_recorded_only_by_the_owner(
    store: FirestoreStore, record: CodeExchange
) -> None:
    assert apply(store, leases.take("a", NOW, 30))
    assert apply(store, leases.take("b", NOW + 31, 30))
    assert not apply(store, leases.finish("a", status(ExchangeStatus.FAILED)))
    assert stored(store).status == ExchangeStatus.EXCHANGING
    assert apply(store, leases.finish("b", status(ExchangeStatus.FAILED)))
    assert (stored(store).status, stored(store).lease) == ("failed", leases.RELEASED)


def test_a_final_outcome_is_recorded_by_anyone_and_keeps_the_holders_lease(
    store: FirestoreStore, record: CodeExchange
) -> None:
    assert apply(store, leases.take("a", NOW, 30))
    assert apply(store, leases.take("b", NOW + 31, 30))
    assert apply(store, leases.finish("a", status(ExchangeStatus.DONE), final=True))
    done = stored(store)
    assert done.status == ExchangeStatus.DONE
    assert done.lease == leases.Lease("b", NOW + 61)  # b's lease is b's to give back
    assert apply(store, leases.finish("b", lambda current: None))  # declines; gives back
    assert stored(store).lease == leases.RELEASED and stored(store).status == "done"
