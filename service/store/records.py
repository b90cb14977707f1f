"""The records the gateway keeps, and the store interface the core talks to.

A record is immutable; a change is a pure function from the current record to the new one
(or ``None`` for "no change"), which the store applies with compare-and-set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol, Self


@dataclass(frozen=True)
class ComponentRecord:
    """Everything about one component that must survive a restart (components/<appid>)."""

    appid: str
    ticket: str | None = field(default=None, repr=False)
    ticket_create_time: int | None = None  # WeChat's CreateTime of the push
    ticket_received_at: float | None = None  # our clock
    component_token: str | None = field(default=None, repr=False)
    component_token_expires_at: float | None = None
    refresh_lease_owner: str | None = None
    refresh_lease_until: float | None = None
    push_ticket_requested_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None

    def token_valid_at(self, moment: float) -> bool:
        expires_at = self.component_token_expires_at
        return bool(self.component_token) and expires_at is not None and expires_at > moment

    def lease_free_at(self, moment: float) -> bool:
        until = self.refresh_lease_until
        return self.refresh_lease_owner is None or until is None or until <= moment

    def to_document(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_document(cls, appid: str, data: dict[str, Any]) -> Self:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["appid"] = appid
        return cls(**values)

    def but(self, **changes: Any) -> Self:
        return replace(self, **changes)


ComponentChange = Callable[[ComponentRecord], ComponentRecord | None]


@dataclass(frozen=True)
class Modified:
    record: ComponentRecord
    changed: bool


class StoreError(RuntimeError):
    pass


class ContentionError(StoreError):
    """A compare-and-set kept losing to other writers."""


class ComponentStore(Protocol):
    def get_component(self, appid: str) -> ComponentRecord:
        """The stored record, or an empty one (only ``appid`` set) if there is none."""
        ...

    def modify_component(self, appid: str, change: ComponentChange) -> Modified:
        """Apply ``change`` atomically: re-read and retry if another writer came first."""
        ...
