"""The two Cloud Run services, public and internal, run from the one image.

The public one takes WeChat's pushes and merchants' browsers, with Cloud Run's invoker check
off (they carry no Google identity), and behind the load balancer when ``public_domain`` is
set (infra/public_domain.py); the internal one serves the
provider's services and the refresh task, behind Cloud Run IAM, and verifies each caller's ID
token again itself: for its own URL (INTERNAL_AUDIENCE), from the scheduler's account or an
``internal_invokers`` member (INTERNAL_INVOKERS). The public one gets MESSAGE_ROUTES when
``message_routes`` is set. Both leave through the egress subnet
(ALL_TRAFFIC), so every WeChat API call comes from the whitelisted NAT address. A new
instance takes traffic once /readyz has reached Firestore and WeChat through that path; each
instance serves at most workers x threads requests at a time, as many as gunicorn has threads.
The environment built here is the contract with ``service/config.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_gcp as gcp

from infra.component_secrets import StoredSecret
from infra.config import GatewayConfig, operator_member
from infra.names import ResourceNames
from infra.network import EgressNetwork
from infra.public_domain import CLIENT_IP_HOPS, CLIENT_IP_HOPS_VAR, public_ingress
from service.config import COMPONENT_APPIDS_VAR, COMPONENT_VARS

Role = Literal["public", "internal"]
CONTAINER_PORT = 8080
# Cloud Run holds traffic from a new instance until this answers 200 (service/readiness.py:
# Firestore read, WeChat's API host reached through the egress, each within 1.2 s).
READINESS_PATH = "/readyz"
PROBE_PERIOD = 3  # seconds between tries, and each try's timeout
PROBE_FAILURES = 40  # 2 minutes before Cloud Run gives the instance up
MEMORY_PER_WORKER_MIB = 512
MESSAGE_ROUTES_VAR = "MESSAGE_ROUTES"  # read by service/config.py with service.routes
# The fan-out sweep's settings, as service/config.py names them.
SWEEP_MODE_VAR = "SWEEP_MODE"
SWEEP_MODE_FANOUT = "fanout"
SWEEP_SHARD_TOPIC_VAR = "SWEEP_SHARD_TOPIC"
SWEEP_SHARD_SIZE_VAR = "SWEEP_SHARD_SIZE"
SWEEP_CONCURRENCY_VAR = "SWEEP_CONCURRENCY"
INGRESS = {
    "internal": "INGRESS_TRAFFIC_INTERNAL_ONLY",
    "all": "INGRESS_TRAFFIC_ALL",
}


@dataclass(frozen=True)
class ServiceShape:
    role: Role
    name: str
    ingress: str
    timeout: str
    min_instances: int
    max_instances: int


def service_shapes(config: GatewayConfig) -> tuple[ServiceShape, ServiceShape]:
    names = ResourceNames(config.name_prefix)
    return (
        # WeChat waits 5 s for a push's answer; a merchant's callback is one exchange.
        ServiceShape(
            "public",
            names.public_service,
            public_ingress(config),
            "60s",
            config.min_instances,
            config.max_instances,
        ),
        # The refresh sweep may run for minutes; its shards spread over up to
        # sweep_max_instances instances (infra/sweep_queue.py).
        ServiceShape(
            "internal",
            names.internal_service,
            INGRESS[config.internal_ingress],
            "900s",
            config.internal_min_instances,
            config.sweep_max_instances,
        ),
    )


def container_resources(
    config: GatewayConfig,
) -> gcp.cloudrunv2.ServiceTemplateContainerResourcesArgs:
    """One CPU per gunicorn worker; CPU only during requests, boosted while starting."""
    return gcp.cloudrunv2.ServiceTemplateContainerResourcesArgs(
        limits={
            "cpu": str(config.workers),
            "memory": f"{MEMORY_PER_WORKER_MIB * config.workers}Mi",
        },
        # Setting `resources` at all turns request-based billing off unless it is said again.
        cpu_idle=True,
        startup_cpu_boost=True,
    )


def startup_probe() -> gcp.cloudrunv2.ServiceTemplateContainerStartupProbeArgs:
    return gcp.cloudrunv2.ServiceTemplateContainerStartupProbeArgs(
        http_get=gcp.cloudrunv2.ServiceTemplateContainerStartupProbeHttpGetArgs(
            path=READINESS_PATH, port=CONTAINER_PORT
        ),
        initial_delay_seconds=0,
        period_seconds=PROBE_PERIOD,
        timeout_seconds=PROBE_PERIOD,
        failure_threshold=PROBE_FAILURES,
    )


def shard_topic_path(config: GatewayConfig) -> str:
    """The shard topic's full path, known before the topic exists (SWEEP_SHARD_TOPIC)."""
    topic = ResourceNames(config.name_prefix).shard_topic
    return f"projects/{config.project}/topics/{topic}"


