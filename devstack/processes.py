"""Start, await and stop local servers, each in its own process group.

Used by ``make dev`` and by the test fixtures. A server is stopped by its process group id,
never by name, so nothing else on the machine is touched.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def on_a_free_port(
    start: Callable[[int], tuple[ManagedProcess, str]], port: int | None, attempts: int = 3
) -> tuple[ManagedProcess, str]:
    """``start(port)``, on a new free port again if the server exits before it is ready.

    A free port is free when chosen; another test process may take it before the server
    binds it (seen with parallel workers). A port asked for explicitly is not changed.
    """
    for attempt in range(1 if port else attempts):
        try:
            return start(port or free_port())
        except ServerFailedError:
            if port or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """GET a URL; returns (status, body). Connection failures raise OSError."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


class ServerFailedError(RuntimeError):
    pass


@dataclass
class ManagedProcess:
    """A server started in a new session (its own process group), with its output in a file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log_file: IO[bytes] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""

    def wait_until(
        self, ready: Callable[[], bool], timeout: float = 30.0, what: str = "ready"
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerFailedError(
                    f"{self.name} exited with code {self.process.returncode} before it was "
                    f"{what}. Its output:\n{self.log_text()[-4000:]}"
                )
            try:
                if ready():
                    return
            except (OSError, http.client.HTTPException):
                pass  # not listening yet, or someone else's server on the port: not ready
            time.sleep(0.1)
        self.stop()
        raise ServerFailedError(
            f"{self.name} was not {what} after {timeout:.0f}s. Its output:\n"
            f"{self.log_text()[-4000:]}"
        )

    def wait_http(self, url: str, expect: str | None = None, timeout: float = 30.0) -> None:
        def ready() -> bool:
            status, body = http_get(url)
            return status == 200 and (expect is None or body.strip() == expect)

        self.wait_until(ready, timeout, what=f"answering {url}")

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the whole process group, then SIGKILL what is left after ``grace``."""
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # Children (the emulator's Java process, gunicorn workers) may outlive the leader.
        _signal_group(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(grace)
        self._log_file.close()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def start_process(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ManagedProcess:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        list(argv),
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,
    )
    return ManagedProcess(name, process, log_path, log_file)
