"""The Dockerfile, as far as this machine can check it without a Docker engine.

What the image holds is rebuilt here: a fresh virtualenv with only the [project] dependencies,
and a folder with only what the Dockerfile copies. The image's own CMD runs from it, with
the environment Cloud Run gives the public service.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devstack.processes import free_port, start_process
from devstack.stack import component_variables, demo_component

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def instructions(name: str) -> list[str]:
    """The arguments of every ``name`` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.+)$", joined, re.MULTILINE)]


def test_slim_python_non_root_and_only_the_service() -> None:
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", instructions("FROM")[0])
    users = instructions("USER")
    assert users and users[-1] not in ("root", "0")
    assert {line.split()[0] for line in instructions("COPY")} == {"pyproject.toml", "service"}
    runs = " ".join(instructions("RUN"))
    assert "['project']['dependencies']" in runs
    for dev_only in ("[dev]", "optional-dependencies", "pytest", "pulumi", "playwright"):
        assert dev_only not in runs


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with the runtime dependencies, and the app folder beside it."""
    root = tmp_path_factory.mktemp("image")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (root / "requirements.txt").write_text("\n".join(project["dependencies"]))
    installed = subprocess.run(
        [str(root / "venv" / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
        + ["-r", str(root / "requirements.txt")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, f"pip install of the runtime dependencies: {installed.stderr}"
    shutil.copytree(
        REPO / "service", root / "app" / "service", ignore=shutil.ignore_patterns("__pycache__")
    )
    return root


@pytest.fixture(scope="module")
def image_service(image_root: Path) -> Iterator[str]:
    command = json.loads(instructions("CMD")[-1])
    assert command[0] == "gunicorn"
    port = free_port()
    env = {
        "PATH": f"{image_root / 'venv' / 'bin'}:/usr/bin:/bin",
        "PORT": str(port),
        "SERVICE_ROLE": "public",
        "GOOGLE_CLOUD_PROJECT": "image-check",
        **component_variables(demo_component()),
    }
    process = start_process(
        "service from the image's CMD",
        [str(image_root / "venv" / "bin" / command[0]), *command[1:]],
        image_root / "service.log",
        env=env,
        cwd=image_root / "app",
    )
    try:
        process.wait_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


def test_the_image_command_serves_on_port(image_service: str) -> None:
    assert requests.get(f"{image_service}/healthz", timeout=10).json() == {
        "status": "ok",
        "role": "public",
    }
    page = requests.get(f"{image_service}/authorize/wx0000000000000000", timeout=10)
    assert page.status_code == 404 and "text/html" in page.headers["Content-Type"]


def test_the_image_has_no_dev_tools_and_no_mock(image_root: Path) -> None:
    python = str(image_root / "venv" / "bin" / "python")
    for module in ("pytest", "pulumi", "mock_wechat", "devstack", "hypothesis"):
        found = subprocess.run(
            [python, "-c", f"import {module}"], cwd=image_root / "app", capture_output=True
        )
        assert found.returncode != 0, f"{module} is importable in the image"
