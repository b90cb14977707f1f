"""The fan-out sweep's queue: the shard topic, its dead letters, the push subscription to the
internal service's /tasks/refresh-shard with its own account's OIDC token, the grants, the
service's environment and the fleet's limits from the stack's config."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask

from infra.config import ConfigError, parse_config
from infra.sweep_queue import SHARD_DELIVERY_ATTEMPTS, SHARD_PATH
from service.config import Settings
from service.web.tasks import bp as tasks_blueprint
from tests.infra.pulumi_mocks import (
    GCP_PROJECT,
    PROJECT_NUMBER,
    Deployment,
    Registration,
    base_config,
    full,
    run_program,
)
from tests.infra.test_messaging import (
    ACCOUNT,
    ACCOUNT_GRANT,
    AGENT,
    POLICY,
    SERVICE,
    SUBSCRIPTION,
    SUBSCRIPTION_GRANT,
    TOPIC,
    TOPIC_GRANT,
)
from tests.infra.test_services import resolved_env

RUN_GRANT = "gcp:cloudrunv2/serviceIamMember:ServiceIamMember"

SHARDS = "wcg-dev-refresh-shards"
DEAD = f"{SHARDS}-dead-letter"
INTERNAL = "wcg-dev-internal"
AUDIENCE = f"https://{INTERNAL}-{PROJECT_NUMBER}.asia-east2.run.app"
PUSH_EMAIL = f"wcg-dev-sweep@{GCP_PROJECT}.iam.gserviceaccount.com"
RUNTIME = f"serviceAccount:wcg-dev-runtime@{GCP_PROJECT}.iam.gserviceaccount.com"


def path(kind: str, name: str) -> str:
    return f"projects/{GCP_PROJECT}/{kind}/{name}"


def push(run: Deployment) -> Registration:
    return run.one(SUBSCRIPTION, lambda s: s.inputs["name"] == SHARDS)


def test_the_shard_topic_and_its_dead_letters(deployment: Deployment) -> None:
    topics = {t.inputs["name"] for t in deployment.of_type(TOPIC)}
    assert topics == {SHARDS, DEAD}
    kept = deployment.one(SUBSCRIPTION, lambda s: s.inputs["name"] == DEAD)
    assert kept.inputs["topic"] == path("topics", DEAD)
    assert "pushConfig" not in kept.inputs  # pulled by an operator
    assert kept.inputs["messageRetentionDuration"] == "604800s"
    assert kept.inputs["expirationPolicy"] == {"ttl": ""}


def test_shards_are_pushed_to_the_internal_service_with_an_oidc_token(
    deployment: Deployment,
) -> None:
    inputs = push(deployment).inputs
    assert inputs["topic"] == path("topics", SHARDS)
    assert inputs["pushConfig"] == {
        "pushEndpoint": f"{AUDIENCE}{SHARD_PATH}",
        # The account's token, for the audience the internal service checks.
        "oidcToken": {"serviceAccountEmail": PUSH_EMAIL, "audience": AUDIENCE},
    }
    assert inputs["ackDeadlineSeconds"] == 600
    assert inputs["retryPolicy"] == {"minimumBackoff": "10s", "maximumBackoff": "600s"}
    assert inputs["deadLetterPolicy"] == {
        "deadLetterTopic": path("topics", DEAD),
        "maxDeliveryAttempts": SHARD_DELIVERY_ATTEMPTS,
    }
    assert inputs["expirationPolicy"] == {"ttl": ""}
    env = resolved_env(deployment, deployment.named(SERVICE, INTERNAL))
    assert inputs["pushConfig"]["oidcToken"]["audience"] == env["INTERNAL_AUDIENCE"]


def test_the_push_path_is_the_services_shard_route() -> None:
    app = Flask(__name__)
    app.register_blueprint(tasks_blueprint)
    endpoint, _ = app.url_map.bind("gateway.test").match(SHARD_PATH, method="POST")
    assert endpoint == "tasks.refresh_shard"


def test_the_push_account_only_invokes_the_internal_service(deployment: Deployment) -> None:
    member = f"serviceAccount:{PUSH_EMAIL}"
    account = deployment.one(ACCOUNT, lambda a: a.inputs["accountId"] == "wcg-dev-sweep")
    assert account.state["email"] == PUSH_EMAIL
    grants = [r for r in deployment.resources if r.custom and r.inputs.get("member") == member]
    assert [(g.type, g.inputs["name"], g.inputs["role"]) for g in grants] == [
        (RUN_GRANT, INTERNAL, "roles/run.invoker")
    ]
    # And the service takes its tokens: its email is one of INTERNAL_INVOKERS.
    env = resolved_env(deployment, deployment.named(SERVICE, INTERNAL))
    assert PUSH_EMAIL in Settings.from_env(env).internal_invokers
    public = resolved_env(deployment, deployment.named(SERVICE, "wcg-dev-public"))
    assert "INTERNAL_INVOKERS" not in public


def test_the_runtime_account_publishes_to_the_shard_topic_only(deployment: Deployment) -> None:
    grants = [g for g in deployment.of_type(TOPIC_GRANT) if g.inputs["member"] == RUNTIME]
    assert [(g.inputs["topic"], g.inputs["role"]) for g in grants] == [
        (SHARDS, "roles/pubsub.publisher")
    ]
    for name in (INTERNAL, "wcg-dev-public"):  # before the first start
        service = deployment.named(SERVICE, name)
        assert grants[0].urn in service.dependencies


def test_the_pubsub_agent_forwards_dead_shards_and_signs_the_pushes(
    deployment: Deployment,
) -> None:
    agent = [g for g in deployment.resources if g.custom and g.inputs.get("member") == AGENT]
    assert sorted((g.type, g.inputs["role"]) for g in agent) == sorted(
        [
            (TOPIC_GRANT, "roles/pubsub.publisher"),
            (SUBSCRIPTION_GRANT, "roles/pubsub.subscriber"),
            (ACCOUNT_GRANT, "roles/iam.serviceAccountTokenCreator"),
        ]
    )
    by_type = {g.type: g for g in agent}
    assert by_type[TOPIC_GRANT].inputs["topic"] == DEAD
    assert by_type[SUBSCRIPTION_GRANT].inputs["subscription"] == SHARDS
    assert by_type[ACCOUNT_GRANT].inputs["serviceAccountId"] == path("serviceAccounts", PUSH_EMAIL)


def test_no_push_before_it_can_be_accepted_and_dead_lettered(deployment: Deployment) -> None:
    subscription = push(deployment)
    by_name = {r.name: r for r in deployment.resources}
    for needed in (
        "sweep-push-invoker",
        "sweep-push-token-creator-pubsub-agent",
        "shards-dead-letter-publisher-pubsub-agent",
    ):
        assert by_name[needed].urn in subscription.dependencies, needed
    kept = deployment.one(SUBSCRIPTION, lambda s: s.inputs["name"] == DEAD)
    assert kept.urn in subscription.dependencies


def test_the_internal_service_fans_out(deployment: Deployment) -> None:
    env = resolved_env(deployment, deployment.named(SERVICE, INTERNAL))
    assert env["SWEEP_MODE"] == "fanout"
    assert env["SWEEP_SHARD_TOPIC"] == path("topics", SHARDS)
    settings = Settings.from_env(env)  # the service's own reader accepts them
    assert settings.sweep_mode == "fanout"
    assert settings.sweep_shard_topic == path("topics", SHARDS)
    assert (settings.sweep_shard_size, settings.sweep_concurrency) == (200, 16)
    public = resolved_env(deployment, deployment.named(SERVICE, "wcg-dev-public"))
    assert not {key for key in public if key.startswith("SWEEP_")}


def test_the_fleet_s_limits_from_the_stack() -> None:
    run = run_program(
        base_config(
            sweep_max_instances="40",
            sweep_concurrency="32",
            sweep_shard_size="500",
            sweep_ack_deadline="120",
        )
    )
    internal = run.named(SERVICE, INTERNAL)
    assert internal.inputs["template"]["scaling"]["maxInstanceCount"] == 40
    # The public service keeps max_instances.
    public = run.named(SERVICE, "wcg-dev-public")
    assert public.inputs["template"]["scaling"]["maxInstanceCount"] == 10
    settings = Settings.from_env(resolved_env(run, internal))
    assert (settings.sweep_concurrency, settings.sweep_shard_size) == (32, 500)
    assert push(run).inputs["ackDeadlineSeconds"] == 120


def test_the_outputs(deployment: Deployment, foundation: Deployment) -> None:
    for run in (deployment, foundation):  # the topic comes with the foundation
        assert run.outputs["sweep_shard_topic"] == path("topics", SHARDS)
        assert run.outputs["sweep_dead_letter_subscription"] == path("subscriptions", DEAD)
    assert deployment.outputs["sweep_push_account"] == PUSH_EMAIL
    assert "sweep_push_account" not in foundation.outputs
    assert not foundation.of_type(SUBSCRIPTION) or all(
        "pushConfig" not in s.inputs for s in foundation.of_type(SUBSCRIPTION)
    )


def test_dead_lettered_shards_alert(deployment: Deployment) -> None:
    policy = deployment.one(POLICY, lambda p: p.name == "dead-letters")
    query = policy.inputs["conditions"][0]["conditionThreshold"]["filter"]
    assert re.findall(r'subscription_id="([^"]+)"', query) == [DEAD]
    content = policy.inputs["documentation"]["content"]
    assert "/tasks/refresh-shard" in content and "sweep_dead_letter_subscription" in content


def parse(**overrides: str) -> Any:
    config = base_config(**overrides)
    secret = [full(k) for k in config if k.endswith(("_appsecret", "_token", "_aes_key"))]
    return parse_config({full(k): v for k, v in config.items()}, secret, "dev")


def test_defaults() -> None:
    config = parse()
    assert config.sweep_max_instances == config.max_instances == 10
    assert (config.sweep_concurrency, config.sweep_shard_size) == (16, 200)
    assert config.sweep_ack_deadline == 600
    assert parse(max_instances="30").sweep_max_instances == 30  # follows max_instances


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("sweep_max_instances", "0"),
        ("sweep_max_instances", "1001"),
        ("sweep_max_instances", "many"),
        ("sweep_concurrency", "0"),
        ("sweep_concurrency", "257"),
        ("sweep_shard_size", "501"),
        ("sweep_shard_size", "0"),
        ("sweep_ack_deadline", "9"),
        ("sweep_ack_deadline", "601"),
    ],
)
def test_bad_limits_name_the_key_and_the_fix(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(**{key: value})
    (line,) = [line for line in str(caught.value).splitlines() if key in line]
    assert f"pulumi config set {key} " in line


def test_warm_internal_instances_within_the_sweep_s_ceiling() -> None:
    with pytest.raises(ConfigError) as caught:
        parse(internal_min_instances="5", sweep_max_instances="4")
    assert "internal_min_instances" in str(caught.value)
    assert "sweep_max_instances (4)" in str(caught.value)
    # More warm internal instances than the public ceiling is fine with a larger fleet.
    assert parse(internal_min_instances="12", sweep_max_instances="20").internal_min_instances == 12
