"""``make dev`` as a new user runs it: it starts, serves a token, and Ctrl-C stops it all."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack.processes import free_port, http_get, port_is_free
from devstack.stack import REPO

pytestmark = pytest.mark.e2e


def test_dev_stack_starts_serves_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    service_port, mock_port = free_port(), free_port()
    output = tmp_path / "dev.out"
    with output.open("wb") as out:
        dev = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devstack",
                "--service-port",
                str(service_port),
                "--mock-port",
                str(mock_port),
                "--log-dir",
                str(tmp_path / "logs"),
            ],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while "The local stack is up" not in output.read_text():
            assert dev.poll() is None, f"make dev exited early:\n{output.read_text()}"
            assert time.monotonic() < deadline, f"make dev did not come up:\n{output.read_text()}"
            time.sleep(0.2)
        banner = output.read_text()
        assert "first refresh: renewed=1" in banner
        assert f"http://127.0.0.1:{mock_port}/_mock/calls" in banner
        firestore_port = int(re.search(r"Firestore\s+127\.0\.0\.1:(\d+)", banner).group(1))  # type: ignore[union-attr]

        # The banner names the console's message URL, and its release-check command passes.
        component_appid = re.search(r"Demo component: (wx[0-9a-f]{16})", banner).group(1)  # type: ignore[union-attr]
        service_url = f"http://127.0.0.1:{service_port}"
        assert (
            f"消息与事件接收URL   {service_url}/wechat/{component_appid}/messages/$APPID$" in banner
        )
        command = re.search(r"python -m mock_wechat release-check [^\n]*\\\n\s+[^\n]+", banner)
        assert command is not None, banner
        args = command.group(0).replace("\\\n", " ").split()[1:]
        check = subprocess.run(
            [sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=120
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert "--all-groups" in args and check.stdout.count("✔") >= 41, check.stdout

        status, body = http_get(f"http://127.0.0.1:{service_port}/healthz")
        health = json.loads(body)
        assert status == 200 and health["status"] == "ok"
        (component,) = health["components"].values()
        assert component["component_token_expires_in_seconds"] > 7000

        dev.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert dev.wait(30) == 0
    finally:
        if dev.poll() is None:
            # Ctrl-C first, so it stops the servers it started in their own process groups;
            # a bare kill would leave them running after a failed assertion.
            dev.send_signal(signal.SIGINT)
            try:
                dev.wait(30)
            except subprocess.TimeoutExpired:
                dev.kill()
    text = output.read_text()
    assert "stopped: service (gunicorn), mock WeChat, Firestore emulator" in text
    for port in (service_port, mock_port, firestore_port):
        assert port_is_free(port), f"port {port} is still held after Ctrl-C"


def test_dev_stack_refuses_a_busy_port_clearly(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "devstack",
                "--service-port",
                str(port),
                "--log-dir",
                str(tmp_path),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"port {port} (for the service) is already in use" in result.stderr
