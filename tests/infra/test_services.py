"""The two Cloud Run services: the environment contract with the service, shape and order."""

from __future__ import annotations

import os
import runpy
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from service.app import create_app
from service.config import Settings
from service.readiness import STEP_DEADLINE
from tests.infra.conftest import OPS, ORDERS
from tests.infra.pulumi_mocks import (
    APPID_A,
    APPID_B,
    GCP_PROJECT,
    IMAGE,
    PROJECT_NUMBER,
    REGION,
    SECRET_VALUES,
    Deployment,
    Registration,
    base_config,
    run_program,
)

SERVICE = "gcp:cloudrunv2/service:Service"
PUBLIC = "wcg-dev-public"
INTERNAL = "wcg-dev-internal"
NAMES = (PUBLIC, INTERNAL)
DETERMINISTIC_URL = f"https://{PUBLIC}-{PROJECT_NUMBER}.{REGION}.run.app"
GUNICORN_CONF = Path(__file__).resolve().parents[2] / "service" / "gunicorn_conf.py"


def plain_env(service: Registration) -> dict[str, Any]:
    (container,) = service.inputs["template"]["containers"]
    return {e["name"]: e.get("value") for e in container["envs"] if "valueSource" not in e}


def test_both_services_run_the_image_on_port_8080(deployment: Deployment) -> None:
    for name in (PUBLIC, INTERNAL):
        service = deployment.named(SERVICE, name)
        (container,) = service.inputs["template"]["containers"]
        assert container["image"] == IMAGE
        assert container["ports"] == {"containerPort": 8080}
        assert service.inputs["location"] == REGION
        assert service.inputs["deletionProtection"] is False


def test_roles_and_timeouts(deployment: Deployment) -> None:
    public = deployment.named(SERVICE, PUBLIC)
    internal = deployment.named(SERVICE, INTERNAL)
    assert plain_env(public)["SERVICE_ROLE"] == "public"
    assert plain_env(internal)["SERVICE_ROLE"] == "internal"
    assert public.inputs["template"]["timeout"] == "60s"
    assert internal.inputs["template"]["timeout"] == "900s"


INTERNAL_URL = f"https://{INTERNAL}-{PROJECT_NUMBER}.{REGION}.run.app"
SCHEDULER_EMAIL = f"wcg-dev-scheduler@{GCP_PROJECT}.iam.gserviceaccount.com"
SWEEP_PUSH_EMAIL = f"wcg-dev-sweep@{GCP_PROJECT}.iam.gserviceaccount.com"
IDENTITY_VARS = {"INTERNAL_AUTH", "INTERNAL_AUDIENCE", "INTERNAL_INVOKERS", "ID_TOKEN_CERTS_URL"}


def test_only_the_internal_service_takes_id_tokens(deployment: Deployment) -> None:
    assert plain_env(deployment.named(SERVICE, INTERNAL))["INTERNAL_AUTH"] == "cloud_run_iam"
    assert not IDENTITY_VARS & set(plain_env(deployment.named(SERVICE, PUBLIC)))


def test_the_internal_service_checks_tokens_for_its_own_url(deployment: Deployment) -> None:
    """The audience is the internal service's deterministic URL, known before it exists;
    the scheduler's OIDC token is asked for that audience too."""
    env = plain_env(deployment.named(SERVICE, INTERNAL))
    assert env["INTERNAL_AUDIENCE"] == INTERNAL_URL
    oidc = deployment.one("gcp:cloudscheduler/job:Job").inputs["httpTarget"]["oidcToken"]
    assert oidc["audience"] == INTERNAL_URL
    # Google's own certificates: the service's default, not set here.
    assert "ID_TOKEN_CERTS_URL" not in env


def test_the_internal_service_lets_in_the_scheduler_and_the_invokers(
    deployment: Deployment, with_domain: Deployment
) -> None:
    scheduler = deployment.named(
        "gcp:serviceaccount/account:Account", "wcg-dev-scheduler", key="accountId"
    )
    assert scheduler.state["email"] == SCHEDULER_EMAIL
    env = plain_env(deployment.named(SERVICE, INTERNAL))
    # The scheduler's, then the sweep's shard pushes' (infra/sweep_queue.py).
    assert env["INTERNAL_INVOKERS"] == f"{SCHEDULER_EMAIL},{SWEEP_PUSH_EMAIL}"
    # The IAM members of internal_invokers, as the emails in their ID tokens.
    env = plain_env(with_domain.named(SERVICE, INTERNAL))
    assert env["INTERNAL_INVOKERS"].split(",") == [
        SCHEDULER_EMAIL,
        SWEEP_PUSH_EMAIL,
        ORDERS.removeprefix("serviceAccount:"),
        OPS.removeprefix("user:"),
    ]


