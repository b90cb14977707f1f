"""What the message URL sends back to WeChat for one message (messages doc §3).

A passive reply (XML, encrypted by the web layer), an empty body, or ``success``: the
empty body and ``success`` both mean "no reply", and WeChat does not retry either. Work
that must follow the answer (the release check's customer-service text) rides along as
``after``, run once the answer is out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class AnswerKind(StrEnum):
    REPLY = "reply"
    EMPTY = "empty"
    SUCCESS = "success"


@dataclass(frozen=True)
class Answer:
    kind: AnswerKind
    outcome: str  # what the gateway did, for the log line
    reply: str | None = None  # the passive reply's plaintext XML
    after: Callable[[], object] | None = None

    @classmethod
    def passive(cls, reply: str, outcome: str) -> Answer:
        return cls(AnswerKind.REPLY, outcome, reply=reply)

    @classmethod
    def empty(cls, outcome: str, after: Callable[[], object] | None = None) -> Answer:
        return cls(AnswerKind.EMPTY, outcome, after=after)

    @classmethod
    def success(cls, outcome: str) -> Answer:
        return cls(AnswerKind.SUCCESS, outcome)
