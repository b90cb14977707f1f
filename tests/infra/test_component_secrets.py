"""Secrets reach the services only from Secret Manager, and their values nowhere else."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from tests.infra.pulumi_mocks import (
    APPID_A,
    APPID_B,
    GCP_PROJECT,
    SECRET_VALUES,
    Deployment,
    Registration,
    is_secret,
)

SECRET = "gcp:secretmanager/secret:Secret"
VERSION = "gcp:secretmanager/secretVersion:SecretVersion"
SERVICE = "gcp:cloudrunv2/service:Service"
SECRET_ENV = re.compile(
    r"^WECHAT_COMPONENT_(?P<appid>WX[0-9A-F]{16})_(?P<kind>SECRET|TOKEN|ENCODING_AES_KEY|"
    r"PREVIOUS_ENCODING_AES_KEY)$"
)
SECRET_SUFFIXES = ("_SECRET", "_TOKEN", "_ENCODING_AES_KEY")


def strings(tree: Any) -> Iterator[str]:
    """Every string in a recorded input tree, keys included."""
    if isinstance(tree, str):
        yield tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(tree, list | tuple):
        for item in tree:
            yield from strings(item)


def envs(service: Registration) -> list[dict[str, Any]]:
    (container,) = service.inputs["template"]["containers"]
    result: list[dict[str, Any]] = container["envs"]
    return result


def test_one_secret_per_configured_value(deployment: Deployment) -> None:
    secrets = {r.inputs["secretId"]: r for r in deployment.of_type(SECRET)}
    assert set(secrets) == {
        f"wcg-dev-{APPID_A}-appsecret",
        f"wcg-dev-{APPID_A}-token",
        f"wcg-dev-{APPID_A}-encoding-aes-key",
        f"wcg-dev-{APPID_A}-previous-encoding-aes-key",  # configured for A only
        f"wcg-dev-{APPID_B}-appsecret",
        f"wcg-dev-{APPID_B}-token",
        f"wcg-dev-{APPID_B}-encoding-aes-key",
    }
    for secret in secrets.values():
        assert secret.inputs["replication"] == {"auto": {}}
    # Each value is stored once, in the version of the secret named for it.
    stored = {}
    for version in deployment.of_type(VERSION):
        secret_id = version.inputs["secret"].rsplit("/", 1)[-1]
        stored[secret_id] = version.inputs["secretData"]
    for key, value in SECRET_VALUES.items():
        appid, _, kind = key.partition("_")
        assert value in set(strings(stored[f"wcg-dev-{appid}-{kind.replace('_', '-')}"]))


def test_secret_env_vars_are_references_only(deployment: Deployment) -> None:
    secrets = {
        f"projects/{GCP_PROJECT}/secrets/{r.inputs['secretId']}": r
        for r in deployment.of_type(SECRET)
    }
    versions = {v.inputs["secret"]: v for v in deployment.of_type(VERSION)}
    for service in deployment.of_type(SERVICE):
        seen = set()
        for env in envs(service):
            name = env["name"]
            if not name.endswith(SECRET_SUFFIXES):
                continue
            match = SECRET_ENV.match(name)
            assert match, name
            appid = match["appid"].lower()
            assert "value" not in env, f"{name} has a plain value"
            ref = env["valueSource"]["secretKeyRef"]
            secret = secrets[ref["secret"]]
            assert secret.inputs["labels"] == {"component": appid}
            kind = match["kind"].lower().replace("_", "-").replace("secret", "appsecret")
            assert secret.inputs["secretId"] == f"wcg-dev-{appid}-{kind}"
            # Pinned to the version pulumi created for that secret: rotation rolls a revision.
            assert ref["version"] == versions[ref["secret"]].state["version"]
            seen.add(name)
        expected = {
            f"WECHAT_COMPONENT_{appid.upper()}_{suffix}"
            for appid in (APPID_A, APPID_B)
            for suffix in ("SECRET", "TOKEN", "ENCODING_AES_KEY")
        } | {f"WECHAT_COMPONENT_{APPID_A.upper()}_PREVIOUS_ENCODING_AES_KEY"}
        assert seen == expected, service.name


def test_no_secret_value_anywhere_but_its_version(deployment: Deployment) -> None:
    for resource in deployment.resources:
        if resource.type == VERSION:
            continue
        found = set(strings(resource.inputs))
        for key, value in SECRET_VALUES.items():
            assert not any(value in s for s in found), f"{key} leaks into {resource.name}"
    for value in SECRET_VALUES.values():
        assert not any(value in s for s in strings(deployment.outputs))


def test_secret_values_are_marked_secret(deployment: Deployment) -> None:
    # Pulumi encrypts a secret input in its state; a plain one would be stored readable.
    for version in deployment.of_type(VERSION):
        assert is_secret(version.inputs["secretData"]), version.name


def test_a_rotated_version_is_disabled_not_destroyed(deployment: Deployment) -> None:
    """Replacing a version (a rotation) deletes the old one by default, and a rollback to a
    revision pinned to it would no longer start."""
    versions = deployment.of_type("gcp:secretmanager/secretVersion:SecretVersion")
    assert len(versions) == 7
    for version in versions:
        assert version.inputs["deletionPolicy"] == "DISABLE", version.name