def test_common_environment(deployment: Deployment, with_domain: Deployment) -> None:
    for run, base in ((deployment, DETERMINISTIC_URL), (with_domain, "https://auth.example.com")):
        for name in (PUBLIC, INTERNAL):
            env = plain_env(run.named(SERVICE, name))
            assert env["GOOGLE_CLOUD_PROJECT"] == GCP_PROJECT
            assert env["FIRESTORE_DATABASE"] == "(default)"
            assert env["PUBLIC_BASE_URL"] == base
            assert env["WECHAT_COMPONENT_APPIDS"] == f"{APPID_A},{APPID_B}"
    # The deterministic URL needs the project number, asked of GCP (not of the service).
    assert ("gcp:organizations/getProject:getProject", {"projectId": GCP_PROJECT}) in (
        deployment.calls
    )


def test_firestore_database_name_is_the_created_one() -> None:
    run = run_program(base_config(firestore_database="gateway", name_prefix="wcg-x"))
    database = run.one("gcp:firestore/database:Database")
    for name in ("wcg-x-public", "wcg-x-internal"):
        assert plain_env(run.named(SERVICE, name))["FIRESTORE_DATABASE"] == "gateway"
    assert database.inputs["name"] == "gateway"


def test_scaling_from_config(deployment: Deployment) -> None:
    """The public service keeps one instance warm by default: WeChat waits 5 s."""
    scaling = {n: deployment.named(SERVICE, n).inputs["template"]["scaling"] for n in NAMES}
    assert scaling[PUBLIC] == {"minInstanceCount": 1, "maxInstanceCount": 10}
    assert scaling[INTERNAL] == {"minInstanceCount": 0, "maxInstanceCount": 10}
    run = run_program(base_config(min_instances="2", internal_min_instances="1", max_instances="3"))
    assert run.named(SERVICE, PUBLIC).inputs["template"]["scaling"] == {
        "minInstanceCount": 2,
        "maxInstanceCount": 3,
    }
    assert run.named(SERVICE, INTERNAL).inputs["template"]["scaling"] == {
        "minInstanceCount": 1,
        "maxInstanceCount": 3,
    }


def gunicorn_size(env: dict[str, Any]) -> tuple[int, int]:
    """What service/gunicorn_conf.py makes of the service's environment."""
    with mock.patch.dict(os.environ, {k: str(v) for k, v in env.items()}):
        settings = runpy.run_path(str(GUNICORN_CONF))
    return settings["workers"], settings["threads"]


@pytest.mark.parametrize(
    ("overrides", "workers", "threads"),
    [({}, 1, 8), ({"threads": "12"}, 1, 12), ({"workers": "2", "threads": "4"}, 2, 4)],
)
def test_request_concurrency_is_gunicorn_s_threads(
    overrides: dict[str, str], workers: int, threads: int
) -> None:
    """Cloud Run's default of 80 would queue 80 requests on 8 threads; one setting sizes
    gunicorn and Cloud Run's concurrency both, and a worker gets a CPU of its own."""
    run = run_program(base_config(**overrides))
    for name in NAMES:
        template = run.named(SERVICE, name).inputs["template"]
        assert gunicorn_size(plain_env(run.named(SERVICE, name))) == (workers, threads)
        assert template["maxInstanceRequestConcurrency"] == workers * threads
        (container,) = template["containers"]
        assert container["resources"]["limits"] == {
            "cpu": str(workers),
            "memory": f"{512 * workers}Mi",
        }


def test_cpu_is_boosted_at_start_and_billed_per_request(deployment: Deployment) -> None:
    for name in NAMES:
        (container,) = deployment.named(SERVICE, name).inputs["template"]["containers"]
        assert container["resources"]["startupCpuBoost"] is True
        # Set explicitly: with `resources` given, Cloud Run would otherwise bill always-on CPU.
        assert container["resources"]["cpuIdle"] is True


