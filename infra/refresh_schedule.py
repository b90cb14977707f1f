"""Cloud Scheduler calls POST /tasks/refresh on the internal service, with an OIDC token.

The service has no background threads (Cloud Run gives CPU only during requests), so this
job is what keeps every token fresh. The service answers 503 when a sweep had failures a
retry may fix, and the retry config below makes Scheduler try again before the next run.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_gcp as gcp

from infra.config import GatewayConfig
from infra.names import ResourceNames
from infra.services import internal_audience

REFRESH_PATH = "/tasks/refresh"
INVOKER_ROLE = "roles/run.invoker"


class RefreshSchedule(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        config: GatewayConfig,
        internal_service: gcp.cloudrunv2.Service,
        scheduler_account: gcp.serviceaccount.Account,
        depends_on: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
        audience: pulumi.Input[str] | None = None,
    ) -> None:
        super().__init__("wcg:gateway:RefreshSchedule", name, None, opts)
        # The internal service checks the token's audience itself: its deterministic URL
        # (GatewayServices.internal_audience), which Cloud Run accepts as well.
        if audience is None:
            audience = internal_audience(config)
        names = ResourceNames(config.name_prefix)
        # The scheduler account's one grant: invoking the internal service.
        self.invoker = gcp.cloudrunv2.ServiceIamMember(
            "scheduler-invoker",
            project=config.project,
            location=internal_service.location,
            name=internal_service.name,
            role=INVOKER_ROLE,
            member=scheduler_account.member,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.job = gcp.cloudscheduler.Job(
            "refresh",
            project=config.project,
            region=config.region,
            name=names.refresh_job,
            description="Refreshes WeChat component and authorizer tokens before they expire",
            schedule=config.refresh_schedule,
            time_zone="Etc/UTC",
            attempt_deadline="600s",
            retry_config=gcp.cloudscheduler.JobRetryConfigArgs(
                retry_count=3,
                min_backoff_duration="30s",
                max_backoff_duration="120s",
                max_doublings=2,
                # Retries end before the next scheduled run begins.
                max_retry_duration="240s",
            ),
            http_target=gcp.cloudscheduler.JobHttpTargetArgs(
                http_method="POST",
                uri=internal_service.uri.apply(lambda uri: f"{uri}{REFRESH_PATH}"),
                oidc_token=gcp.cloudscheduler.JobHttpTargetOidcTokenArgs(
                    service_account_email=scheduler_account.email,
                    # The service's URL without a path. Cloud Run passes this token on
                    # without its signature; /tasks/* accept it on Cloud Run's word.
                    audience=audience,
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.invoker, *depends_on]),
        )
        self.register_outputs({"job_name": self.job.name})
