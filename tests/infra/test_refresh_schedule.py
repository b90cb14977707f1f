"""Cloud Scheduler calls the internal service's refresh task with an OIDC token."""

from __future__ import annotations

from flask import Flask

from service.web.tasks import bp as tasks_blueprint
from tests.infra.pulumi_mocks import (
    GCP_PROJECT,
    PROJECT_NUMBER,
    REGION,
    Deployment,
    base_config,
    run_program,
)

JOB = "gcp:cloudscheduler/job:Job"
SERVICE = "gcp:cloudrunv2/service:Service"
SCHEDULER_EMAIL = f"wcg-dev-scheduler@{GCP_PROJECT}.iam.gserviceaccount.com"


def test_job_posts_to_the_internal_refresh_task(deployment: Deployment) -> None:
    job = deployment.one(JOB)
    internal_uri = deployment.named(SERVICE, "wcg-dev-internal").state["uri"]
    target = job.inputs["httpTarget"]
    assert target["uri"] == f"{internal_uri}/tasks/refresh"
    assert target["httpMethod"] == "POST"
    assert job.inputs["region"] == REGION
    assert job.inputs["name"] == "wcg-dev-refresh"


def test_the_service_serves_that_route() -> None:
    app = Flask(__name__)
    app.register_blueprint(tasks_blueprint)
    rules = {rule.rule: rule.methods or set() for rule in app.url_map.iter_rules()}
    assert "POST" in rules["/tasks/refresh"]


def test_job_authenticates_as_the_scheduler_account(deployment: Deployment) -> None:
    oidc = deployment.one(JOB).inputs["httpTarget"]["oidcToken"]
    internal_uri = deployment.named(SERVICE, "wcg-dev-internal").state["uri"]
    assert oidc["serviceAccountEmail"] == SCHEDULER_EMAIL
    assert (
        deployment.named(
            "gcp:serviceaccount/account:Account", "wcg-dev-scheduler", key="accountId"
        ).state["email"]
        == SCHEDULER_EMAIL
    )
    # The audience is the internal service's deterministic URL, without a path: Cloud Run
    # accepts it as one of the service's own URLs, and the service checks it itself
    # (INTERNAL_AUDIENCE), so it must be known before the service exists.
    assert oidc["audience"] == f"https://wcg-dev-internal-{PROJECT_NUMBER}.{REGION}.run.app"
    assert oidc["audience"] != internal_uri


def test_schedule_and_retries(deployment: Deployment) -> None:
    job = deployment.one(JOB)
    assert job.inputs["schedule"] == "*/5 * * * *"
    assert job.inputs["timeZone"] == "Etc/UTC"
    assert job.inputs["attemptDeadline"] == "600s"
    retry = job.inputs["retryConfig"]
    assert retry["retryCount"] >= 1
    # Retries give up before the next scheduled run (every 5 minutes).
    assert int(retry["maxRetryDuration"].removesuffix("s")) < 300
    assert {"minBackoffDuration", "maxBackoffDuration", "maxDoublings"} <= set(retry)


def test_schedule_from_config() -> None:
    run = run_program(base_config(refresh_schedule="*/2 * * * *"))
    assert run.one(JOB).inputs["schedule"] == "*/2 * * * *"


def test_job_waits_for_its_invoker_grant(deployment: Deployment) -> None:
    job = deployment.one(JOB)
    invoker = deployment.one(
        "gcp:cloudrunv2/serviceIamMember:ServiceIamMember",
        lambda r: r.inputs["member"] == f"serviceAccount:{SCHEDULER_EMAIL}",
    )
    assert invoker.urn in job.dependencies
