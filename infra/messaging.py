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
        agent = pulumi.Output.from_input(project_number).apply(
            lambda number: f"serviceAccount:{pubsub_service_agent(number)}"
        )
        first = pulumi.ResourceOptions(parent=self, depends_on=list(depends_on))

        self.topics: dict[str, gcp.pubsub.Topic] = {}
        self.dead_letter_topics: dict[str, gcp.pubsub.Topic] = {}
        self.dead_letter_subscriptions: dict[str, gcp.pubsub.Subscription] = {}
        # The runtime account's grants: the services wait for them before their first start.
        self.publisher_grants: list[gcp.pubsub.TopicIAMMember] = []
        dead_letter_grants: dict[str, gcp.pubsub.TopicIAMMember] = {}
        for topic_id in config.message_topics:
            topic = gcp.pubsub.Topic(
                f"topic-{topic_id}", project=project, name=topic_id, opts=first
            )
            self.topics[topic_id] = topic
            self.publisher_grants.append(
                gcp.pubsub.TopicIAMMember(
                    f"topic-{topic_id}-publisher-runtime",
                    project=project,
                    topic=topic.name,
                    role=PUBLISHER,
                    member=runtime_account.member,
                    opts=pulumi.ResourceOptions(parent=self),
                )
            )
            dead_letter = gcp.pubsub.Topic(
                f"dead-letter-{topic_id}",
                project=project,
                name=names.dead_letter_topic(topic_id),
                opts=first,
            )
            self.dead_letter_topics[topic_id] = dead_letter
            # Messages published to a topic without a subscription are lost: this one keeps
            # them, to be read (and acknowledged, or replayed) by an operator.
            self.dead_letter_subscriptions[topic_id] = gcp.pubsub.Subscription(
                f"dead-letter-{topic_id}",
                project=project,
                name=names.dead_letter_subscription(topic_id),
                topic=dead_letter.id,
                message_retention_duration=DEAD_LETTER_RETENTION,
                expiration_policy=gcp.pubsub.SubscriptionExpirationPolicyArgs(ttl=NEVER_EXPIRE),
                opts=pulumi.ResourceOptions(parent=self),
            )
            dead_letter_grants[topic_id] = gcp.pubsub.TopicIAMMember(
                f"dead-letter-{topic_id}-publisher-pubsub-agent",
                project=project,
                topic=dead_letter.name,
                role=PUBLISHER,
                member=agent,
                opts=pulumi.ResourceOptions(parent=self),
            )

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
            token_creator = gcp.serviceaccount.IAMMember(
                f"push-{entry.name}-token-creator-pubsub-agent",
                service_account_id=account.name,
                role=TOKEN_CREATOR,
                member=agent,
                opts=pulumi.ResourceOptions(parent=self),
            )
            subscription = gcp.pubsub.Subscription(
                f"subscription-{entry.name}",
                project=project,
                name=entry.name,
                topic=self.topics[entry.topic].id,
                # For a push subscription: how long the endpoint has to answer.
                ack_deadline_seconds=entry.ack_deadline,
                filter=entry.filter,
                push_config=gcp.pubsub.SubscriptionPushConfigArgs(
                    push_endpoint=entry.push_endpoint,
                    oidc_token=gcp.pubsub.SubscriptionPushConfigOidcTokenArgs(
                        service_account_email=account.email,
                        audience=entry.audience,
                    ),
                ),
                retry_policy=gcp.pubsub.SubscriptionRetryPolicyArgs(
                    minimum_backoff=f"{entry.minimum_backoff}s",
                    maximum_backoff=f"{entry.maximum_backoff}s",
                ),
                dead_letter_policy=gcp.pubsub.SubscriptionDeadLetterPolicyArgs(
                    dead_letter_topic=self.dead_letter_topics[entry.topic].id,
                    max_delivery_attempts=entry.max_delivery_attempts,
                ),
                expiration_policy=gcp.pubsub.SubscriptionExpirationPolicyArgs(ttl=NEVER_EXPIRE),
                # No delivery before a dead letter can be forwarded and kept, and before the
                # push identity's token can be made.
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=[
                        self.dead_letter_subscriptions[entry.topic],
                        dead_letter_grants[entry.topic],
                        token_creator,
                    ],
                ),
            )
            self.subscriptions[entry.name] = subscription
            gcp.pubsub.SubscriptionIAMMember(
                f"subscription-{entry.name}-subscriber-pubsub-agent",
                project=project,
                subscription=subscription.name,
                role=SUBSCRIBER,
                member=agent,
                opts=pulumi.ResourceOptions(parent=self),
            )

        self.topic_paths = {topic_id: topic.id for topic_id, topic in self.topics.items()}
        self.account_emails = {name: a.email for name, a in self.push_accounts.items()}
        self.dead_letter_paths = {
            topic_id: s.id for topic_id, s in self.dead_letter_subscriptions.items()
        }
        self.register_outputs(
            {
                "topics": self.topic_paths,
                "subscription_accounts": self.account_emails,
                "dead_letter_subscriptions": self.dead_letter_paths,
            }
        )
