"""The service under gunicorn refuses to start on bad configuration, and says why; once
started, /readyz says whether it reaches Firestore and WeChat."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from devstack.processes import ServerFailedError, free_port
from devstack.stack import demo_component, service_env, start_service

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


class _AnyAnswer(BaseHTTPRequestHandler):
    """Plays WeChat's API host: any HTTP answer proves the way out."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _readyz(service: str) -> requests.Response:
    return requests.get(f"{service}/readyz", timeout=10)


def test_readyz_answers_200_only_once_firestore_and_wechat_are_reached(
    tmp_path: Path, firestore_emulator: str
) -> None:
    """Cloud Run's startup probe (infra/services.py) holds traffic until this answers 200."""
    api_port = free_port()
    port = free_port()
    env = service_env(
        [demo_component()],
        f"http://127.0.0.1:{port}",
        f"http://127.0.0.1:{api_port}",
        "gateway-readyz",
        firestore_emulator,
        "key",
    )
    service = start_service(port, env, tmp_path / "service.log", workers=1)
    api: ThreadingHTTPServer | None = None
    try:
        url = f"http://127.0.0.1:{port}"
        # Nothing listens where WeChat should be: not ready, and it says which part failed.
        refused = _readyz(url)
        assert refused.status_code == 503
        assert "WeChat's API host is not reachable through the egress" in refused.json()["error"]
        # A failure is not kept: once the way out works, the next probe passes.
        api = ThreadingHTTPServer(("127.0.0.1", api_port), _AnyAnswer)
        threading.Thread(target=api.serve_forever, daemon=True).start()
        ready = _readyz(url)
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["status"] == "ready"
        assert body["firestore_ms"] >= 0 and body["egress_ms"] >= 0
        # A success is kept: WeChat gone again changes nothing for this instance.
        api.shutdown()
        api.server_close()
        api = None
        assert _readyz(url).status_code == 200
        assert "startup check passed" in (tmp_path / "service.log").read_text()
    finally:
        service.stop()
        if api is not None:
            api.shutdown()
            api.server_close()


def test_readyz_says_firestore_within_the_probe_s_timeout(tmp_path: Path) -> None:
    port = free_port()
    env = service_env(
        [demo_component()],
        f"http://127.0.0.1:{port}",
        f"http://127.0.0.1:{free_port()}",
        "gateway-readyz",
        f"127.0.0.1:{free_port()}",  # no Firestore there
        "key",
    )
    env["SERVICE_ROLE"] = "public"  # its /healthz, which start_service waits for, reads nothing
    service = start_service(port, env, tmp_path / "service.log", workers=1)
    try:
        started = time.monotonic()
        refused = _readyz(f"http://127.0.0.1:{port}")
        elapsed = time.monotonic() - started
        assert refused.status_code == 503
        assert refused.json()["error"].startswith("Firestore did not answer")
        # The probe gives up after 3 s (PROBE_TIMEOUT in infra/services.py): answer before.
        assert elapsed < 3.0, elapsed
    finally:
        service.stop()
