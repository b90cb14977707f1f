"""The Google APIs the gateway uses, enabled before anything else is created."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_gcp as gcp

REQUIRED_APIS = (
    "run.googleapis.com",
    "firestore.googleapis.com",
    "cloudscheduler.googleapis.com",
    "secretmanager.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",  # `make image` builds with Cloud Build
    "compute.googleapis.com",  # the VPC, Cloud NAT and the reserved egress address
    "iam.googleapis.com",  # the service accounts
    "logging.googleapis.com",  # log-based metrics
    "monitoring.googleapis.com",  # alert policies and notification channels
)
# Always: the fan-out sweep's shards (infra/sweep_queue.py), and message_routes' topics.
PUBSUB_API = "pubsub.googleapis.com"


class ProjectApis(pulumi.ComponentResource):
    """Depend on this component to wait until every API is enabled."""

    def __init__(
        self,
        name: str,
        project: str,
        extra: Sequence[str] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("wcg:gateway:ProjectApis", name, None, opts)
        self.services = [
            gcp.projects.Service(
                api.split(".")[0],
                project=project,
                service=api,
                # Other workloads in the project may use these APIs too: never turn them off.
                disable_on_destroy=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for api in (*REQUIRED_APIS, *extra)
        ]
        self.register_outputs({"services": [s.service for s in self.services]})
