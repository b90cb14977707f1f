"""Firestore: the database, the indexes the service's queries need, and TTL policies.

The expected indexes are written out here (not read from infra), and their collection and
field names are checked against the service's own constants and records, so renaming a field
in the service, or dropping an index in infra, fails a test.
"""

from __future__ import annotations

import inspect
from dataclasses import fields

import pytest

from service import console_store, sweep_shards
from service.store import firestore as store
from service.store.records import AuthorizerRecord, CodeExchange, InboxEntry, ReleaseSend
from tests.infra.pulumi_mocks import GCP_PROJECT, REGION, Deployment, base_config, run_program

DATABASE = "gcp:firestore/database:Database"
INDEX = "gcp:firestore/index:Index"
FIELD = "gcp:firestore/field:Field"
ASC = "ASCENDING"

# (collection, [(field, order)]): what FirestoreStore.due_authorizers and list_authorizers ask.
EXPECTED_INDEXES = {
    # status == authorized AND access_token_expires_at < t ORDER BY access_token_expires_at
    (store.AUTHORIZERS, (("status", ASC), ("access_token_expires_at", ASC))),
    # the listing API: equality filters, ordered (and paged) by appid
    (store.AUTHORIZERS, (("status", ASC), ("appid", ASC))),
    (store.AUTHORIZERS, (("account_type", ASC), ("appid", ASC))),
    (store.AUTHORIZERS, (("status", ASC), ("account_type", ASC), ("appid", ASC))),
    # the console's name search (service/console_store.py): a prefix range on nick_name
    (store.AUTHORIZERS, (("status", ASC), ("nick_name", ASC))),
    (store.AUTHORIZERS, (("account_type", ASC), ("nick_name", ASC))),
    (store.AUTHORIZERS, (("status", ASC), ("account_type", ASC), ("nick_name", ASC))),
}
TTL_RECORDS = {
    store.INBOX: InboxEntry,
    store.AUTHORIZATION_CODES: CodeExchange,
    store.RELEASE_SENDS: ReleaseSend,
    console_store.PUSH_LOG: console_store.PushLogEvent,
    console_store.PUSH_LOG_BATCHES: console_store.PushLogBatch,
    console_store.CONSOLE_AUDIT: console_store.AuditEntry,
    console_store.QUOTA_RESETS: console_store.QuotaResets,
}


def field_names(record: type) -> set[str]:
    return {f.name for f in fields(record)}


def test_database_is_native_protected_and_in_the_region(deployment: Deployment) -> None:
    database = deployment.one(DATABASE)
    assert database.inputs["type"] == "FIRESTORE_NATIVE"
    assert database.inputs["locationId"] == REGION
    assert database.inputs["name"] == "(default)"
    assert database.inputs["deleteProtectionState"] == "DELETE_PROTECTION_ENABLED"
    assert database.inputs.get("deletionPolicy", "ABANDON") != "DELETE"


def test_destroy_stops_at_the_database_and_up_never_meets_a_forgotten_one(
    deployment: Deployment,
) -> None:
    """An abandoned `(default)` database made the next `pulumi up` fail: it already exists.
    Protected, `pulumi destroy` keeps it (in the project and in the state)."""
    database = deployment.one(DATABASE)
    assert database.protect
    assert database.inputs["deletionPolicy"] == "ABANDON"
    assert database.import_id == ""


def test_firestore_import_adopts_the_database_an_earlier_stack_left() -> None:
    run = run_program(base_config(firestore_import="true", firestore_database="gateway"))
    database = run.one(DATABASE)
    assert database.import_id == f"projects/{GCP_PROJECT}/databases/gateway"
    assert database.protect
    # Only the database is adopted: its indexes and TTL fields are made (or kept) as usual.
    assert all(not r.import_id for r in run.resources if r.type != DATABASE)


def test_database_location_and_name_from_config() -> None:
    run = run_program(base_config(firestore_location="nam5", firestore_database="gateway"))
    database = run.one(DATABASE)
    assert (database.inputs["locationId"], database.inputs["name"]) == ("nam5", "gateway")
    for resource in run.of_type(INDEX) + run.of_type(FIELD):
        assert resource.inputs["database"] == "gateway", resource.name


def test_composite_indexes(deployment: Deployment) -> None:
    indexes = deployment.of_type(INDEX)
    found = {
        (i.inputs["collection"], tuple((f["fieldPath"], f["order"]) for f in i.inputs["fields"]))
        for i in indexes
    }
    assert found == EXPECTED_INDEXES
    assert len(indexes) == len(EXPECTED_INDEXES)
    for index in indexes:
        assert index.inputs["queryScope"] == "COLLECTION"  # authorizers/ under one component
        assert index.inputs["database"] == "(default)"


@pytest.mark.parametrize(
    "index", sorted(EXPECTED_INDEXES), ids=lambda i: "-".join(f for f, _ in i[1])
)
def test_indexed_fields_exist_on_the_authorizer_record(
    index: tuple[str, tuple[tuple[str, str], ...]],
) -> None:
    collection, index_fields = index
    assert collection == store.AUTHORIZERS == "authorizers"
    assert {name for name, _ in index_fields} <= field_names(AuthorizerRecord)


# Written as plain documents (no record class), each with expire_at (SWEEP_TTL).
SWEEP_PROGRESS = (sweep_shards.SWEEPS, sweep_shards.SHARDS)


def test_the_sweep_s_progress_expires() -> None:
    source = inspect.getsource(sweep_shards)
    assert '"expire_at":' in source and "SWEEP_TTL" in source
    assert SWEEP_PROGRESS == ("sweeps", "shards")


def test_ttl_policies(deployment: Deployment) -> None:
    ttl = {f.inputs["collection"]: f for f in deployment.of_type(FIELD)}
    assert set(ttl) == set(TTL_RECORDS) | set(SWEEP_PROGRESS)
    for collection in SWEEP_PROGRESS:
        assert ttl[collection].inputs["field"] == "expire_at"
    for collection, record in TTL_RECORDS.items():
        policy = ttl[collection]
        assert policy.inputs["field"] == "expire_at"
        assert "expire_at" in field_names(record), record.__name__
        assert "ttlConfig" in policy.inputs  # present (even empty) enables the TTL policy
        # An empty index config exempts the ever-increasing timestamp from indexing.
        assert policy.inputs["indexConfig"] == {}
        assert policy.inputs["database"] == "(default)"


def test_indexes_and_fields_wait_for_the_database(deployment: Deployment) -> None:
    database = deployment.one(DATABASE)
    for resource in deployment.of_type(INDEX) + deployment.of_type(FIELD):
        assert database.urn in resource.dependencies, resource.name
