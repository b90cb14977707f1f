"""The Cloud Firestore emulator: find its launcher, start it, empty it.

The launcher is run directly (not through ``gcloud emulators``), in a new process group, so
that stopping the group also stops its Java child.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

from devstack.processes import ManagedProcess, on_a_free_port, start_process

PACKAGE = "google-cloud-cli-firestore-emulator"
LAUNCHER = Path("platform/cloud-firestore-emulator/cloud_firestore_emulator")
INSTALL_HINT = (
    f"The Cloud Firestore emulator is missing. Install the Debian package {PACKAGE} "
    f"(apt-get install {PACKAGE}, from Google Cloud's apt repository) and a Java runtime."
)


class EmulatorMissingError(RuntimeError):
    pass


def _sdk_roots() -> list[Path]:
    roots = [Path("/usr/lib/google-cloud-sdk")]
    gcloud = shutil.which("gcloud")
    if gcloud:
        try:
            out = subprocess.run(
                [gcloud, "info", "--format=value(installation.sdk_root)"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        if out:
            roots.insert(0, Path(out))
    return roots


def find_launcher(launcher: Path = LAUNCHER, hint: str = INSTALL_HINT) -> Path:
    """The launcher of a Google Cloud SDK emulator (Java); ``hint``: how to install it."""
    for root in _sdk_roots():
        candidate = root / launcher
        if candidate.is_file():
            if shutil.which("java") is None:
                raise EmulatorMissingError(hint + " (java was not found on PATH)")
            return candidate
    raise EmulatorMissingError(hint)


def start_emulator(log_path: Path, port: int | None = None) -> tuple[ManagedProcess, str]:
    """Start the emulator and wait until it answers ``Ok``; returns (process, host:port)."""
    return start_listening("Firestore emulator", [str(find_launcher()), "start"], log_path, port)


def start_listening(
    name: str, command: list[str], log_path: Path, port: int | None = None
) -> tuple[ManagedProcess, str]:
    """An emulator's ``command`` on 127.0.0.1 (``port``, else a free one), once it answers
    ``Ok`` at ``/``; returns (process, host:port)."""

    def start(port: int) -> tuple[ManagedProcess, str]:
        process = start_process(name, [*command, "--host=127.0.0.1", f"--port={port}"], log_path)
        host = f"127.0.0.1:{port}"
        process.wait_http(f"http://{host}/", expect="Ok", timeout=60)
        return process, host

    return on_a_free_port(start, port)


def clear_emulator(host: str, project: str) -> None:
    """Delete every document of the project's default database."""
    url = f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents"
    request = urllib.request.Request(url, method="DELETE")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def check_cli(what: str, find: Callable[[], object], argv: list[str] | None) -> int:
    """``python -m devstack.<emulator> --check``: where the emulator is, or how to install it."""
    parser = argparse.ArgumentParser(description=f"Check for the Cloud {what} emulator.")
    parser.add_argument("--check", action="store_true", help="exit non-zero if it is missing")
    parser.parse_args(argv)
    try:
        print(f"{what} emulator: {find()}")
    except EmulatorMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return check_cli("Firestore", find_launcher, argv)


if __name__ == "__main__":
    sys.exit(main())
