"""Fixtures shared by the authorizer end-to-end tests."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import authorized_merchant, ready_component
from tests.stack import Stack


@pytest.fixture
def ready(e2e: Stack) -> Stack:
    """A component with a ticket and a token."""
    ready_component(e2e)
    return e2e


@pytest.fixture
def merchant(ready: Stack) -> str:
    """An official account authorized to it, through the real flow."""
    return authorized_merchant(ready)
