"""The service under gunicorn refuses to start on bad configuration, and says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.processes import ServerFailedError, free_port
from devstack.stack import start_service

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WECHAT_COMPONENTS": ""}, "no components configured: set WECHAT_COMPONENTS"),
        (
            {"WECHAT_COMPONENTS": '[{"appid": "wx0123456789abcdef", "secret": "TOPSECRET"}]'},
            "'token' is required",
        ),
    ],
)
def test_bad_configuration_stops_gunicorn_with_a_reason(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ServerFailedError) as caught:
        start_service(free_port(), {"WECHAT_COMPONENTS_FILE": "", **env}, tmp_path / "log")
    assert message in str(caught.value)
    assert "TOPSECRET" not in str(caught.value)
