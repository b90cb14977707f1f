"""Pub/Sub delivery: route topics, dead letters, push subscriptions, their grants and the
MESSAGE_ROUTES the public service reads."""

from __future__ import annotations

import json
import re

from infra.apis import PUBSUB_API
from infra.names import ACCOUNT_ID, ResourceNames
from service.config import Settings
from service.routes import parse_routes
from tests.infra.conftest import MESSAGE_ROUTES, MESSAGE_SUBSCRIPTIONS
from tests.infra.pulumi_mocks import (
    GCP_PROJECT,
    PROJECT_NUMBER,
    Deployment,
    Registration,
    base_config,
    run_program,
)
from tests.infra.test_services import resolved_env

TOPIC = "gcp:pubsub/topic:Topic"
SUBSCRIPTION = "gcp:pubsub/subscription:Subscription"
TOPIC_GRANT = "gcp:pubsub/topicIAMMember:TopicIAMMember"
SUBSCRIPTION_GRANT = "gcp:pubsub/subscriptionIAMMember:SubscriptionIAMMember"
ACCOUNT_GRANT = "gcp:serviceaccount/iAMMember:IAMMember"
ACCOUNT = "gcp:serviceaccount/account:Account"
SERVICE = "gcp:cloudrunv2/service:Service"
POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
AGENT = f"serviceAccount:service-{PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"
RUNTIME = f"serviceAccount:wcg-dev-runtime@{GCP_PROJECT}.iam.gserviceaccount.com"
ROUTE_TOPICS = {"wechat-events", "wechat-messages"}
PUSH_TYPES = {TOPIC, SUBSCRIPTION, TOPIC_GRANT, SUBSCRIPTION_GRANT, ACCOUNT_GRANT}


def path(kind: str, name: str) -> str:
    return f"projects/{GCP_PROJECT}/{kind}/{name}"


def push_subscriptions(run: Deployment) -> dict[str, Registration]:
    return {
        s.inputs["name"]: s
        for s in run.outside_sweep_queue(SUBSCRIPTION)
        if "pushConfig" in s.inputs
    }


def account_email(subscription: str) -> str:
    account_id = ResourceNames("wcg-dev").push_account(subscription)
    return f"{account_id}@{GCP_PROJECT}.iam.gserviceaccount.com"


def test_each_route_topic_and_its_dead_letter_topic(messaging: Deployment) -> None:
    topics = {t.inputs["name"] for t in messaging.outside_sweep_queue(TOPIC)}
    # wechat-messages is named twice (by id and by its path in the project): one topic.
    assert topics == ROUTE_TOPICS | {f"{t}-dead-letter" for t in ROUTE_TOPICS}
    for topic in messaging.of_type(TOPIC):
        assert topic.inputs["project"] == GCP_PROJECT


def test_dead_letters_are_kept_and_never_expire(messaging: Deployment) -> None:
    kept = {s.inputs["name"]: s for s in messaging.of_type(SUBSCRIPTION)}
    for topic in ROUTE_TOPICS:
        subscription = kept[f"{topic}-dead-letter"]
        assert subscription.inputs["topic"] == path("topics", f"{topic}-dead-letter")
        assert "pushConfig" not in subscription.inputs  # pulled by whoever reads them
        assert subscription.inputs["messageRetentionDuration"] == "604800s"  # 7 days
        assert subscription.inputs["expirationPolicy"] == {"ttl": ""}


def test_one_push_subscription_per_entry(messaging: Deployment) -> None:
    subscriptions = push_subscriptions(messaging)
    assert set(subscriptions) == {s["name"] for s in MESSAGE_SUBSCRIPTIONS}
    for entry in MESSAGE_SUBSCRIPTIONS:
        inputs = subscriptions[entry["name"]].inputs
        assert inputs["topic"] == path("topics", entry["topic"])
        push = inputs["pushConfig"]
        assert push["pushEndpoint"] == entry["push_endpoint"]
        # The token is its own account's, for the endpoint unless an audience is given.
        assert push["oidcToken"] == {
            "serviceAccountEmail": account_email(entry["name"]),
            "audience": entry.get("audience", entry["push_endpoint"]),
        }
        assert inputs["deadLetterPolicy"] == {
            "deadLetterTopic": path("topics", f"{entry['topic']}-dead-letter"),
            "maxDeliveryAttempts": entry.get("max_delivery_attempts", 10),
        }
        assert inputs["retryPolicy"] == {
            "minimumBackoff": f"{entry.get('minimum_backoff', 10)}s",
            "maximumBackoff": f"{entry.get('maximum_backoff', 600)}s",
        }
        assert inputs["ackDeadlineSeconds"] == entry.get("ack_deadline", 30)
        assert inputs.get("filter") == entry.get("filter")
        assert inputs["expirationPolicy"] == {"ttl": ""}
    assert subscriptions["orders"].inputs["filter"] == 'attributes.msg_type = "text"'


