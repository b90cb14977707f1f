"""``make dev`` as a new user runs it: it starts, serves a token, and Ctrl-C stops it all."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from devstack.processes import free_port, http_get, port_is_free
from devstack.stack import REPO

pytestmark = pytest.mark.e2e


def test_dev_stack_starts_serves_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    service_port, mock_port, subscriber_port = free_port(), free_port(), free_port()
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
                "--subscriber-port",
                str(subscriber_port),
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
        assert "first refresh: renewed=2" in banner  # two components' tokens
        assert f"http://127.0.0.1:{mock_port}/_mock/calls" in banner
        firestore_port = int(re.search(r"Firestore\s+127\.0\.0\.1:(\d+)", banner).group(1))  # type: ignore[union-attr]

        # The banner names the console's message URL, and its release-check command passes.
        component_appid = re.search(r"Demo components: (wx[0-9a-f]{16})", banner).group(1)  # type: ignore[union-attr]
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

        # Authorize a demo merchant as the banner shows, then message it: the reply route
        # answers the text, and the click reaches the demo subscriber through Pub/Sub.
        pubsub_port = int(re.search(r"Pub/Sub\s+127\.0\.0\.1:(\d+)", banner).group(1))  # type: ignore[union-attr]
        account = re.search(r"--account (wx[0-9a-f]{16})", banner).group(1)  # type: ignore[union-attr]
        mock = ["--mock", f"http://127.0.0.1:{mock_port}", "--component", component_appid]
        authorize = run_mock_cli("authorize", "--service", service_url, *mock, "--account", account)
        assert authorize.returncode == 0, authorize.stdout + authorize.stderr
        text = run_mock_cli("send-message", *mock, "--account", account, "--text", "hello")
        assert text.returncode == 0 and "你说：hello" in text.stdout, text.stdout + text.stderr
        click = run_mock_cli(
            "send-message", *mock, "--account", account, "--event", "CLICK", "--event-key", "M1"
        )
        assert click.returncode == 0, click.stdout + click.stderr
        deadline = time.monotonic() + 20
        while "by push: messages CLICK" not in output.read_text():
            assert time.monotonic() < deadline, f"no click at the subscriber:\n{output.read_text()}"
            time.sleep(0.2)
        shown = output.read_text()
        assert f"by push: events authorized from {account}" in shown
        assert f"by reply: messages text 'hello' from {account}" in shown

        # Scene 2 as the banner plays it: the same account authorizes the second component;
        # the group report finds it unbound, bind-unbound binds it, and the report is clean.
        scene_2 = banner[banner.index("Scene 2") :]
        command = re.search(r"python -m mock_wechat authorize [^\n]*\\\n\s+[^\n]+", scene_2)
        assert command is not None and f"--account {account}" in command.group(0), scene_2
        args = command.group(0).replace("\\\n", " ").split()[1:]
        second = run_mock_cli(*args[2:])
        assert second.returncode == 0, second.stdout + second.stderr
        group = f"{service_url}/api/v1/open-account-group"
        key = re.search(r"Authorization: Bearer ([^']+)'", banner).group(1)  # type: ignore[union-attr]
        auth = {"Authorization": f"Bearer {key}"}
        before = requests.get(group, headers=auth, timeout=30).json()
        assert [a["appid"] for a in before["unbound"]] == [account], before
        assert len(before["unbound"][0]["components"]) == 2 and before["counts"]["bound"] == 1
        done = requests.post(f"{group}/bind-unbound", headers=auth, timeout=30).json()
        assert [b["appid"] for b in done["bound"]] == [account], done
        assert requests.get(group, headers=auth, timeout=30).json()["clean"] is True

        status, body = http_get(f"http://127.0.0.1:{service_port}/healthz")
        health = json.loads(body)
        assert status == 200 and health["status"] == "ok"
        assert len(health["components"]) == 2
        for component in health["components"].values():
            assert component["component_token_expires_in_seconds"] > 7000

        # make smoke LOCAL=1 finds the stack through DEV_LOG_DIR's state file: all pass.
        state_file = tmp_path / "logs" / "stack.json"
        smoke = run_smoke("--local", log_dir=tmp_path / "logs")
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr
        checks = [line for line in smoke.stdout.splitlines() if line[:6] in CHECK_LINES]
        assert [line.split(":")[0] for line in checks] == [
            "PASS  /healthz",
            f"PASS  entry page {component_appid}",
            f"PASS  events URL {component_appid}",
            "PASS  API without key",
            "PASS  refresh loop",
        ], smoke.stdout
        assert "over http (local)" in smoke.stdout
        # Copies of the state file that say the last refresh failed, or point at a dead port,
        # each make it fail (the stack itself is left alone).
        state = json.loads(state_file.read_text())
        refresh_failed = tmp_path / "refresh-failed" / "stack.json"
        refresh_failed.parent.mkdir()
        last = {**state["last_refresh"], "ok": False, "outcome": "refresh failed: Timeout"}
        refresh_failed.write_text(json.dumps({**state, "last_refresh": last}))
        smoke = run_smoke("--local", "--dev-state", str(refresh_failed))
        assert smoke.returncode == 1, smoke.stdout
        assert "FAIL  refresh loop: make dev's last refresh" in smoke.stdout
        assert "refresh failed: Timeout" in smoke.stdout
        dead_port = tmp_path / "dead-port.json"
        dead_port.write_text(
            json.dumps({**state, "service_url": f"http://127.0.0.1:{free_port()}"})
        )
        smoke = run_smoke("--local", "--dev-state", str(dead_port))
        assert smoke.returncode == 1, smoke.stdout
        assert "FAIL  /healthz:" in smoke.stdout and "connection refused" in smoke.stdout

        dev.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert dev.wait(30) == 0
        assert not state_file.exists(), "make dev left its state file behind"
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
    assert (
        "stopped: service (gunicorn), mock WeChat, demo subscriber, Pub/Sub emulator, "
        "Firestore emulator"
    ) in text
    for port in (service_port, mock_port, subscriber_port, firestore_port, pubsub_port):
        assert port_is_free(port), f"port {port} is still held after Ctrl-C"


CHECK_LINES = ("PASS  ", "WARN  ", "FAIL  ")


def run_smoke(*args: str, log_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"DEV_LOG_DIR": str(log_dir)} if log_dir else {})}
    return subprocess.run(
        [sys.executable, "-m", "ops.smoke", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_mock_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mock_wechat", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


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
