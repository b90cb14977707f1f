"""The two service accounts and the one project-level role the gateway needs.

Least privilege: the runtime account gets Firestore data access at project level (Firestore
has no narrower IAM scope) and reads its own secrets (granted in ``component_secrets``); the
scheduler account only invokes the internal service (granted in ``refresh_schedule``).
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_gcp as gcp

from infra.config import GatewayConfig
from infra.names import ResourceNames

RUNTIME_PROJECT_ROLES = ("roles/datastore.user",)


class ServiceAccounts(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        config: GatewayConfig,
        depends_on: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("wcg:gateway:ServiceAccounts", name, None, opts)
        names = ResourceNames(config.name_prefix)
        child = pulumi.ResourceOptions(parent=self, depends_on=list(depends_on))
        self.runtime = gcp.serviceaccount.Account(
            "runtime",
            project=config.project,
            account_id=names.runtime_account,
            display_name="WeChat component gateway (Cloud Run services)",
            opts=child,
        )
        self.scheduler = gcp.serviceaccount.Account(
            "scheduler",
            project=config.project,
            account_id=names.scheduler_account,
            display_name="WeChat component gateway (Cloud Scheduler, invokes the refresh)",
            opts=child,
        )
        self.runtime_project_roles = [
            gcp.projects.IAMMember(
                f"runtime-{role.removeprefix('roles/').replace('.', '-')}",
                project=config.project,
                role=role,
                member=self.runtime.member,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for role in RUNTIME_PROJECT_ROLES
        ]
        self.register_outputs(
            {"runtime_email": self.runtime.email, "scheduler_email": self.scheduler.email}
        )