def deterministic_url(service_name: str, project_number: str, region: str) -> str:
    """Cloud Run's URL for a service, known before the service exists (no dependency cycle)."""
    return f"https://{service_name}-{project_number}.{region}.run.app"


def internal_audience(config: GatewayConfig) -> pulumi.Output[str]:
    """The audience of every ID token for the internal service: its deterministic URL.

    Cloud Run accepts it as one of the service's own URLs; the service checks it itself, so
    it must be known before the service exists (its hash-based URL is not).
    """
    name = ResourceNames(config.name_prefix).internal_service
    number = gcp.organizations.get_project_output(project_id=config.project).number
    return number.apply(lambda n: deterministic_url(name, n, config.region))


def scheduler_email(config: GatewayConfig) -> str:
    """The scheduler account's email, as GCP derives it from the account id and project."""
    account = ResourceNames(config.name_prefix).scheduler_account
    return f"{account}@{config.project}.iam.gserviceaccount.com"


def sweep_push_email(config: GatewayConfig) -> str:
    """The email of the account whose ID token each shard push carries (sweep_queue.py)."""
    account = ResourceNames(config.name_prefix).sweep_push_account
    return f"{account}@{config.project}.iam.gserviceaccount.com"


def invoker_emails(config: GatewayConfig) -> list[str]:
    """Whose ID tokens the internal service accepts: the scheduler's, the shard pushes',
    then the invokers'."""
    return list(
        dict.fromkeys([scheduler_email(config), sweep_push_email(config), *config.invoker_emails])
    )


def service_env(
    role: Role,
    config: GatewayConfig,
    database_name: pulumi.Input[str],
    public_base_url: pulumi.Input[str],
    secrets: Sequence[StoredSecret],
    audience: pulumi.Input[str] = "",
) -> list[gcp.cloudrunv2.ServiceTemplateContainerEnvArgs]:
    Env = gcp.cloudrunv2.ServiceTemplateContainerEnvArgs
    env = [
        Env(name="SERVICE_ROLE", value=role),
        Env(name="GOOGLE_CLOUD_PROJECT", value=config.project),
        Env(name="FIRESTORE_DATABASE", value=database_name),
        # Both need it: the internal one issues authorization links whose callback is public.
        Env(name="PUBLIC_BASE_URL", value=public_base_url),
        Env(name=COMPONENT_APPIDS_VAR, value=",".join(config.appids)),
        # gunicorn's size; the same numbers set Cloud Run's request concurrency.
        Env(name="GUNICORN_WORKERS", value=str(config.workers)),
        Env(name="GUNICORN_THREADS", value=str(config.threads)),
    ]
    if role == "public" and config.message_routes is not None:
        # Where each push goes (the public service receives them all): first match wins.
        env.append(Env(name=MESSAGE_ROUTES_VAR, value=config.message_routes))
    if role == "public" and config.public_domain is not None:
        # Behind the load balancer (infra/public_domain.py): the client is one hop further.
        env.append(Env(name=CLIENT_IP_HOPS_VAR, value=str(CLIENT_IP_HOPS)))
    if role == "internal":
        # Cloud Run IAM checks the caller before the request arrives; the service verifies
        # the caller's ID token again (against Google's certificates, the service's default).
        env.append(Env(name="INTERNAL_AUTH", value="cloud_run_iam"))
        env.append(Env(name="INTERNAL_AUDIENCE", value=audience))
        env.append(Env(name="INTERNAL_INVOKERS", value=",".join(invoker_emails(config))))
        if config.console_operators:
            # Who may open /console through `gcloud run services proxy`.
            env.append(Env(name="CONSOLE_OPERATORS", value=",".join(config.console_operators)))
        # The fan-out sweep: the scheduler's sweep publishes shards of due authorizers to the
        # shard topic; Pub/Sub pushes each to /tasks/refresh-shard (infra/sweep_queue.py).
        env.append(Env(name=SWEEP_MODE_VAR, value=SWEEP_MODE_FANOUT))
        env.append(Env(name=SWEEP_SHARD_TOPIC_VAR, value=shard_topic_path(config)))
        env.append(Env(name=SWEEP_SHARD_SIZE_VAR, value=str(config.sweep_shard_size)))
        env.append(Env(name=SWEEP_CONCURRENCY_VAR, value=str(config.sweep_concurrency)))
        if config.group_open_appid is not None:
            # Scene 2's report and bind-unbound (service/open_account_group.py).
            env.append(Env(name="GROUP_OPEN_APPID", value=config.group_open_appid))
    for stored in secrets:
        # By reference only, pinned to the version: a rotated secret rolls a new revision.
        env.append(
            Env(
                name=COMPONENT_VARS[stored.kind.service_key].format(appid=stored.appid.upper()),
                value_source=gcp.cloudrunv2.ServiceTemplateContainerEnvValueSourceArgs(
                    secret_key_ref=gcp.cloudrunv2.ServiceTemplateContainerEnvValueSourceSecretKeyRefArgs(
                        secret=stored.secret.id,
                        version=stored.version.version,
                    )
                ),
            )
        )
    return env