def test_each_subscription_has_an_account_of_its_own(messaging: Deployment) -> None:
    emails = [
        s.inputs["pushConfig"]["oidcToken"]["serviceAccountEmail"]
        for s in push_subscriptions(messaging).values()
    ]
    assert len(set(emails)) == len(MESSAGE_SUBSCRIPTIONS)
    accounts = {a.state["email"] for a in messaging.outside_sweep_queue(ACCOUNT)}
    assert set(emails) <= accounts
    assert RUNTIME.removeprefix("serviceAccount:") not in emails


def test_push_account_ids_are_valid_and_distinct() -> None:
    names = ResourceNames("wcg-production")  # the longest prefix there may be
    subscriptions = ["orders", "Orders", "orders.v2", "crm_sync", "a" * 255, "a" * 254 + "b"]
    ids = [names.push_account(s) for s in subscriptions]
    assert ids[0] == "wcg-production-push-orders"
    assert len(set(ids)) == len(ids)
    for account_id in ids:
        assert ACCOUNT_ID.match(account_id) and len(account_id) <= 30, account_id
    assert ResourceNames("wcg-dev").push_account("orders") == "wcg-dev-push-orders"


def test_the_runtime_account_publishes_to_the_route_topics_only(messaging: Deployment) -> None:
    grants = [
        g for g in messaging.outside_sweep_queue() if g.custom and g.inputs.get("member") == RUNTIME
    ]
    pubsub = [g for g in grants if "pubsub" in g.type]
    assert {(g.type, g.inputs["topic"], g.inputs["role"]) for g in pubsub} == {
        (TOPIC_GRANT, topic, "roles/pubsub.publisher") for topic in ROUTE_TOPICS
    }
    assert len(pubsub) == len(ROUTE_TOPICS)
    project_roles = {
        g.inputs["role"] for g in grants if g.type == "gcp:projects/iAMMember:IAMMember"
    }
    assert project_roles == {"roles/datastore.user"}  # no project-wide Pub/Sub role


def test_the_pubsub_service_agent_forwards_dead_letters_and_signs_tokens(
    messaging: Deployment,
) -> None:
    agent = [
        g for g in messaging.outside_sweep_queue() if g.custom and g.inputs.get("member") == AGENT
    ]
    on_topics = {(g.inputs["topic"], g.inputs["role"]) for g in agent if g.type == TOPIC_GRANT}
    assert on_topics == {(f"{t}-dead-letter", "roles/pubsub.publisher") for t in ROUTE_TOPICS}
    on_subscriptions = {
        (g.inputs["subscription"], g.inputs["role"]) for g in agent if g.type == SUBSCRIPTION_GRANT
    }
    assert on_subscriptions == {
        (s["name"], "roles/pubsub.subscriber") for s in MESSAGE_SUBSCRIPTIONS
    }
    # Token Creator on each push account (projects whose agent predates April 8, 2021),
    # on those accounts alone: never on the project.
    on_accounts = {
        (g.inputs["serviceAccountId"], g.inputs["role"]) for g in agent if g.type == ACCOUNT_GRANT
    }
    assert on_accounts == {
        (path("serviceAccounts", account_email(s["name"])), "roles/iam.serviceAccountTokenCreator")
        for s in MESSAGE_SUBSCRIPTIONS
    }
    assert len(agent) == len(on_topics) + len(on_subscriptions) + len(on_accounts)


def test_a_subscription_starts_once_its_dead_letters_are_kept(messaging: Deployment) -> None:
    by_name = {r.name: r for r in messaging.resources}
    for entry in MESSAGE_SUBSCRIPTIONS:
        subscription = by_name[f"subscription-{entry['name']}"]
        for needed in (
            f"dead-letter-{entry['topic']}-publisher-pubsub-agent",
            f"push-{entry['name']}-token-creator-pubsub-agent",
        ):
            assert by_name[needed].urn in subscription.dependencies, needed
        kept = messaging.named(SUBSCRIPTION, f"{entry['topic']}-dead-letter")
        assert kept.urn in subscription.dependencies


def test_the_public_service_gets_the_routes(messaging: Deployment) -> None:
    public = messaging.named(SERVICE, "wcg-dev-public")
    env = resolved_env(messaging, public)
    assert json.loads(env["MESSAGE_ROUTES"]) == MESSAGE_ROUTES
    # The service's own parser reads them, in order.
    routes = parse_routes(env["MESSAGE_ROUTES"])
    assert [r.name for r in routes] == [r["name"] for r in MESSAGE_ROUTES]
    Settings.from_env(env)  # and its settings accept the whole environment
    internal = messaging.named(SERVICE, "wcg-dev-internal")
    assert "MESSAGE_ROUTES" not in resolved_env(messaging, internal)


