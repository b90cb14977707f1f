"""Lease owner ids: which process (and which call in it) holds a refresh or exchange lease."""

from __future__ import annotations

import os
import socket
import uuid


def new_lease_owner() -> str:
    """Host, pid and a random suffix: readable in the store, unique per call."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
