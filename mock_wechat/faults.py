"""Fault rules as data: an ordered list matched first-wins on the API name.

A rule may delay (a real sleep, done first), then drop the connection, answer a WeChat
errcode, or answer a bare HTTP status. With only a delay, the call is processed normally.
``delay_after`` is a sleep after the call was processed and before its answer is sent: the
state has changed (a token was issued, a refresh token rotated) whatever the client sees.
With ``drop`` too, the connection is dropped after that sleep, so the answer is lost: a
response lost on the wire. ``times`` counts matches down; a rule at 0 stays listed but no
longer matches.

``message_push`` is a pseudo-API: the mock's own message pushes to a component's
消息与事件接收URL, where the mock is the client and the service answers. A rule naming it
applies to each try of a push (``times`` counts tries): ``delay`` sleeps before the try is
sent; ``delay_after`` holds the service's answer that long before the mock reads it (past
the 5 s timeout, counted from the send, the try has timed out and the next one is made);
``drop`` loses the answer (the connection is closed unread), so the try fails and is
retried. There is no WeChat answer to replace, so errcode and http_status are refused, and
``*`` rules never apply to it.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mock_wechat.config import InvalidField

ANY_API = "*"
MESSAGE_PUSH = "message_push"  # the mock's pushes to a message URL, not an API
MAX_DELAY = 300.0


@dataclass
class FaultRule:
    api: str
    errcode: int | None = None
    http_status: int | None = None
    delay: float = 0.0
    delay_after: float = 0.0  # seconds between processing the call and answering it
    drop: bool = False
    times: int | None = None  # remaining matches; None means unlimited

    def __post_init__(self) -> None:
        if not self.api:
            raise InvalidField("api", "must be an API name or '*'")
        if self.errcode == 0:
            raise InvalidField("errcode", "must be a non-zero errcode")
        if self.http_status is not None and not 200 <= self.http_status <= 599:
            raise InvalidField("http_status", "must be an HTTP status from 200 to 599")
        for name in ("delay", "delay_after"):
            seconds = getattr(self, name)
            if not (math.isfinite(seconds) and 0 <= seconds <= MAX_DELAY):
                raise InvalidField(name, f"must be seconds from 0 to {MAX_DELAY:g}")
        if self.times is not None and self.times < 1:
            raise InvalidField("times", "must be an integer >= 1 (omit it for unlimited)")
        if self.api == MESSAGE_PUSH:
            for name in ("errcode", "http_status"):
                if getattr(self, name) is not None:
                    raise InvalidField(
                        name,
                        f"does not apply to {MESSAGE_PUSH} (the service answers those pushes); "
                        "use delay, delay_after or drop",
                    )
        answered = self.errcode is not None or self.http_status is not None
        # Refuse combinations where one part would be silently ignored.
        if self.drop and answered:
            raise InvalidField("drop", "cannot be combined with errcode or http_status")
        if self.errcode is not None and self.http_status is not None:
            raise InvalidField("errcode", "cannot be combined with http_status")
        # An errcode or a status replaces the processing that delay_after waits after.
        if self.delay_after and answered:
            raise InvalidField(
                "delay_after", "cannot be combined with errcode or http_status (use delay)"
            )
        if not (answered or self.drop or self.delay or self.delay_after):
            raise InvalidField(
                "effect", "give at least one of errcode, http_status, delay, delay_after, drop"
            )

    @property
    def drops_unprocessed(self) -> bool:
        """A drop instead of processing; with ``delay_after`` the drop comes after it."""
        return self.drop and not self.delay_after

    def matches(self, api: str) -> bool:
        if self.times == 0:
            return False
        return self.api == api or (self.api == ANY_API and api != MESSAGE_PUSH)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class FaultBook:
    """The ordered rules. Not locked itself: the owning state object serializes access."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []

    def replace(self, rules: Iterable[FaultRule]) -> None:
        # Copies, so a caller keeping its rule objects cannot change the countdown.
        self._rules = [copy.copy(rule) for rule in rules]

    def clear(self) -> None:
        self._rules = []

    def rules(self) -> list[FaultRule]:
        return [copy.copy(rule) for rule in self._rules]

    def take(self, api: str) -> FaultRule | None:
        """The first rule matching ``api``, counted down once; a snapshot of it, or None."""
        for rule in self._rules:
            if rule.matches(api):
                if rule.times is not None:
                    rule.times -= 1
                return copy.copy(rule)
        return None
