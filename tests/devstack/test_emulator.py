"""A missing emulator is reported with the package that provides it."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack import emulator, pubsub_emulator


def test_missing_emulator_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emulator, "_sdk_roots", lambda: [tmp_path])
    with pytest.raises(emulator.EmulatorMissingError, match="google-cloud-cli-firestore-emulator"):
        emulator.find_launcher()
    assert emulator.main(["--check"]) == 1


def test_missing_pubsub_emulator_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emulator, "_sdk_roots", lambda: [tmp_path])
    with pytest.raises(emulator.EmulatorMissingError, match="google-cloud-cli-pubsub-emulator"):
        pubsub_emulator.find_pubsub_launcher()
    assert pubsub_emulator.main(["--check"]) == 1
