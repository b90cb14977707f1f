"""The Firestore database, the composite indexes the service's queries need, and TTL policies.

The collection and field names mirror ``service/store/firestore.py``; tests/infra checks them
against the service's constants and records, so a rename there fails a test here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.config import GatewayConfig


@dataclass(frozen=True)
class CompositeIndex:
    name: str  # the Pulumi resource name
    collection: str
    fields: tuple[tuple[str, str], ...]  # (field path, ASCENDING | DESCENDING), in order
    why: str


AUTHORIZERS = "authorizers"
COMPOSITE_INDEXES = (
    CompositeIndex(
        "authorizers-due",
        AUTHORIZERS,
        (("status", "ASCENDING"), ("access_token_expires_at", "ASCENDING")),
        "the refresh sweep: status == authorized, expires < t, ordered by expiry",
    ),
    CompositeIndex(
        "authorizers-by-status",
        AUTHORIZERS,
        (("status", "ASCENDING"), ("appid", "ASCENDING")),
        "the listing API filtered by status, paged by appid",
    ),
    CompositeIndex(
        "authorizers-by-account-type",
        AUTHORIZERS,
        (("account_type", "ASCENDING"), ("appid", "ASCENDING")),
        "the listing API filtered by account type, paged by appid",
    ),
    CompositeIndex(
        "authorizers-by-status-and-account-type",
        AUTHORIZERS,
        (("status", "ASCENDING"), ("account_type", "ASCENDING"), ("appid", "ASCENDING")),
        "the listing API filtered by both, paged by appid",
    ),
    # The console's name search: a prefix range on nick_name (alone, the automatic
    # single-field index serves it), with the same filters.
    CompositeIndex(
        "authorizers-name-by-status",
        AUTHORIZERS,
        (("status", "ASCENDING"), ("nick_name", "ASCENDING")),
        "the console's name search filtered by status",
    ),
    CompositeIndex(
        "authorizers-name-by-account-type",
        AUTHORIZERS,
        (("account_type", "ASCENDING"), ("nick_name", "ASCENDING")),
        "the console's name search filtered by account type",
    ),
    CompositeIndex(
        "authorizers-name-by-status-and-account-type",
        AUTHORIZERS,
        (("status", "ASCENDING"), ("account_type", "ASCENDING"), ("nick_name", "ASCENDING")),
        "the console's name search filtered by both",
    ),
)

TTL_FIELD = "expire_at"
# Collection groups whose documents Firestore deletes once `expire_at` has passed.
TTL_COLLECTION_GROUPS = (
    "inbox",
    "authorization_codes",
    "release_sends",
    # The console's (service/console_store.py): its push log, audit log and reset counters.
    "push_log",
    "push_log_batches",
    "console_audit",
    "console_quota_resets",
    # The fan-out sweep's progress (service/sweep_shards.py): sweeps/<id>, its shard markers.
    "sweeps",
    "shards",
)


def database_id(config: GatewayConfig) -> str:
    """The database's id in GCP, as `pulumi import` and the import_ option take it."""
    return f"projects/{config.project}/databases/{config.firestore_database}"


class FirestoreDatabase(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        config: GatewayConfig,
        depends_on: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("wcg:gateway:FirestoreDatabase", name, None, opts)
        self.database = gcp.firestore.Database(
            "database",
            project=config.project,
            name=config.firestore_database,
            location_id=config.firestore_location,
            type="FIRESTORE_NATIVE",
            # The refresh tokens in here cannot all be recovered if lost.
            delete_protection_state="DELETE_PROTECTION_ENABLED",
            point_in_time_recovery_enablement="POINT_IN_TIME_RECOVERY_ENABLED",
            # pulumi-gcp's default: `pulumi destroy` forgets the database and leaves it in
            # the project, said here so that a change of default never deletes one.
            deletion_policy="ABANDON",
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=list(depends_on),
                # `pulumi destroy` stops here (use --exclude-protected): a forgotten
                # database would block the next `pulumi up` (it exists already).
                protect=True,
                # firestore_import: adopt the one an earlier stack left behind.
                import_=database_id(config) if config.firestore_import else None,
            ),
        )
        child = pulumi.ResourceOptions(parent=self)
        self.indexes = [
            gcp.firestore.Index(
                index.name,
                project=config.project,
                database=self.database.name,
                collection=index.collection,
                query_scope="COLLECTION",
                fields=[
                    gcp.firestore.IndexFieldArgs(field_path=path, order=order)
                    for path, order in index.fields
                ],
                opts=child,
            )
            for index in COMPOSITE_INDEXES
        ]
        self.ttl_fields = [
            gcp.firestore.Field(
                f"{group}-ttl",
                project=config.project,
                database=self.database.name,
                collection=group,
                field=TTL_FIELD,
                ttl_config=gcp.firestore.FieldTtlConfigArgs(),
                # No single-field index: an index on an ever-increasing timestamp caps writes.
                index_config=gcp.firestore.FieldIndexConfigArgs(),
                opts=child,
            )
            for group in TTL_COLLECTION_GROUPS
        ]
        self.database_name: pulumi.Output[str] = self.database.name
        self.register_outputs({"database_name": self.database_name})