class GatewayServices(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        config: GatewayConfig,
        image: str,
        runtime_account: gcp.serviceaccount.Account,
        database_name: pulumi.Input[str],
        public_base_url: pulumi.Input[str],
        secrets: Sequence[StoredSecret],
        network: EgressNetwork,
        depends_on: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("wcg:gateway:GatewayServices", name, None, opts)
        self.internal_audience = internal_audience(config)
        services: dict[Role, gcp.cloudrunv2.Service] = {}
        for shape in service_shapes(config):
            services[shape.role] = gcp.cloudrunv2.Service(
                shape.role,
                project=config.project,
                location=config.region,
                name=shape.name,
                ingress=shape.ingress,
                # WeChat's pushes and merchants' browsers carry no Google identity: the public
                # service skips Cloud Run's invoker check. (An `allUsers` invoker grant is
                # refused where Domain Restricted Sharing is on; this is not a grant.)
                invoker_iam_disabled=shape.role == "public",
                # Stateless: replacing or deleting it loses nothing.
                deletion_protection=False,
                template=gcp.cloudrunv2.ServiceTemplateArgs(
                    service_account=runtime_account.email,
                    timeout=shape.timeout,
                    scaling=gcp.cloudrunv2.ServiceTemplateScalingArgs(
                        min_instance_count=shape.min_instances,
                        max_instance_count=shape.max_instances,
                    ),
                    # Cloud Run's default, 80, would queue 80 requests on 8 threads, against
                    # WeChat's 5 s: one request per gunicorn thread.
                    max_instance_request_concurrency=config.concurrency,
                    vpc_access=gcp.cloudrunv2.ServiceTemplateVpcAccessArgs(
                        network_interfaces=[
                            gcp.cloudrunv2.ServiceTemplateVpcAccessNetworkInterfaceArgs(
                                network=network.network.name,
                                subnetwork=network.subnetwork.name,
                            )
                        ],
                        egress="ALL_TRAFFIC",
                    ),
                    containers=[
                        gcp.cloudrunv2.ServiceTemplateContainerArgs(
                            image=image,
                            ports=gcp.cloudrunv2.ServiceTemplateContainerPortsArgs(
                                container_port=CONTAINER_PORT
                            ),
                            resources=container_resources(config),
                            startup_probe=startup_probe(),
                            envs=service_env(
                                shape.role,
                                config,
                                database_name,
                                public_base_url,
                                secrets,
                                self.internal_audience,
                            ),
                        )
                    ],
                ),
                # The first revision must start: its secrets and Firestore role exist first.
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(depends_on)),
            )
        self.public = services["public"]
        self.internal = services["internal"]
        # The provider's own callers of the token API and the proxy (`internal_invokers`).
        self.internal_invokers = [
            gcp.cloudrunv2.ServiceIamMember(
                f"internal-invoker-{member}",
                project=config.project,
                location=self.internal.location,
                name=self.internal.name,
                role="roles/run.invoker",
                member=member,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for member in config.internal_invokers
        ]
        # The console's operators (`console_operators`): the proxy's calls carry their token.
        self.console_operators = [
            gcp.cloudrunv2.ServiceIamMember(
                f"console-operator-{email}",
                project=config.project,
                location=self.internal.location,
                name=self.internal.name,
                role="roles/run.invoker",
                member=operator_member(email),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for email in config.console_operators
            if operator_member(email) not in config.internal_invokers
        ]
        self.register_outputs(
            {
                "public_uri": self.public.uri,
                "internal_uri": self.internal.uri,
                "internal_audience": self.internal_audience,
            }
        )
