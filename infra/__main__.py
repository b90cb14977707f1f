"""The gateway's deployment: `pulumi up` runs this (Pulumi.yaml: `main: infra/`).

Without the `image` config key only the foundation is created (the registry among it, so
the image can be pushed); with it, the services, the refresh job and the alerts too.
"""

import sys
from pathlib import Path

_INFRA = Path(__file__).resolve().parent
# Pulumi runs this directory with runpy, which puts infra/ itself first on sys.path, where
# infra/config.py and friends could shadow top-level modules: import them as `infra.*`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _INFRA]
if str(_INFRA.parent) not in sys.path:
    sys.path.insert(0, str(_INFRA.parent))

import pulumi  # noqa: E402
import pulumi_gcp as gcp  # noqa: E402

from infra.accounts import ServiceAccounts  # noqa: E402
from infra.alerts import GatewayAlerts, LogMetrics  # noqa: E402
from infra.apis import PUBSUB_API, ProjectApis  # noqa: E402
from infra.component_secrets import ComponentSecrets  # noqa: E402
from infra.config import read_config  # noqa: E402
from infra.firestore import FirestoreDatabase  # noqa: E402
from infra.messaging import MessageDelivery  # noqa: E402
from infra.names import ResourceNames  # noqa: E402
from infra.network import EgressNetwork  # noqa: E402
from infra.public_domain import PublicEntry  # noqa: E402
from infra.refresh_schedule import RefreshSchedule  # noqa: E402
from infra.registry import ImageRegistry  # noqa: E402
from infra.services import GatewayServices, deterministic_url  # noqa: E402
from infra.sweep_queue import ShardDelivery, ShardTopic  # noqa: E402
from infra.urls import AuthorizationUrls, public_base_url  # noqa: E402

config = read_config()
names = ResourceNames(config.name_prefix)

# Pub/Sub carries the fan-out sweep's shards, and the message routes' pushes if any.
apis = ProjectApis("apis", config.project, extra=[PUBSUB_API])
registry = ImageRegistry("registry", config, depends_on=[apis])
database = FirestoreDatabase("firestore", config, depends_on=[apis])
accounts = ServiceAccounts("accounts", config, depends_on=[apis])
secrets = ComponentSecrets("secrets", config, accessor=accounts.runtime, depends_on=[apis])
network = EgressNetwork("egress", config, depends_on=[apis])
# Foundation too: Cloud Monitoring takes minutes to know a new log-based metric, and the
# alert policies on them come with the services, in the second `pulumi up`.
log_metrics = LogMetrics(
    "log-metrics",
    config,
    service_names=[names.public_service, names.internal_service],
    depends_on=[apis],
)

project_number = gcp.organizations.get_project_output(project_id=config.project).number

pulumi.export("egress_ip", network.egress_ip)
pulumi.export("image_repository", registry.url)
pulumi.export("runtime_service_account", accounts.runtime.email)

# Pub/Sub delivery is foundation too: the topics are there before the service publishes.
shards = ShardTopic(
    "sweep-shards",
    config,
    runtime_account=accounts.runtime,
    project_number=project_number,
    depends_on=[apis],
)
pulumi.export("sweep_shard_topic", shards.topic.id)
pulumi.export("sweep_dead_letter_subscription", shards.dead_letter_subscription.id)
messaging: MessageDelivery | None = None
if config.message_topics:
    messaging = MessageDelivery(
        "messaging",
        config,
        runtime_account=accounts.runtime,
        project_number=project_number,
        depends_on=[apis],
    )
    pulumi.export("message_topics", messaging.topic_paths)
    # The provider grants each of these roles/run.invoker on the service behind the endpoint.
    pulumi.export("message_subscription_accounts", messaging.account_emails)
    pulumi.export("message_dead_letter_subscriptions", messaging.dead_letter_paths)
    for topic_id in config.message_topics:
        if not any(s.topic == topic_id for s in config.message_subscriptions):
            pulumi.log.warn(
                f"No message_subscriptions entry on topic {topic_id}: Pub/Sub drops what is "
                "published to a topic without a subscription, so its messages are lost until "
                "one is attached (here or by your own services)."
            )

if config.image is None:
    next_step = registry.url.apply(
        lambda url: (
            "No `image` is configured, so only the foundation was created. Run `make image` "
            f"(it builds the image into {url}/gateway and sets `image`), then run "
            "`pulumi up` again to create the Cloud Run services, the refresh job and the alerts."
        )
    )
    pulumi.log.warn(
        "No `image` is configured: creating the foundation only (no Cloud Run services, "
        "refresh job or alerts). Run `make image`, then `pulumi up` again."
    )
    pulumi.export("next_step", next_step)
else:
    if "@sha256:" not in config.image:
        pulumi.log.warn(
            f"`image` is the tag {config.image.rpartition(':')[2]!r}, not a digest: a tag can "
            "be built again, and setting the same value again rolls out nothing. `make image` "
            "pins the image by the digest it pushed."
        )
    public_base = public_base_url(
        config.public_domain,
        project_number.apply(
            lambda number: deterministic_url(names.public_service, number, config.region)
        ),
    )
    services = GatewayServices(
        "services",
        config,
        image=config.image,
        runtime_account=accounts.runtime,
        database_name=database.database_name,
        public_base_url=public_base,
        secrets=secrets.stored,
        network=network,
        depends_on=[
            apis,
            *secrets.access_grants,
            *accounts.runtime_project_roles,
            *(messaging.publisher_grants if messaging else []),
            shards.publisher_grant,
        ],
    )
    # The sweep's shards, pushed to the internal service with the push account's token.
    sweep_delivery = ShardDelivery(
        "sweep-delivery",
        config,
        shards=shards,
        internal_service=services.internal,
        audience=services.internal_audience,
        depends_on=[apis],
    )
    pulumi.export("sweep_push_account", sweep_delivery.account.email)
    if config.public_domain is not None:
        # The load balancer and Cloud Armor in front of the public service.
        entry = PublicEntry(
            "public-domain", config, public_service=services.public, depends_on=[apis]
        )
        # Create this record at the domain's DNS provider; the certificate then provisions.
        pulumi.export("public_domain_dns_record", entry.dns_record)
        pulumi.export("public_domain_address", entry.ip_address)
        pulumi.export("public_domain_certificate", entry.certificate_name)
    schedule = RefreshSchedule(
        "refresh",
        config,
        internal_service=services.internal,
        scheduler_account=accounts.scheduler,
        audience=services.internal_audience,
        depends_on=[apis],
    )
    GatewayAlerts(
        "alerts",
        config,
        metrics=log_metrics,
        dead_letter_subscriptions=[
            *(names.dead_letter_subscription(topic) for topic in config.message_topics),
            names.dead_letter_subscription(names.shard_topic),
        ],
        depends_on=[apis],
    )
    urls = AuthorizationUrls(public_base, config.appids)
    pulumi.export("authorization_event_urls", urls.event_urls)
    pulumi.export("message_event_urls", urls.message_urls)
    pulumi.export("authorization_entry_urls", urls.entry_urls)
    pulumi.export("authorization_callback_urls", urls.callback_urls)
    pulumi.export("authorization_domain", urls.domain)
    # Where the public service answers from the internet: the domain when there is one (its
    # run.app URL then takes traffic from the load balancer only).
    pulumi.export("public_url", public_base if config.public_domain else services.public.uri)
    pulumi.export("internal_url", services.internal.uri)
    # What callers of the internal service ask their ID tokens for (its deterministic URL).
    pulumi.export("internal_audience", services.internal_audience)
    pulumi.export("scheduler_job", schedule.job.name)