def test_the_services_start_after_the_publisher_grants(messaging: Deployment) -> None:
    grants = [g for g in messaging.of_type(TOPIC_GRANT) if g.inputs["member"] == RUNTIME]
    assert len(grants) == len(ROUTE_TOPICS) + 1  # and the sweep's shard topic
    for name in ("wcg-dev-public", "wcg-dev-internal"):
        service = messaging.named(SERVICE, name)
        for grant in grants:
            assert grant.urn in service.dependencies, (name, grant.name)


def test_outputs(messaging: Deployment) -> None:
    out = messaging.outputs
    assert out["message_topics"] == {t: path("topics", t) for t in ROUTE_TOPICS}
    assert out["message_subscription_accounts"] == {
        s["name"]: account_email(s["name"]) for s in MESSAGE_SUBSCRIPTIONS
    }
    assert out["message_dead_letter_subscriptions"] == {
        t: path("subscriptions", f"{t}-dead-letter") for t in ROUTE_TOPICS
    }
    assert messaging.warnings == []  # every topic has a subscription


def test_the_pubsub_api_waits_for_nothing_and_everything_waits_for_it(
    messaging: Deployment,
) -> None:
    (api,) = [
        a
        for a in messaging.of_type("gcp:projects/service:Service")
        if a.inputs["service"] == PUBSUB_API
    ]
    assert api.inputs["disableOnDestroy"] is False
    for resource in messaging.resources:
        if resource.custom and resource.type in PUSH_TYPES | {ACCOUNT}:
            assert messaging.depends_on(resource, api), resource.name


def test_dead_letters_alert(messaging: Deployment) -> None:
    policy = messaging.one(POLICY, lambda p: p.name == "dead-letters")
    (condition,) = policy.inputs["conditions"]
    rule = condition["conditionThreshold"]
    query = rule["filter"]
    assert 'metric.type="pubsub.googleapis.com/subscription/num_undelivered_messages"' in query
    assert set(re.findall(r'subscription_id="([^"]+)"', query)) == {
        f"{t}-dead-letter" for t in ROUTE_TOPICS | {"wcg-dev-refresh-shards"}
    }
    assert (rule["comparison"], rule["thresholdValue"]) == ("COMPARISON_GT", 0)
    channel = messaging.one("gcp:monitoring/notificationChannel:NotificationChannel")
    assert policy.inputs["notificationChannels"] == [channel.state["name"]]
    assert "gcloud pubsub subscriptions pull" in policy.inputs["documentation"]["content"]


def test_without_routes_nothing_is_added(deployment: Deployment) -> None:
    types = {r.type for r in deployment.outside_sweep_queue()}
    assert not types & PUSH_TYPES
    for name in ("wcg-dev-public", "wcg-dev-internal"):
        assert "MESSAGE_ROUTES" not in resolved_env(deployment, deployment.named(SERVICE, name))
    assert not {
        k for k in deployment.outputs if k.startswith("message_") and k != "message_event_urls"
    }
    # The dead-letter alert watches the sweep's shards alone.
    policy = deployment.one(POLICY, lambda p: p.name == "dead-letters")
    query = policy.inputs["conditions"][0]["conditionThreshold"]["filter"]
    assert re.findall(r'subscription_id="([^"]+)"', query) == ["wcg-dev-refresh-shards-dead-letter"]


def test_reply_routes_alone_need_no_topic() -> None:
    routes = [MESSAGE_ROUTES[0]]
    run = run_program(base_config(message_routes=json.dumps(routes)))
    assert not {r.type for r in run.outside_sweep_queue()} & PUSH_TYPES
    env = resolved_env(run, run.named(SERVICE, "wcg-dev-public"))
    assert json.loads(env["MESSAGE_ROUTES"]) == routes


def test_topics_come_with_the_foundation_and_a_topic_nobody_reads_is_said() -> None:
    run = run_program(base_config(image=None, message_routes=json.dumps(MESSAGE_ROUTES[1:3])))
    assert {t.inputs["name"] for t in run.of_type(TOPIC)} >= ROUTE_TOPICS
    assert not run.of_type(SERVICE)
    assert set(run.outputs["message_topics"]) == ROUTE_TOPICS
    assert run.outputs["message_subscription_accounts"] == {}
    for topic in ROUTE_TOPICS:
        assert any(topic in w and "lost" in w for w in run.warnings), run.warnings
