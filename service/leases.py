"""Leases: who may do a piece of work on a record right now, across every process.

A lease is an owner id and an expiry kept on the record it guards (a component, an
authorizer, an authorization code, a release-check send). Each operation below is a
*change*: a pure function from the current record to the new one (or None, "no change"),
which the store applies with compare-and-set, so two processes never both win.

- ``take``: the lease is free (never taken, released, or expired: a takeover).
- ``renew``: only its owner extends it; ``while_held`` changes the record meanwhile.
- ``release``: only its owner gives it back, optionally with a change of its own.
- ``finish``: the work's outcome. Only the owner may record it, unless it is ``final``
  (a fact that cannot be undone, such as "the code was exchanged" or "this token was
  issued"): a holder overtaken after its lease expired still records that, because the
  world has changed whatever the lease says.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, Self, TypeVar

_host: tuple[int, str] | None = None  # (pid, "host:pid"), made once per process


def new_lease_owner() -> str:
    """Host, pid and a random suffix: readable in the store, unique per call."""
    global _host
    pid = os.getpid()
    if _host is None or _host[0] != pid:  # a forked child has its own pid
        _host = (pid, f"{socket.gethostname()}:{pid}")
    return f"{_host[1]}:{os.urandom(4).hex()}"


@dataclass(frozen=True)
class Lease:
    owner: str | None = None
    until: float | None = None

    def free_at(self, moment: float) -> bool:
        return self.owner is None or self.until is None or self.until <= moment

    def held_by(self, owner: str) -> bool:
        """Still ours: nobody took it over (whether or not it has expired)."""
        return self.owner == owner


RELEASED = Lease()


class Leased(Protocol):
    @property
    def lease(self) -> Lease: ...

    def with_lease(self, lease: Lease) -> Self: ...


L = TypeVar("L", bound=Leased)
LeaseChange = Callable[[L | None], L | None]
LeaseOutcome = Callable[[L], L | None]


def take(
    owner: str, now: float, seconds: float, when: Callable[[L], bool] | None = None
) -> LeaseChange[L]:
    """Take the lease if it is free at ``now`` and ``when`` (the work is still wanted) holds."""

    def change(current: L | None) -> L | None:
        if current is None or not current.lease.free_at(now):
            return None
        if when is not None and not when(current):
            return None
        return current.with_lease(Lease(owner, now + seconds))

    return change


def renew(owner: str, now: float, seconds: float) -> LeaseChange[L]:
    def change(current: L | None) -> L | None:
        if current is None or not current.lease.held_by(owner):
            return None
        return current.with_lease(Lease(owner, now + seconds))

    return change


def while_held(owner: str, update: LeaseOutcome[L]) -> LeaseChange[L]:
    """Apply ``update`` only while the lease is ``owner``'s, keeping it held."""

    def change(current: L | None) -> L | None:
        if current is None or not current.lease.held_by(owner):
            return None
        return update(current)

    return change


def release(owner: str, update: Callable[[L], L] | None = None) -> LeaseChange[L]:
    """Give the lease back, with ``update`` applied; nothing if someone took it over."""

    def change(current: L | None) -> L | None:
        if current is None or not current.lease.held_by(owner):
            return None
        base = update(current) if update is not None else current
        return base.with_lease(RELEASED)

    return change


def finish(owner: str, outcome: LeaseOutcome[L], final: bool = False) -> LeaseChange[L]:
    """Record ``outcome`` and give the lease back: by its owner, or by anyone if ``final``.

    ``outcome`` may decline (None), e.g. when a newer result is already stored; the owner
    still gives its lease back then.
    """

    def change(current: L | None) -> L | None:
        if current is None:
            return None
        held = current.lease.held_by(owner)
        if not held and not final:
            return None
        finished = outcome(current)
        if finished is None:
            return current.with_lease(RELEASED) if held else None
        return finished.with_lease(RELEASED) if held else finished

    return change
