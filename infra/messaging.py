"""Pub/Sub delivery of WeChat's pushes: the route topics, their dead letters, push subscriptions.

The public service publishes each push to the topic its route names (``MESSAGE_ROUTES``,
``service/routes.py``) and answers WeChat once Pub/Sub has the message; from there Pub/Sub
retries, backs off and dead-letters. For each topic a ``pubsub`` route names:

- the topic, on which the runtime account may publish (``roles/pubsub.publisher`` on that
  topic only: no project-wide Pub/Sub role);
- ``<topic>-dead-letter``, a topic and a pull subscription of the same name that keeps its
  messages for 7 days (Pub/Sub's default retention: a weekend and an alert's reaction time,
  while a message holding a user's words is kept no longer than that) and never expires
  (a subscription nobody reads would otherwise be deleted after 31 idle days).

For each ``message_subscriptions`` entry: a service account of its own, whose ID token each
push carries (the provider grants it ``roles/run.invoker`` on their service: this program
cannot), and a push subscription with its retry and dead-letter policies.

The Pub/Sub service agent (``service-<project number>@gcp-sa-pubsub.iam.gserviceaccount.com``)
forwards dead letters and signs the pushes' ID tokens, with these grants, each on one resource:

- ``roles/pubsub.publisher`` on each dead-letter topic and ``roles/pubsub.subscriber`` on each
  push subscription, as the DeadLetterPolicy reference requires (it publishes the message to
  the dead-letter topic and acknowledges it on the source subscription);
- ``roles/iam.serviceAccountTokenCreator`` on each push account: Google's guides ask for it
  when the project's Pub/Sub service agent was created on or before April 8, 2021 (and lacks
  ``roles/pubsub.serviceAgent``); this program cannot tell when it was, so it grants it on
  those accounts alone, which suffices then and changes nothing in a newer project.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.config import GatewayConfig
from infra.names import ResourceNames

PUBLISHER = "roles/pubsub.publisher"
SUBSCRIBER = "roles/pubsub.subscriber"
TOKEN_CREATOR = "roles/iam.serviceAccountTokenCreator"
DEAD_LETTER_RETENTION = "604800s"  # 7 days
NEVER_EXPIRE = ""  # an expiration policy with an empty ttl: the subscription never expires


def pubsub_service_agent(project_number: str) -> str:
    """The Pub/Sub service agent's email, which Google derives from the project number."""
    return f"service-{project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"


def pubsub_agent_member(project_number: pulumi.Input[str]) -> pulumi.Output[str]:
    """The Pub/Sub service agent as an IAM member (``serviceAccount:...``)."""
    return pulumi.Output.from_input(project_number).apply(
        lambda number: f"serviceAccount:{pubsub_service_agent(number)}"
    )


@dataclass(frozen=True)
class DeadLetteredTopic:
    """A topic the runtime account may publish to, and its dead letters, kept 7 days."""

    topic: gcp.pubsub.Topic
    publisher_grant: gcp.pubsub.TopicIAMMember
    dead_letter_topic: gcp.pubsub.Topic
    dead_letter_subscription: gcp.pubsub.Subscription
    dead_letter_grant: gcp.pubsub.TopicIAMMember


def dead_lettered_topic(
    parent: pulumi.Resource,
    config: GatewayConfig,
    topic_id: str,
    keys: tuple[str, str],
    publisher: pulumi.Input[str],
    agent: pulumi.Input[str],
    depends_on: Sequence[pulumi.Resource] = (),
) -> DeadLetteredTopic:
    """``keys``: the Pulumi names of the topic and of its dead letters (the grants' follow)."""
    key, dead_key = keys
    names = ResourceNames(config.name_prefix)
    first = pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on))
    child = pulumi.ResourceOptions(parent=parent)
    topic = gcp.pubsub.Topic(key, project=config.project, name=topic_id, opts=first)
    dead_letter = gcp.pubsub.Topic(
        dead_key, project=config.project, name=names.dead_letter_topic(topic_id), opts=first
    )
    return DeadLetteredTopic(
        topic=topic,
        publisher_grant=gcp.pubsub.TopicIAMMember(
            f"{key}-publisher-runtime",
            project=config.project,
            topic=topic.name,
            role=PUBLISHER,
            member=publisher,
            opts=child,
        ),
        dead_letter_topic=dead_letter,
        # Messages published to a topic without a subscription are lost: this one keeps
        # them, to be read (and acknowledged, or replayed) by an operator.
        dead_letter_subscription=gcp.pubsub.Subscription(
            dead_key,
            project=config.project,
            name=names.dead_letter_subscription(topic_id),
            topic=dead_letter.id,
            message_retention_duration=DEAD_LETTER_RETENTION,
            expiration_policy=gcp.pubsub.SubscriptionExpirationPolicyArgs(ttl=NEVER_EXPIRE),
            opts=child,
        ),
        dead_letter_grant=gcp.pubsub.TopicIAMMember(
            f"{dead_key}-publisher-pubsub-agent",
            project=config.project,
            topic=dead_letter.name,
            role=PUBLISHER,
            member=agent,
            opts=child,
        ),
    )


