"""group_open_appid (scene 2): checked as the service checks GROUP_OPEN_APPID, and given to
the internal service only, which serves the group report."""

from __future__ import annotations

import pytest

from service.config import Settings
from tests.infra.pulumi_mocks import Deployment, base_config, run_program
from tests.infra.test_config import parse, problems_of
from tests.infra.test_services import INTERNAL, PUBLIC, SERVICE, plain_env, resolved_env

GROUP = "wx1234567890abcdef"


@pytest.fixture(scope="module")
def grouped() -> Deployment:
    return run_program(base_config(group_open_appid=GROUP))


def test_unset_by_default_and_read_when_set() -> None:
    assert parse(base_config()).group_open_appid is None
    assert parse(base_config(group_open_appid=f" {GROUP} ")).group_open_appid == GROUP


@pytest.mark.parametrize("bad", ["gh_1234567890ab", "wx1234567890ABCDEF", "wx123", "123"])
def test_a_bad_one_names_the_key_and_the_fix(bad: str) -> None:
    problems = problems_of(base_config(group_open_appid=bad))
    assert "invalid config 'wechat-component-gateway:group_open_appid'" in problems
    assert "pulumi config set group_open_appid wx0123456789abcdef" in problems


def test_only_the_internal_service_gets_it(grouped: Deployment, deployment: Deployment) -> None:
    assert plain_env(grouped.named(SERVICE, INTERNAL))["GROUP_OPEN_APPID"] == GROUP
    assert "GROUP_OPEN_APPID" not in plain_env(grouped.named(SERVICE, PUBLIC))
    assert "GROUP_OPEN_APPID" not in plain_env(deployment.named(SERVICE, INTERNAL))
    settings = Settings.from_env(resolved_env(grouped, grouped.named(SERVICE, INTERNAL)))
    assert settings.group_open_appid == GROUP