def test_traffic_waits_for_firestore_and_the_egress(deployment: Deployment) -> None:
    """The startup probe is the service's own /readyz, within Cloud Run's bounds."""
    for name in NAMES:
        (container,) = deployment.named(SERVICE, name).inputs["template"]["containers"]
        probe = container["startupProbe"]
        assert probe["httpGet"] == {"path": "/readyz", "port": 8080}
        assert probe["timeoutSeconds"] <= probe["periodSeconds"]
        # Cloud Run allows at most 240 s for a startup probe in all.
        assert probe["periodSeconds"] * probe["failureThreshold"] <= 240
        # Each step of the check is bounded so the answer comes within the probe's timeout.
        assert 2 * STEP_DEADLINE < probe["timeoutSeconds"]
    for name in NAMES:
        app = create_app(
            Settings.from_env(resolved_env(deployment, deployment.named(SERVICE, name)))
        )
        assert "/readyz" in {rule.rule for rule in app.url_map.iter_rules()}


def test_services_start_after_their_grants(deployment: Deployment) -> None:
    grants = deployment.of_type("gcp:secretmanager/secretIamMember:SecretIamMember") + [
        deployment.one("gcp:projects/iAMMember:IAMMember")
    ]
    assert len(grants) == 8
    for name in (PUBLIC, INTERNAL):
        service = deployment.named(SERVICE, name)
        for grant in grants:
            assert grant.urn in service.dependencies, f"{name} does not wait for {grant.name}"


def resolved_env(deployment: Deployment, service: Registration) -> dict[str, str]:
    """The environment Cloud Run would give the container: secret refs read from the
    SecretVersion pulumi created for that secret and version."""
    versions = {
        (v.inputs["secret"], v.state["version"]): v.inputs["secretData"]["value"]
        for v in deployment.of_type("gcp:secretmanager/secretVersion:SecretVersion")
    }
    (container,) = service.inputs["template"]["containers"]
    env = {}
    for item in container["envs"]:
        if "valueSource" in item:
            ref = item["valueSource"]["secretKeyRef"]
            env[item["name"]] = versions[(ref["secret"], ref["version"])]
        else:
            env[item["name"]] = item["value"]
    return env


def test_the_service_accepts_the_environment_with_invokers(with_domain: Deployment) -> None:
    env = resolved_env(with_domain, with_domain.named(SERVICE, INTERNAL))
    settings = Settings.from_env(env)
    assert settings.internal_invokers == (
        SCHEDULER_EMAIL,
        SWEEP_PUSH_EMAIL,
        "orders@example-project.iam.gserviceaccount.com",
        "ops@example.com",
    )


def test_the_service_accepts_the_environment(deployment: Deployment) -> None:
    """The contract, checked by the service's own settings reader."""
    for name, role in ((PUBLIC, "public"), (INTERNAL, "internal")):
        settings = Settings.from_env(resolved_env(deployment, deployment.named(SERVICE, name)))
        assert settings.service_role == role
        assert settings.internal_auth == ("cloud_run_iam" if role == "internal" else "api_key")
        if role == "internal":
            assert settings.internal_audiences == (INTERNAL_URL,)
            assert settings.internal_invokers == (SCHEDULER_EMAIL, SWEEP_PUSH_EMAIL)
            assert settings.id_token_certs_url == "https://www.googleapis.com/oauth2/v1/certs"
        assert settings.public_base_url == DETERMINISTIC_URL
        assert settings.google_cloud_project == GCP_PROJECT
        assert set(settings.components) == {APPID_A, APPID_B}
        a, b = settings.components[APPID_A], settings.components[APPID_B]
        assert a.secret == SECRET_VALUES[f"{APPID_A}_appsecret"]
        assert a.token == SECRET_VALUES[f"{APPID_A}_token"]
        assert a.encoding_aes_key == SECRET_VALUES[f"{APPID_A}_encoding_aes_key"]
        assert a.previous_encoding_aes_key == SECRET_VALUES[f"{APPID_A}_previous_encoding_aes_key"]
        assert b.encoding_aes_key == SECRET_VALUES[f"{APPID_B}_encoding_aes_key"]
        assert b.previous_encoding_aes_key is None
