"""The stack key ``console_operators``: the emails that may open /console through
``gcloud run services proxy``. They reach the internal service as CONSOLE_OPERATORS (which
the service parses with its own rules) and each may invoke the internal service, nothing
else."""

from __future__ import annotations

import json

import pytest

from infra.config import ConfigError
from service.config import Settings
from tests.infra.pulumi_mocks import Deployment, base_config, run_program
from tests.infra.test_config import parse, problems_of
from tests.infra.test_iam import INTERNAL, grant_target, iam_resources, members
from tests.service.test_config import PER_VARIABLE

SERVICE = "gcp:cloudrunv2/service:Service"
OPERATORS = ["Ops@Example.com", "night-shift@example.com", "robot@p.iam.gserviceaccount.com"]


@pytest.fixture(scope="module")
def with_operators() -> Deployment:
    return run_program(base_config(console_operators=json.dumps(OPERATORS)))


def env_of(run: Deployment, name: str) -> dict[str, str | None]:
    service = next(r for r in run.of_type(SERVICE) if r.inputs["name"] == name)
    (container,) = service.inputs["template"]["containers"]
    return {e["name"]: e.get("value") for e in container["envs"] if "valueSource" not in e}


def test_parsed_as_lower_case_emails_once_each() -> None:
    config = parse(base_config(console_operators=json.dumps([*OPERATORS, "ops@example.com"])))
    assert config.console_operators == (
        "ops@example.com",
        "night-shift@example.com",
        "robot@p.iam.gserviceaccount.com",
    )
    assert parse(base_config()).console_operators == ()


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ('"ops@example.com"', "console_operators': must be a list of emails"),
        ('["user:ops@example.com"]', "is an IAM member; list the operator's email alone"),
        ('["ops"]', "'ops' is not an email address"),
        ('["a,b@example.com"]', "is not an email address"),
        ("[42]", "42 is not an email address"),
    ],
)
def test_bad_values_are_refused_with_the_command_to_fix_them(value: str, says: str) -> None:
    problems = problems_of(base_config(console_operators=value))
    assert says in problems
    assert "pulumi config set --path 'console_operators[0]'" in problems


def test_the_internal_service_gets_them_and_the_service_reads_them(
    with_operators: Deployment, deployment: Deployment
) -> None:
    env = env_of(with_operators, INTERNAL)
    value = env["CONSOLE_OPERATORS"]
    assert value == "ops@example.com,night-shift@example.com,robot@p.iam.gserviceaccount.com"
    settings = Settings.from_env({**PER_VARIABLE, "CONSOLE_OPERATORS": value or ""})
    assert settings.console_operators == tuple(value.split(","))  # type: ignore[union-attr]
    assert "CONSOLE_OPERATORS" not in env_of(with_operators, "wcg-dev-public")
    assert "CONSOLE_OPERATORS" not in env_of(deployment, INTERNAL)


def test_each_operator_may_invoke_the_internal_service_and_nothing_more(
    with_operators: Deployment,
) -> None:
    expected = {
        "user:ops@example.com",
        "user:night-shift@example.com",
        "serviceAccount:robot@p.iam.gserviceaccount.com",
    }
    granted = [g for g in iam_resources(with_operators) if members(g) & expected]
    assert {m for g in granted for m in members(g)} == expected
    for grant in granted:
        assert grant_target(grant) == ("run-service", INTERNAL)
        assert grant.inputs["role"] == "roles/run.invoker"


def test_an_operator_who_is_an_invoker_already_is_granted_once() -> None:
    run = run_program(
        base_config(
            console_operators='["ops@example.com"]',
            internal_invokers='["user:ops@example.com"]',
        )
    )
    grants = [g for g in iam_resources(run) if "user:ops@example.com" in members(g)]
    assert len(grants) == 1


def test_a_config_error_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        parse(base_config(console_operators='["nobody"]'))
