"""The real processes the service benchmarks need, started on free ports and always stopped.

``BenchStack`` is a context manager: the Firestore emulator (and, with ``pubsub=True``, the
Pub/Sub emulator), mock WeChat and the service under gunicorn (the same ``devstack``
helpers ``make dev`` uses), one component registered in both with its first ticket pushed
and its component token fetched by a sweep, as the end-to-end tests bring a component up.
Every process is stopped by its process group on the way out, whatever happened. Logs go
to a temporary directory, kept and named when something failed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from devstack.emulator import start_emulator
from devstack.processes import ManagedProcess, free_port
from devstack.pubsub_emulator import PubSubAdmin, start_pubsub_emulator
from devstack.stack import (
    MockControl,
    demo_component,
    mock_registration,
    service_env,
    start_mock,
    start_service,
)
from service.config import ComponentConfig
from service.store.records import AuthorizerRecord

PROJECT = "gateway-bench"
API_KEY = "bench-key"
BATCH = 500  # Firestore's limit of writes in one batch


class BenchError(RuntimeError):
    """The stack or the service did not do what the benchmark needs."""


def progress(message: str) -> None:
    print(f"  {message}", flush=True)


class BenchStack:
    """Emulator + mock WeChat + service, with ``component`` registered and ready."""

    def __init__(
        self,
        name: str,
        service_settings: Mapping[str, str] | None = None,
        workers: int = 2,
        threads: int = 8,
        pubsub: bool = False,
        topics: Sequence[str] = (),
    ) -> None:
        self.with_pubsub = pubsub or bool(topics)
        self.topics = tuple(topics)  # created before the service starts
        self.pubsub: ManagedProcess | None = None
        self.pubsub_host = ""
        self.logs = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        self.component: ComponentConfig = demo_component()
        self.service_settings = dict(service_settings or {})
        self.workers, self.threads = workers, threads
        self._processes: list[ManagedProcess] = []
        self._firestore: Any = None
        self.service: ManagedProcess | None = None
        self.emulator: ManagedProcess | None = None
        self.mock_process: ManagedProcess | None = None
        self.service_url = ""
        self.mock_url = ""
        self.firestore_host = ""
        self.auth = {"Authorization": f"Bearer {API_KEY}"}

    # ----- lifetime ------------------------------------------------------------------

    def __enter__(self) -> BenchStack:
        try:
            self._start()
        except BaseException:
            self._close(failed=True)
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._close(failed=error is not None)

    def _close(self, failed: bool) -> None:
        self.stop()
        if failed:
            print(f"  (process logs kept in {self.logs})", file=sys.stderr, flush=True)
        else:
            shutil.rmtree(self.logs, ignore_errors=True)

    def _start(self) -> None:
        progress("starting the Firestore emulator, mock WeChat and the service")
        self.emulator, self.firestore_host = start_emulator(self.logs / "firestore-emulator.log")
        self._processes.append(self.emulator)
        if self.with_pubsub:
            progress("starting the Pub/Sub emulator")
            self.pubsub, self.pubsub_host = start_pubsub_emulator(self.logs / "pubsub.log")
            self._processes.append(self.pubsub)
            for topic in self.topics:
                self.pubsub_admin().create_topic(topic)
        mock_port = free_port()
        self.mock_process = start_mock(mock_port, self.logs / "mock-wechat.log")
        self._processes.append(self.mock_process)
        self.mock_url = f"http://127.0.0.1:{mock_port}"
        self.mock = MockControl(self.mock_url, timeout=60)
        self.start_service(self.service_settings)
        self._bring_up_component()

    def start_service(self, settings: Mapping[str, str]) -> None:
        """(Re)start the service with ``settings`` added to its environment."""
        if self.service is not None:
            self._processes.remove(self.service)
            self.service.stop()
        self.service_url, self.service = self.start_gateway(settings)

    def start_gateway(self, settings: Mapping[str, str]) -> tuple[str, ManagedProcess]:
        """Another instance of the service on the same store, with ``settings`` added."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = service_env(
            [self.component], url, self.mock_url, PROJECT, self.firestore_host, API_KEY
        )
        if self.pubsub_host:
            env["PUBSUB_EMULATOR_HOST"] = self.pubsub_host
        process = start_service(
            port,
            {**env, **settings},
            self.logs / f"service-{port}.log",
            workers=self.workers,
            threads=self.threads,
        )
        self._processes.append(process)
        return url, process

    def pubsub_admin(self) -> PubSubAdmin:
        if not self.pubsub_host:
            raise BenchError("this stack was started without the Pub/Sub emulator")
        return PubSubAdmin(self.pubsub_host, PROJECT)

    def start_gunicorn(self, name: str, app: str, env: Mapping[str, str] | None = None) -> str:
        """Another WSGI ``app`` under the service's gunicorn settings; returns its URL."""
        return self.start_gunicorn_process(name, app, env)[0]

    def start_gunicorn_process(
        self, name: str, app: str, env: Mapping[str, str] | None = None
    ) -> tuple[str, ManagedProcess]:
        """``start_gunicorn``, with the process (to read its CPU time)."""
        port = free_port()
        process = start_service(
            port,
            dict(env or {}),
            self.logs / f"{name}.log",
            workers=self.workers,
            threads=self.threads,
            app=app,
            ready_path="/",
            name=name,
        )
        self._processes.append(process)
        return f"http://127.0.0.1:{port}", process

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by the service, the emulator and the mock."""
        parts = {"service": self.service, "emulator": self.emulator, "mock": self.mock_process}
        return {name: group_cpu_seconds(p.pid) if p else 0.0 for name, p in parts.items()}

    def stop(self) -> None:
        while self._processes:
            with contextlib.suppress(Exception):  # stop the rest whatever one does
                self._processes.pop().stop()

    # ----- the component -------------------------------------------------------------

    def _bring_up_component(self) -> None:
        appid = self.component.appid
        events = f"{self.service_url}/wechat/{appid}/events"
        messages = f"{self.service_url}/wechat/{appid}/messages/$APPID$"
        # No automatic pushes: a ticket push in the middle of a timing is noise.
        self.mock.register_component(
            mock_registration(self.component, events, "127.0.0.1", messages, auto_push=False)
        )
        pushed = self.mock.push_ticket(appid)
        if not pushed.get("delivered"):
            raise BenchError(f"the service did not take the ticket push: {pushed}")
        self.refresh(timeout=60)
        if not self.mock.calls("api_component_token"):
            raise BenchError("the first /tasks/refresh did not fetch a component token")

    def refresh(self, timeout: float = 600) -> dict[str, Any]:
        """One ``POST /tasks/refresh``; its report."""
        response = requests.post(
            f"{self.service_url}/tasks/refresh", headers=self.auth, timeout=timeout
        )
        if response.status_code != 200:
            raise BenchError(
                f"POST /tasks/refresh answered {response.status_code}: {response.text[:500]}"
            )
        report: dict[str, Any] = response.json()
        return report

    def seed(self, count: int, kind: str = "official_account") -> list[dict[str, str]]:
        """``count`` authorized authorizers in the mock (its seed endpoint)."""
        return self.mock.seed_authorizers(self.component.appid, count, kind)

    # ----- Firestore -----------------------------------------------------------------

    @property
    def firestore(self) -> Any:
        """A Firestore client on the emulator, made on first use (never before a fork)."""
        if self._firestore is None:
            from google.cloud import firestore

            # The client finds the emulator (and needs no credentials) through this variable.
            os.environ["FIRESTORE_EMULATOR_HOST"] = self.firestore_host
            self._firestore = firestore.Client(project=PROJECT)
        return self._firestore

    def authorizer_ref(self, appid: str) -> Any:
        components = self.firestore.collection("components")
        return components.document(self.component.appid).collection("authorizers").document(appid)

    def write_authorizers(self, records: Iterable[AuthorizerRecord]) -> int:
        """Write the records as the service stores them, 500 to a batch; returns how many."""
        written = 0
        batch = self.firestore.batch()
        for record in records:
            batch.set(self.authorizer_ref(record.appid), record.to_document())
            written += 1
            if written % BATCH == 0:
                batch.commit()
                batch = self.firestore.batch()
        if written % BATCH:
            batch.commit()
        return written

    def stored_ticket(self) -> str:
        """The component_verify_ticket the service stored (``components/<c>.ticket``)."""
        document = self.firestore.collection("components").document(self.component.appid).get()
        ticket = (document.to_dict() or {}).get("ticket")
        if not isinstance(ticket, str) or not ticket:
            raise BenchError("the service stored no ticket for the component")
        return ticket


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a process group.

    Linux only (``/proc``); 0.0 elsewhere. Used to tell which process a timing waited on.
    """
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name may hold spaces and parentheses: split after the last ')'.
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[2]) == pgid:  # fields[0] is the state, [2] the process group
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def authorizer_record(
    component_appid: str,
    appid: str,
    refresh_token: str,
    expires_in: float,
    kind: str = "official_account",
) -> AuthorizerRecord:
    """A stored authorized authorizer whose access token lives ``expires_in`` more seconds."""
    now = time.time()
    return AuthorizerRecord(
        component_appid=component_appid,
        appid=appid,
        status="authorized",
        account_type=kind,
        func_info=(1, 2, 3),
        authorized_at=now,
        updated_at=now,
        refresh_token=refresh_token,
        access_token="seed-" + appid,
        access_token_expires_at=now + expires_in,
    )
