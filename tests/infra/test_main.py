"""The whole program: its stack outputs, foundation-only mode, and ordering after the APIs."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask

from infra.apis import PUBSUB_API, REQUIRED_APIS
from service.web import ROLE_PREFIXES
from service.web.authorization_events_url import bp as events_blueprint
from service.web.authorize import bp as authorize_blueprint
from service.web.message_url import bp as messages_blueprint
from service.web.tasks import bp as tasks_blueprint
from tests.infra.pulumi_mocks import (
    APPID_A,
    APPID_B,
    GCP_PROJECT,
    PROJECT_NUMBER,
    REGION,
    Deployment,
    base_config,
    run_program,
)

DETERMINISTIC_BASE = f"https://wcg-dev-public-{PROJECT_NUMBER}.{REGION}.run.app"
FOUNDATION_OUTPUTS = {
    "egress_ip",
    "image_repository",
    "runtime_service_account",
    # The sweep's shard topic is there before the service publishes (infra/sweep_queue.py).
    "sweep_shard_topic",
    "sweep_dead_letter_subscription",
}
APP_TYPES = {
    "gcp:cloudrunv2/service:Service",
    "gcp:cloudrunv2/serviceIamMember:ServiceIamMember",
    "gcp:cloudscheduler/job:Job",
    "gcp:monitoring/alertPolicy:AlertPolicy",
    "gcp:monitoring/notificationChannel:NotificationChannel",
}


def test_outputs_with_the_deterministic_url(deployment: Deployment) -> None:
    out = deployment.outputs
    base = DETERMINISTIC_BASE
    assert out["authorization_event_urls"] == {
        a: f"{base}/wechat/{a}/events" for a in (APPID_A, APPID_B)
    }
    assert out["authorization_entry_urls"] == {
        a: f"{base}/authorize/{a}" for a in (APPID_A, APPID_B)
    }
    assert out["message_event_urls"] == {
        a: f"{base}/wechat/{a}/messages/$APPID$" for a in (APPID_A, APPID_B)
    }
    assert out["authorization_callback_urls"] == {
        a: f"{base}/authorize/{a}/callback" for a in (APPID_A, APPID_B)
    }
    assert out["authorization_domain"] == urlsplit(base).hostname
    services = {
        s.inputs["name"]: s.state["uri"]
        for s in deployment.of_type("gcp:cloudrunv2/service:Service")
    }
    assert out["public_url"] == services["wcg-dev-public"]
    assert out["internal_url"] == services["wcg-dev-internal"]
    assert out["internal_audience"] == f"https://wcg-dev-internal-{PROJECT_NUMBER}.{REGION}.run.app"
    assert out["scheduler_job"] == "wcg-dev-refresh"
    assert (
        out["runtime_service_account"] == f"wcg-dev-runtime@{GCP_PROJECT}.iam.gserviceaccount.com"
    )
    assert out["image_repository"] == f"{REGION}-docker.pkg.dev/{GCP_PROJECT}/wcg-dev"
    assert "next_step" not in out


def test_outputs_with_a_public_domain(with_domain: Deployment) -> None:
    out = with_domain.outputs
    assert out["authorization_event_urls"][APPID_A] == (
        f"https://auth.example.com/wechat/{APPID_A}/events"
    )
    assert (
        out["authorization_entry_urls"][APPID_B] == f"https://auth.example.com/authorize/{APPID_B}"
    )
    assert out["authorization_callback_urls"][APPID_A] == (
        f"https://auth.example.com/authorize/{APPID_A}/callback"
    )
    assert out["authorization_domain"] == "auth.example.com"
    assert out["message_event_urls"][APPID_B] == (
        f"https://auth.example.com/wechat/{APPID_B}/messages/$APPID$"
    )
    # run.app answers the load balancer only: what answers from the internet is the domain.
    assert out["public_url"] == "https://auth.example.com"


def test_output_urls_are_the_public_services_routes(deployment: Deployment) -> None:
    app = Flask(__name__)
    for blueprint in (
        events_blueprint,
        messages_blueprint,
        authorize_blueprint,
        tasks_blueprint,
    ):
        app.register_blueprint(blueprint)
    routes = app.url_map.bind("gateway.test")
    expected = (
        ("authorization_event_urls", "POST", "events."),
        ("message_event_urls", "POST", "messages."),
        ("authorization_entry_urls", "GET", "authorize.entry"),
        ("authorization_callback_urls", "GET", "authorize.callback"),
    )
    for output, method, endpoint in expected:
        for appid, url in deployment.outputs[output].items():
            # WeChat puts an authorized account's appid in place of $APPID$.
            path = urlsplit(url.replace("$APPID$", "wx570bc396a51b8ff8")).path
            assert path.startswith(ROLE_PREFIXES["public"]), url
            matched, args = routes.match(path, method=method)
            assert matched.startswith(endpoint), (url, matched)
            assert args.pop("component_appid") == appid
            assert args in ({}, {"authorizer_appid": "wx570bc396a51b8ff8"})


def test_the_image_repository(deployment: Deployment) -> None:
    repository = deployment.one("gcp:artifactregistry/repository:Repository")
    assert repository.inputs["repositoryId"] == "wcg-dev"
    assert repository.inputs["format"] == "DOCKER"
    assert repository.inputs["location"] == REGION


def test_without_image_only_the_foundation(foundation: Deployment) -> None:
    types = {r.type for r in foundation.resources}
    assert not types & APP_TYPES
    for kept in (
        "gcp:projects/service:Service",
        "gcp:artifactregistry/repository:Repository",
        "gcp:compute/routerNat:RouterNat",
        "gcp:compute/address:Address",
        "gcp:firestore/database:Database",
        "gcp:firestore/index:Index",
        "gcp:firestore/field:Field",
        "gcp:secretmanager/secretVersion:SecretVersion",
        "gcp:secretmanager/secretIamMember:SecretIamMember",
        "gcp:serviceaccount/account:Account",
        "gcp:projects/iAMMember:IAMMember",
        # Monitoring needs minutes to know a new metric before a policy may use it.
        "gcp:logging/metric:Metric",
    ):
        assert kept in types, kept
    assert set(foundation.outputs) == FOUNDATION_OUTPUTS | {"next_step"}
    assert "make image" in foundation.outputs["next_step"]
    assert "pulumi up" in foundation.outputs["next_step"]
    assert foundation.outputs["image_repository"] in foundation.outputs["next_step"]
    assert any("make image" in w and "pulumi up" in w for w in foundation.warnings)


def test_with_image_no_warning(deployment: Deployment) -> None:
    assert deployment.warnings == []


def test_an_image_by_tag_is_warned_of() -> None:
    """A tag may be built twice (`git describe --dirty`): the same value rolls out nothing."""
    run = run_program(
        base_config(image=f"{REGION}-docker.pkg.dev/{GCP_PROJECT}/wcg-dev/gateway:v1-dirty")
    )
    (warning,) = run.warnings
    assert "'v1-dirty'" in warning and "make image" in warning and "digest" in warning


def test_apis_are_enabled_and_kept(deployment: Deployment) -> None:
    apis = deployment.of_type("gcp:projects/service:Service")
    # Pub/Sub always: the fan-out sweep's shards go through it.
    assert {a.inputs["service"] for a in apis} == {*REQUIRED_APIS, PUBSUB_API}
    for api in apis:
        assert api.inputs["disableOnDestroy"] is False
    for needed in ("run", "firestore", "cloudscheduler", "secretmanager", "artifactregistry"):
        assert f"{needed}.googleapis.com" in REQUIRED_APIS
    for needed in ("compute", "logging", "monitoring", "iam"):
        assert f"{needed}.googleapis.com" in REQUIRED_APIS


def test_everything_waits_for_the_apis(
    deployment: Deployment, foundation: Deployment, messaging: Deployment
) -> None:
    for run in (deployment, foundation, messaging):
        apis = run.of_type("gcp:projects/service:Service")
        for resource in run.resources:
            if not resource.custom or resource.type == "gcp:projects/service:Service":
                continue
            for api in apis:
                assert run.depends_on(resource, api), f"{resource.name} before {api.name}"


def test_every_resource_is_in_the_project_and_region(
    deployment: Deployment, messaging: Deployment
) -> None:
    for resource in deployment.resources + messaging.resources:
        if not resource.custom:
            continue
        inputs = resource.inputs
        assert inputs.get("project", GCP_PROJECT) == GCP_PROJECT, resource.name
        for key in ("region", "location"):
            assert inputs.get(key, REGION) == REGION, (resource.name, key)
