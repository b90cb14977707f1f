"""Fixtures: the program run once per configuration, shared by the tests that read it."""

from __future__ import annotations

import pytest

from tests.infra.pulumi_mocks import Deployment, base_config, run_program

ORDERS = "serviceAccount:orders@example-project.iam.gserviceaccount.com"
OPS = "user:ops@example.com"


@pytest.fixture(scope="session")
def deployment() -> Deployment:
    """The full stack: image set, two components (one with a previous AES key), alerts."""
    return run_program(base_config())


@pytest.fixture(scope="session")
def foundation() -> Deployment:
    """The stack before the first image: `image` unset."""
    return run_program(base_config(image=None))


@pytest.fixture(scope="session")
def with_domain() -> Deployment:
    """A custom public domain, the internal service reachable from outside the VPC, and the
    provider's own callers allowed to invoke it."""
    return run_program(
        base_config(
            public_domain="auth.example.com",
            internal_ingress="all",
            internal_invokers=f'["{ORDERS}", "{OPS}"]',
        )
    )
