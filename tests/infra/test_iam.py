"""Who may do what: ingress, invoker bindings, and the two service accounts' grants.

Every IAM resource the program creates is found by its type (any type token with "iam" in
it), so a grant added anywhere, of any kind, is checked here.
"""

from __future__ import annotations

from typing import Any

from tests.infra.conftest import OPS, ORDERS
from tests.infra.pulumi_mocks import GCP_PROJECT, PROJECT_NUMBER, Deployment, Registration

SERVICE = "gcp:cloudrunv2/service:Service"
PUBLIC = "wcg-dev-public"
INTERNAL = "wcg-dev-internal"
RUNTIME = f"serviceAccount:wcg-dev-runtime@{GCP_PROJECT}.iam.gserviceaccount.com"
SCHEDULER = f"serviceAccount:wcg-dev-scheduler@{GCP_PROJECT}.iam.gserviceaccount.com"
PUBLIC_MEMBERS = {"allUsers", "allAuthenticatedUsers"}
SHARD_TOPIC = "wcg-dev-refresh-shards"
SWEEP_PUSH_EMAIL = f"wcg-dev-sweep@{GCP_PROJECT}.iam.gserviceaccount.com"
SWEEP_PUSH = f"serviceAccount:{SWEEP_PUSH_EMAIL}"
PUBSUB_AGENT = f"serviceAccount:service-{PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"
ROUTE_TOPICS = {"wechat-events", "wechat-messages"}


def iam_resources(deployment: Deployment) -> list[Registration]:
    return [r for r in deployment.resources if r.custom and "iam" in r.type.lower()]


def members(grant: Registration) -> set[str]:
    inputs = grant.inputs
    found = set(inputs.get("members") or [])
    if "member" in inputs:
        found.add(inputs["member"])
    if "policyData" in inputs:  # an authoritative policy: every member of every binding
        found.add(f"<policy {grant.name}>")
    return found


def grant_target(grant: Registration) -> tuple[str, Any]:
    """(kind of target, its name) for the grant types the program may use."""
    kind = grant.type.split(":")[1].split("/")[0]
    if grant.type == "gcp:projects/iAMMember:IAMMember":
        return ("project", grant.inputs["project"])
    if grant.type == "gcp:secretmanager/secretIamMember:SecretIamMember":
        return ("secret", grant.inputs["secretId"])
    if grant.type == "gcp:cloudrunv2/serviceIamMember:ServiceIamMember":
        return ("run-service", grant.inputs["name"])
    if grant.type == "gcp:pubsub/topicIAMMember:TopicIAMMember":
        return ("topic", grant.inputs["topic"])
    if grant.type == "gcp:pubsub/subscriptionIAMMember:SubscriptionIAMMember":
        return ("subscription", grant.inputs["subscription"])
    if grant.type == "gcp:serviceaccount/iAMMember:IAMMember":
        return ("service-account", grant.inputs["serviceAccountId"])
    return (kind, grant.type)


def service(deployment: Deployment, name: str) -> Registration:
    return deployment.one(SERVICE, lambda r: r.inputs["name"] == name)


def test_iam_is_additive_only(deployment: Deployment, messaging: Deployment) -> None:
    # Bindings and policies are authoritative: they would remove grants made by others.
    allowed = {
        "gcp:projects/iAMMember:IAMMember",
        "gcp:secretmanager/secretIamMember:SecretIamMember",
        "gcp:cloudrunv2/serviceIamMember:ServiceIamMember",
        "gcp:pubsub/topicIAMMember:TopicIAMMember",
        "gcp:pubsub/subscriptionIAMMember:SubscriptionIAMMember",
        "gcp:serviceaccount/iAMMember:IAMMember",
    }
    for run in (deployment, messaging):
        assert {r.type for r in iam_resources(run)} <= allowed
    # Every grant is of a kind grant_target knows, so the checks below see its target.
    assert all(
        grant_target(g)[0] != g.type.split(":")[1].split("/")[0] for g in iam_resources(messaging)
    )


def test_public_service_is_open_to_everyone_without_an_all_users_grant(
    deployment: Deployment,
) -> None:
    """Organisations with Domain Restricted Sharing refuse `allUsers` in any IAM policy: the
    public service turns Cloud Run's invoker check off instead, and grants no one."""
    public = service(deployment, PUBLIC)
    assert public.inputs["ingress"] == "INGRESS_TRAFFIC_ALL"
    assert public.inputs["invokerIamDisabled"] is True
    assert not [g for g in iam_resources(deployment) if grant_target(g) == ("run-service", PUBLIC)]


def test_nothing_is_granted_to_the_public(deployment: Deployment, messaging: Deployment) -> None:
    for grant in iam_resources(deployment) + iam_resources(messaging):
        assert not members(grant) & PUBLIC_MEMBERS, grant.name


