"""The real stack for end-to-end and browser tests: the emulator, mock WeChat and gunicorn.

Started once per module; each test gets an emptied database and a reset mock with the
demo component registered again.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.emulator import clear_emulator
from devstack.processes import ManagedProcess, free_port
from devstack.stack import (
    MockControl,
    demo_component,
    mock_registration,
    service_env,
    start_mock,
    start_service,
)
from service.config import ComponentConfig
from service.store.firestore import FirestoreStore

E2E_PROJECT = "gateway-e2e"
API_KEY = "e2e-key"


@dataclass
class Stack:
    demo: ComponentConfig
    service_url: str
    mock_url: str
    mock: MockControl
    service: ManagedProcess
    mock_process: ManagedProcess
    firestore_host: str
    store: FirestoreStore

    @property
    def events_url(self) -> str:
        return f"{self.service_url}/wechat/{self.demo.appid}/events"

    @property
    def message_url(self) -> str:
        """The 消息与事件接收URL as entered in the console: WeChat fills in $APPID$."""
        return f"{self.service_url}/wechat/{self.demo.appid}/messages/$APPID$"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"}

    def register_component(self) -> None:
        # No automatic ticket pushes: tests push when they mean to. A scheduled push set
        # off by a clock jump could otherwise land after the next test emptied the store.
        self.mock.register_component(
            mock_registration(
                self.demo,
                event_url=self.events_url,
                auth_domain="127.0.0.1",
                message_url=self.message_url,
                auto_push=False,
            )
        )


def start_stack(
    firestore_host: str, logs: Path, extra_env: Mapping[str, str] | None = None
) -> Stack:
    """Mock WeChat and the service (gunicorn, 2 workers) with the demo component."""
    mock_port, service_port = free_port(), free_port()
    mock_process = start_mock(mock_port, logs / "mock-wechat.log")
    demo = demo_component()
    mock_url = f"http://127.0.0.1:{mock_port}"
    try:
        env = service_env(
            [demo],
            f"http://127.0.0.1:{service_port}",
            mock_url,
            E2E_PROJECT,
            firestore_host,
            API_KEY,
        )
        service = start_service(
            service_port,
            {**env, **(extra_env or {})},
            logs / "service.log",
            workers=2,
            # A worker busy with 4 requests leaves the rest of a burst to the other one.
            worker_connections=4,
        )
    except Exception:
        mock_process.stop()
        raise
    return Stack(
        demo=demo,
        service_url=f"http://127.0.0.1:{service_port}",
        mock_url=mock_url,
        # A message waits up to 3 x 5 s for its answers; a release check runs many.
        mock=MockControl(mock_url, timeout=180),
        service=service,
        mock_process=mock_process,
        firestore_host=firestore_host,
        store=FirestoreStore(project=E2E_PROJECT),
    )


@pytest.fixture(scope="module")
def stack(firestore_emulator: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(firestore_emulator, tmp_path_factory.mktemp("e2e-logs"))
    yield stack
    stack.service.stop()
    stack.mock_process.stop()


@pytest.fixture
def e2e(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", stack.firestore_host)
    stack.mock.reset()  # first, so nothing from the last test writes after the clear
    clear_emulator(stack.firestore_host, E2E_PROJECT)
    stack.register_component()
    return stack
