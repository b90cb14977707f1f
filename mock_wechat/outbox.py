"""The custom messages the API accepted (an outbox), so tests see what reached "users".

In what order, from which account, and whether one was sent before the reply.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from mock_wechat.state_part import StatePart


@dataclass(frozen=True)
class SentMessage:
    component_appid: str
    authorizer_appid: str
    touser: str
    msgtype: str
    content: dict[str, Any] = field(repr=False)  # the object named by msgtype
    time: float  # mock time
    # Sent while a message push to this user was still waiting for the service's answer.
    before_reply: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "component_appid": self.component_appid,
            "authorizer_appid": self.authorizer_appid,
            "touser": self.touser,
            "msgtype": self.msgtype,
            self.msgtype: copy.deepcopy(self.content),
            "time": self.time,
            "before_reply": self.before_reply,
        }


@dataclass(frozen=True)
class CustomMessage:
    """A custom message as the API accepted it: to whom, its type and that type's object."""

    touser: str
    msgtype: str
    content: dict[str, Any] = field(repr=False)


class Outbox(StatePart):
    """The custom messages sent, oldest first, so tests can see what reached "users"."""

    def clear(self) -> None:
        with self._lock:
            self._messages: list[SentMessage] = []

    def send(
        self, component: str, authorizer: str, message: CustomMessage, before_reply: bool
    ) -> None:
        with self._lock:
            self._messages.append(
                SentMessage(
                    component,
                    authorizer,
                    message.touser,
                    message.msgtype,
                    message.content,
                    self._clock.now(),
                    before_reply,
                )
            )

    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [m.to_dict() for m in self._messages]