@dataclass(frozen=True)
class PushDelivery:
    """Where and how a push subscription delivers (the rest is the same for every one)."""

    endpoint: pulumi.Input[str]
    audience: pulumi.Input[str]
    ack_deadline: int
    minimum_backoff: str
    maximum_backoff: str
    max_delivery_attempts: int
    filter: str | None = None


def push_subscription(
    parent: pulumi.Resource,
    project: str,
    keys: tuple[str, str],
    name: str,
    topic: DeadLetteredTopic,
    account: gcp.serviceaccount.Account,
    agent: pulumi.Input[str],
    delivery: PushDelivery,
    depends_on: Sequence[pulumi.Resource] = (),
) -> gcp.pubsub.Subscription:
    """A push subscription with ``account``'s OIDC token, its retry and dead-letter policies,
    and the Pub/Sub service agent's grants it needs. ``keys``: the Pulumi names of the
    subscription and of the push account (the grants' follow)."""
    key, account_key = keys
    child = pulumi.ResourceOptions(parent=parent)
    token_creator = gcp.serviceaccount.IAMMember(
        f"{account_key}-token-creator-pubsub-agent",
        service_account_id=account.name,
        role=TOKEN_CREATOR,
        member=agent,
        opts=child,
    )
    subscription = gcp.pubsub.Subscription(
        key,
        project=project,
        name=name,
        topic=topic.topic.id,
        # For a push subscription: how long the endpoint has to answer.
        ack_deadline_seconds=delivery.ack_deadline,
        filter=delivery.filter,
        push_config=gcp.pubsub.SubscriptionPushConfigArgs(
            push_endpoint=delivery.endpoint,
            oidc_token=gcp.pubsub.SubscriptionPushConfigOidcTokenArgs(
                service_account_email=account.email,
                audience=delivery.audience,
            ),
        ),
        retry_policy=gcp.pubsub.SubscriptionRetryPolicyArgs(
            minimum_backoff=delivery.minimum_backoff,
            maximum_backoff=delivery.maximum_backoff,
        ),
        dead_letter_policy=gcp.pubsub.SubscriptionDeadLetterPolicyArgs(
            dead_letter_topic=topic.dead_letter_topic.id,
            max_delivery_attempts=delivery.max_delivery_attempts,
        ),
        expiration_policy=gcp.pubsub.SubscriptionExpirationPolicyArgs(ttl=NEVER_EXPIRE),
        # No delivery before a dead letter can be forwarded and kept, and before the push
        # identity's token can be made.
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=[
                topic.dead_letter_subscription,
                topic.dead_letter_grant,
                token_creator,
                *depends_on,
            ],
        ),
    )
    gcp.pubsub.SubscriptionIAMMember(
        f"{key}-subscriber-pubsub-agent",
        project=project,
        subscription=subscription.name,
        role=SUBSCRIBER,
        member=agent,
        opts=child,
    )
    return subscription


class MessageDelivery(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        config: GatewayConfig,
        runtime_account: gcp.serviceaccount.Account,
        project_number: pulumi.Input[str],
        depends_on: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("wcg:gateway:MessageDelivery", name, None, opts)
        names = ResourceNames(config.name_prefix)
        project = config.project
        agent = pubsub_agent_member(project_number)
        first = pulumi.ResourceOptions(parent=self, depends_on=list(depends_on))

        self.topics: dict[str, DeadLetteredTopic] = {
            topic_id: dead_lettered_topic(
                self,
                config,
                topic_id,
                (f"topic-{topic_id}", f"dead-letter-{topic_id}"),
                runtime_account.member,
                agent,
                depends_on,
            )
            for topic_id in config.message_topics
        }
        # The runtime account's grants: the services wait for them before their first start.
        self.publisher_grants = [t.publisher_grant for t in self.topics.values()]

        self.push_accounts: dict[str, gcp.serviceaccount.Account] = {}
        self.subscriptions: dict[str, gcp.pubsub.Subscription] = {}
        for entry in config.message_subscriptions:
            account = gcp.serviceaccount.Account(
                f"push-{entry.name}",
                project=project,
                account_id=names.push_account(entry.name),
                display_name=f"Pub/Sub push identity of subscription {entry.name}"[:100],
                opts=first,
            )
            self.push_accounts[entry.name] = account
            self.subscriptions[entry.name] = push_subscription(
                self,
                project,
                (f"subscription-{entry.name}", f"push-{entry.name}"),
                entry.name,
                self.topics[entry.topic],
                account,
                agent,
                PushDelivery(
                    endpoint=entry.push_endpoint,
                    audience=entry.audience,
                    ack_deadline=entry.ack_deadline,
                    minimum_backoff=f"{entry.minimum_backoff}s",
                    maximum_backoff=f"{entry.maximum_backoff}s",
                    max_delivery_attempts=entry.max_delivery_attempts,
                    filter=entry.filter,
                ),
            )

        self.topic_paths = {topic_id: t.topic.id for topic_id, t in self.topics.items()}
        self.account_emails = {name: a.email for name, a in self.push_accounts.items()}
        self.dead_letter_paths = {
            topic_id: t.dead_letter_subscription.id for topic_id, t in self.topics.items()
        }
        self.register_outputs(
            {
                "topics": self.topic_paths,
                "subscription_accounts": self.account_emails,
                "dead_letter_subscriptions": self.dead_letter_paths,
            }
        )
