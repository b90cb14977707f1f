"""Shared fixtures: the real Firestore and Pub/Sub emulators, started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.emulator import EmulatorMissingError, clear_emulator, start_emulator
from devstack.pubsub_emulator import start_pubsub_emulator
from service.store.firestore import FirestoreStore

# The real stack's fixtures (``stack``, ``e2e``) for tests/e2e and tests/browser.
pytest_plugins = ["tests.stack"]

TEST_PROJECT = "gateway-test"


@pytest.fixture(scope="session")
def firestore_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a running emulator; stopped by its process group at the end."""
    log_path = tmp_path_factory.mktemp("emulator") / "firestore-emulator.log"
    try:
        process, host = start_emulator(log_path)
    except EmulatorMissingError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield host
    process.stop()


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a running Pub/Sub emulator; stopped by its process group at the end."""
    log_path = tmp_path_factory.mktemp("emulator") / "pubsub-emulator.log"
    try:
        process, host = start_pubsub_emulator(log_path)
    except EmulatorMissingError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield host
    process.stop()


@pytest.fixture
def firestore_project(firestore_emulator: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An emptied emulator database, with FIRESTORE_EMULATOR_HOST pointing at it."""
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator)
    clear_emulator(firestore_emulator, TEST_PROJECT)
    return TEST_PROJECT


@pytest.fixture
def store(firestore_project: str) -> FirestoreStore:
    return FirestoreStore(project=firestore_project)
