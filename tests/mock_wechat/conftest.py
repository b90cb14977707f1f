"""Fixtures: the mock as a real process (one per module, reset per test) and a receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.processes import ManagedProcess
from tests.mock_wechat.helpers import MockClient, Receiver, start_mock


@pytest.fixture(scope="module")
def mock_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ManagedProcess, str]]:
    process, base = start_mock(tmp_path_factory.mktemp("mock_wechat") / "mock.log")
    try:
        yield process, base
    finally:
        process.stop()


@pytest.fixture
def mock(mock_process: tuple[ManagedProcess, str]) -> MockClient:
    client = MockClient(mock_process[1])
    client.post("/_mock/reset")
    return client


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.close()
