"""The fan-out sweep's queue: shards of due authorizers, pushed to the internal service.

Cloud Scheduler's ``POST /tasks/refresh`` (infra/refresh_schedule.py) finds the due
authorizers and, with ``SWEEP_MODE=fanout``, publishes them in shards of
``SWEEP_SHARD_SIZE`` to ``<prefix>-refresh-shards``. Pub/Sub pushes each shard to the
internal service's ``/tasks/refresh-shard``, so the shards spread over up to
``sweep_max_instances`` instances, each renewing ``SWEEP_CONCURRENCY`` at a time:

- ``ShardTopic`` (foundation, before the service publishes): the topic, on which the runtime
  account may publish (``roles/pubsub.publisher`` on this topic only), and
  ``<prefix>-refresh-shards-dead-letter``, a topic and a pull subscription of that name that
  keeps what could not be delivered for 7 days and never expires;
- ``ShardDelivery`` (with the services): the push subscription, with an OIDC token of its own
  account ``<prefix>-sweep`` (``roles/run.invoker`` on the internal service, and in its
  INTERNAL_INVOKERS) for the internal service's audience; an ack deadline of
  ``sweep_ack_deadline`` (a shard's whole time: the push's answer is its acknowledgement),
  backoff from 10 to 600 s, and dead letters after ``SHARD_DELIVERY_ATTEMPTS``.

A shard delivered twice costs nothing but time: each authorizer's lease (service/leases.py)
lets one refresher act, and a shard's renewed tokens are no longer due. A dead-lettered
shard is not a lost merchant either: its authorizers stay due and the next sweep publishes
them again; the ``dead-letters`` alert (infra/alerts.py) says a shard keeps failing.

The Pub/Sub service agent gets the grants infra/messaging.py explains (publisher on the
dead-letter topic, subscriber on the push subscription, token creator on the push account).
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_gcp as gcp

from infra.config import GatewayConfig
from infra.messaging import (
    PushDelivery,
    dead_lettered_topic,
    pubsub_agent_member,
    push_subscription,
)
from infra.names import ResourceNames

SHARD_PATH = "/tasks/refresh-shard"
INVOKER_ROLE = "roles/run.invoker"
# Pub/Sub's least: a shard that fails 5 times in a row (10 s, 20 s, ... apart) fails for a
# reason a retry will not fix; its authorizers are due again at the next sweep anyway.
SHARD_DELIVERY_ATTEMPTS = 5
SHARD_MINIMUM_BACKOFF = "10s"
SHARD_MAXIMUM_BACKOFF = "600s"


class ShardTopic(pulumi.ComponentResource):
    """The shard topic, its dead letters, and the runtime account's right to publish."""

    def __init__(
        self,
        name: str,
        config: GatewayConfig,
        runtime_account: gcp.serviceaccount.Account,
        project_number: pulumi.Input[str],
        depends_on: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("wcg:gateway:ShardTopic", name, None, opts)
        names = ResourceNames(config.name_prefix)
        self.agent = pubsub_agent_member(project_number)
        self.queue = dead_lettered_topic(
            self,
            config,
            names.shard_topic,
            ("shards", "shards-dead-letter"),
            runtime_account.member,
            self.agent,
            depends_on,
        )
        self.topic = self.queue.topic
        # The service waits for this before its first start: the sweep publishes at once.
        self.publisher_grant = self.queue.publisher_grant
        self.dead_letter_subscription = self.queue.dead_letter_subscription
        self.register_outputs(
            {"topic": self.topic.id, "dead_letter_subscription": self.dead_letter_subscription.id}
        )


class ShardDelivery(pulumi.ComponentResource):
    """The push subscription to the internal service's /tasks/refresh-shard, and its account."""

    def __init__(
        self,
        name: str,
        config: GatewayConfig,
        shards: ShardTopic,
        internal_service: gcp.cloudrunv2.Service,
        audience: pulumi.Input[str],
        depends_on: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("wcg:gateway:ShardDelivery", name, None, opts)
        names = ResourceNames(config.name_prefix)
        project = config.project
        first = pulumi.ResourceOptions(parent=self, depends_on=list(depends_on))
        self.account = gcp.serviceaccount.Account(
            "sweep-push",
            project=project,
            account_id=names.sweep_push_account,
            display_name="WeChat component gateway (Pub/Sub, pushes the sweep's shards)",
            opts=first,
        )
        # The account's one grant: invoking the internal service.
        self.invoker = gcp.cloudrunv2.ServiceIamMember(
            "sweep-push-invoker",
            project=project,
            location=internal_service.location,
            name=internal_service.name,
            role=INVOKER_ROLE,
            member=self.account.member,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.subscription = push_subscription(
            self,
            project,
            ("shards-push", "sweep-push"),
            names.shard_topic,
            shards.queue,
            self.account,
            shards.agent,
            PushDelivery(
                # The deterministic URL is one of the service's own: known before it exists.
                endpoint=pulumi.Output.from_input(audience).apply(lambda url: f"{url}{SHARD_PATH}"),
                # What the internal service checks (INTERNAL_AUDIENCE).
                audience=audience,
                # The push's answer acknowledges the shard: a whole shard's time.
                ack_deadline=config.sweep_ack_deadline,
                minimum_backoff=SHARD_MINIMUM_BACKOFF,
                maximum_backoff=SHARD_MAXIMUM_BACKOFF,
                max_delivery_attempts=SHARD_DELIVERY_ATTEMPTS,
            ),
            # No push before it may invoke the service.
            depends_on=[self.invoker, *depends_on],
        )
        self.register_outputs(
            {"subscription": self.subscription.id, "account_email": self.account.email}
        )