def test_internal_service_is_internal_and_never_public(
    deployment: Deployment, with_domain: Deployment
) -> None:
    assert service(deployment, INTERNAL).inputs["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    # with_domain sets internal_ingress=all: reachable from outside the VPC, still IAM-only.
    assert service(with_domain, INTERNAL).inputs["ingress"] == "INGRESS_TRAFFIC_ALL"
    for run in (deployment, with_domain):
        internal = [g for g in iam_resources(run) if grant_target(g) == ("run-service", INTERNAL)]
        assert internal, "the scheduler must be able to invoke the internal service"
        for grant in internal:
            assert not members(grant) & PUBLIC_MEMBERS, grant.name
        assert not service(run, INTERNAL).inputs.get("invokerIamDisabled")


def test_runtime_account_roles_are_minimal(deployment: Deployment, messaging: Deployment) -> None:
    for run, route_topics in ((deployment, set()), (messaging, ROUTE_TOPICS)):
        own_secrets = {r.inputs["secretId"] for r in run.of_type("gcp:secretmanager/secret:Secret")}
        grants = [g for g in iam_resources(run) if RUNTIME in members(g)]
        project_roles = {
            g.inputs["role"] for g in grants if grant_target(g) == ("project", GCP_PROJECT)
        }
        assert project_roles == {"roles/datastore.user"}
        secret_grants = [g for g in grants if grant_target(g)[0] == "secret"]
        assert {g.inputs["role"] for g in secret_grants} == {"roles/secretmanager.secretAccessor"}
        assert {g.inputs["secretId"] for g in secret_grants} == own_secrets  # each, only those
        # Publishing to the route topics and the sweep's shard topic, each, and to nothing
        # else (not the dead letters).
        topic_grants = [g for g in grants if grant_target(g)[0] == "topic"]
        assert {g.inputs["role"] for g in topic_grants} <= {"roles/pubsub.publisher"}
        assert sorted(g.inputs["topic"] for g in topic_grants) == sorted(
            {*route_topics, SHARD_TOPIC}
        )
        assert len(grants) == len(project_roles) + len(secret_grants) + len(topic_grants), [
            g.name for g in grants
        ]


def test_runtime_account_runs_both_services(deployment: Deployment) -> None:
    email = RUNTIME.removeprefix("serviceAccount:")
    for name in (PUBLIC, INTERNAL):
        assert service(deployment, name).inputs["template"]["serviceAccount"] == email


def test_scheduler_account_only_invokes_the_internal_service(deployment: Deployment) -> None:
    grants = [g for g in iam_resources(deployment) if SCHEDULER in members(g)]
    assert [(grant_target(g), g.inputs["role"]) for g in grants] == [
        (("run-service", INTERNAL), "roles/run.invoker")
    ]
    assert grants[0].inputs["location"] == service(deployment, INTERNAL).inputs["location"]


def test_no_project_wide_grant_but_the_datastore_role(
    deployment: Deployment, messaging: Deployment
) -> None:
    for run in (deployment, messaging):
        project_grants = [
            (g.inputs["role"], sorted(members(g)))
            for g in iam_resources(run)
            if grant_target(g)[0] == "project"
        ]
        assert project_grants == [("roles/datastore.user", [RUNTIME])]


def test_push_accounts_are_granted_nothing(messaging: Deployment) -> None:
    """A push subscription's account only carries its ID token; the provider lets it invoke
    their own service. The Pub/Sub service agent may make its tokens, on it alone."""
    emails = set(messaging.outputs["message_subscription_accounts"].values())
    assert emails
    for grant in iam_resources(messaging):
        assert not {f"serviceAccount:{e}" for e in emails} & members(grant), grant.name
        if grant_target(grant)[0] == "service-account" and SWEEP_PUSH_EMAIL not in str(
            grant.inputs["serviceAccountId"]
        ):
            assert grant.inputs["role"] == "roles/iam.serviceAccountTokenCreator"
            assert grant.inputs["serviceAccountId"].rsplit("/", 1)[1] in emails
            assert members(grant) == {PUBSUB_AGENT}


def test_internal_invokers_are_granted_only_run_invoker_on_internal(
    deployment: Deployment, with_domain: Deployment
) -> None:
    def invokers_of_internal(run: Deployment) -> set[str]:
        return {
            m
            for g in iam_resources(run)
            if grant_target(g) == ("run-service", INTERNAL)
            for m in members(g)
            if g.inputs["role"] == "roles/run.invoker"
        }

    assert invokers_of_internal(deployment) == {SCHEDULER, SWEEP_PUSH}
    assert invokers_of_internal(with_domain) == {SCHEDULER, SWEEP_PUSH, ORDERS, OPS}
    for grant in iam_resources(with_domain):
        if members(grant) & {ORDERS, OPS}:
            assert grant_target(grant) == ("run-service", INTERNAL)
            assert grant.inputs["role"] == "roles/run.invoker"
