"""Each component's secrets in Secret Manager, readable by the runtime account only.

One secret per value, and the accessor role on each secret (never project-wide), so the
runtime account can read these and nothing else in Secret Manager.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.config import SECRET_KINDS, GatewayConfig, SecretKind
from infra.names import ResourceNames

ACCESSOR_ROLE = "roles/secretmanager.secretAccessor"


@dataclass(frozen=True)
class StoredSecret:
    """A configured secret: the service's env var reads ``version`` of ``secret``."""

    appid: str
    kind: SecretKind
    secret: gcp.secretmanager.Secret
    version: gcp.secretmanager.SecretVersion
    access: gcp.secretmanager.SecretIamMember


class ComponentSecrets(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        config: GatewayConfig,
        accessor: gcp.serviceaccount.Account,
        depends_on: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("wcg:gateway:ComponentSecrets", name, None, opts)
        names = ResourceNames(config.name_prefix)
        self.stored: list[StoredSecret] = []
        for component in config.components:
            for kind in SECRET_KINDS:
                value = component.secret(kind)
                if value is None:
                    continue
                resource_name = f"{component.appid}-{kind.id_suffix}"
                secret = gcp.secretmanager.Secret(
                    resource_name,
                    project=config.project,
                    secret_id=names.secret(component.appid, kind),
                    replication=gcp.secretmanager.SecretReplicationArgs(
                        auto=gcp.secretmanager.SecretReplicationAutoArgs()
                    ),
                    labels={"component": component.appid},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=list(depends_on)),
                )
                version = gcp.secretmanager.SecretVersion(
                    resource_name,
                    secret=secret.id,
                    secret_data=pulumi.Output.secret(value),
                    # A rotation replaces this version: disable the old one, never destroy
                    # it, so a rollback to a revision pinned to it still starts. Destroy
                    # old versions by hand once no revision uses them (README).
                    deletion_policy="DISABLE",
                    opts=pulumi.ResourceOptions(parent=self),
                )
                access = gcp.secretmanager.SecretIamMember(
                    f"{resource_name}-runtime-access",
                    project=config.project,
                    secret_id=secret.secret_id,
                    role=ACCESSOR_ROLE,
                    member=accessor.member,
                    opts=pulumi.ResourceOptions(parent=self),
                )
                self.stored.append(StoredSecret(component.appid, kind, secret, version, access))
        self.register_outputs({"secret_ids": [s.secret.secret_id for s in self.stored]})

    @property
    def access_grants(self) -> list[gcp.secretmanager.SecretIamMember]:
        return [s.access for s in self.stored]
