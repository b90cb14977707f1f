"""The 全网发布 (full-network release) check, run as WeChat runs it (messages doc §4).

One run checks a component against one test group (picked at random, as WeChat does) or
all five, and reports every step; a failing step does not stop the later ones:

0. ``ticket`` 组件Ticket正确接收: a component_verify_ticket push answered ``success``.

Then, for each group's official account and then its mini program:

1. ``authorize`` 授权: the test account (created if missing, with its fixed appid and gh_
   id from the mock's own table, ``protocol.RELEASE_GROUPS``) is authorized with every
   permission set of its type, and an ``authorized`` notice with a fresh
   ``queryauthcode@@@`` code is pushed to the event URL, directly even if the component
   holds authorization pushes.
2. ``text`` 返回普通文本消息: the text ``TESTCOMPONENT_MSG_TYPE_TEXT`` must get the
   encrypted passive text reply ``TESTCOMPONENT_MSG_TYPE_TEXT_callback``.
3. ``api_text`` 返回Api文本消息: the text ``QUERY_AUTH_CODE:<code>`` must be answered
   with the empty string (``success`` is accepted too: WeChat treats both as "no reply",
   and the step says so), and then, within ``send_deadline`` seconds, exactly one custom
   text message ``<code>_from_api`` must reach that user, not sent before the answer, with
   api_query_auth called at most once with that code.
4. ``event`` 发送事件消息: the event LOCATION (official account) or
   user_enter_tempsession (mini program) must get the passive text reply
   ``<Event>from_callback``.

Choices of the mock's own (WeChat documents none of them): ``send_deadline`` defaults to
10 s (WeChat only says "立即"); after the first custom message the check waits ``settle``
seconds more to see a second copy, not the whole deadline; each run writes from a fresh
random openid, so a service's dedup of an earlier run cannot hide this one's messages.
"""

from __future__ import annotations

import logging
import random
import secrets
import string
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mock_wechat.deliveries import Delivery, MessageRefused
from mock_wechat.event_pusher import EventPusher
from mock_wechat.merchant_accounts import AccountSpec
from mock_wechat.message_pusher import MessagePusher
from mock_wechat.models import MockWeChat
from mock_wechat.protocol import (
    API_ANSWER_SUFFIX,
    EVENT_ANSWER_SUFFIX,
    PROBE_TEXT,
    PROBE_TEXT_ANSWER,
    QUERY_AUTH_CODE_PREFIX,
    RELEASE_GROUP_NUMBERS,
    RELEASE_GROUPS,
    AccountKind,
    ReleaseAccount,
)
from mock_wechat.reply_judge import EMPTY, INVALID, NO_ANSWER, SUCCESS
from mock_wechat.user_messages import UserMessage

log = logging.getLogger(__name__)

TICKET, AUTHORIZE, TEXT, API_TEXT, EVENT = "ticket", "authorize", "text", "api_text", "event"
# The names the WeChat console shows for each step (the legacy check list, doc §4.2).
STEP_NAMES = {
    TICKET: "组件Ticket正确接收",
    AUTHORIZE: "授权",
    TEXT: "返回普通文本消息",
    API_TEXT: "返回Api文本消息",
    EVENT: "发送事件消息",
}
TEST_EVENTS = {
    AccountKind.OFFICIAL_ACCOUNT: "LOCATION",
    AccountKind.MINI_PROGRAM: "user_enter_tempsession",
}
TEST_ADMIN = "wechat-release-tester"
TEST_PRINCIPAL = "微信全网发布测试"
TEST_NICK_NAMES = {
    AccountKind.OFFICIAL_ACCOUNT: "全网发布测试公众号",
    AccountKind.MINI_PROGRAM: "全网发布测试小程序",
}
DEFAULT_SEND_DEADLINE = 10.0
MAX_SEND_DEADLINE = 120.0
SETTLE = 0.5  # seconds to watch for a second custom message after the first
_POLL = 0.02
_OPENID_ALPHABET = string.ascii_letters + string.digits + "-_"


class StepFailed(Exception):
    """A step's failure; the text is the reason shown (Chinese first, English in brackets)."""


@dataclass(frozen=True)
class Step:
    group: int | None
    account: str | None
    account_type: str | None
    step: str
    passed: bool
    reason: str | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "account": self.account,
            "account_type": self.account_type,
            "step": self.step,
            "name": STEP_NAMES[self.step],
            "passed": self.passed,
            "reason": self.reason,
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class Report:
    component_appid: str
    groups: list[int]
    steps: list[Step]

    @property
    def passed(self) -> bool:
        return all(step.passed for step in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "component_appid": self.component_appid,
            "groups": list(self.groups),
            "passed": self.passed,
            "steps": [step.to_dict() for step in self.steps],
        }


def choose_groups(
    group: int | None, all_groups: bool, pick: Callable[[Sequence[int]], int] = random.choice
) -> list[int]:
    """The groups to check: all, the one asked for, or one at random as WeChat picks."""
    if all_groups:
        return list(RELEASE_GROUP_NUMBERS)
    return [group if group is not None else pick(RELEASE_GROUP_NUMBERS)]


def fan_openid() -> str:
    """A fresh made-up openid for one run's simulated fan."""
    return "o" + "".join(secrets.choice(_OPENID_ALPHABET) for _ in range(27))


def account_spec(test: ReleaseAccount) -> AccountSpec:
    return AccountSpec(
        type=test.kind,
        nick_name=f"{TEST_NICK_NAMES[test.kind]}{test.group}",
        principal_name=TEST_PRINCIPAL,
        admin=TEST_ADMIN,
        appid=test.appid,
        user_name=test.user_name,
    )


class ReleaseCheck:
    def __init__(
        self,
        state: MockWeChat,
        events: EventPusher,
        messages: MessagePusher,
        send_deadline: float = DEFAULT_SEND_DEADLINE,
        settle: float = SETTLE,
    ) -> None:
        self._state = state
        self._events = events
        self._messages = messages
        self._send_deadline = send_deadline
        self._settle = settle

    def run(self, component: str, groups: Sequence[int]) -> Report:
        """Every step for ``groups``, synchronously (UnknownComponentError if unknown)."""
        self._state.get_component(component)
        steps = [self._step(None, None, TICKET, lambda: self._ticket(component))]
        for group in groups:
            for test in RELEASE_GROUPS[group]:
                steps.extend(self._account_steps(component, test))
        report = Report(component, list(groups), steps)
        log.info(
            "release check",
            extra={
                "component": component,
                "groups": list(groups),
                "passed": report.passed,
                "failed_steps": [s.step for s in steps if not s.passed],
            },
        )
        return report

    def _account_steps(self, component: str, test: ReleaseAccount) -> list[Step]:
        openid = fan_openid()
        codes: list[str] = []  # the authorize step's code, for the api_text step

        def authorize() -> str | None:
            return self._authorize(component, test, codes)

        def api_text() -> str | None:
            if not codes:
                raise StepFailed("授权未完成，没有授权码 (no authorization code: authorize failed)")
            return self._api_text(component, test, openid, codes[0])

        return [
            self._step(test.group, test, AUTHORIZE, authorize),
            self._step(test.group, test, TEXT, lambda: self._text(component, test, openid)),
            self._step(test.group, test, API_TEXT, api_text),
            self._step(test.group, test, EVENT, lambda: self._event(component, test, openid)),
        ]

    @staticmethod
    def _step(
        group: int | None,
        test: ReleaseAccount | None,
        name: str,
        run: Callable[[], str | None],
    ) -> Step:
        started = time.monotonic()
        try:
            passed, reason = True, run()
        except StepFailed as exc:
            passed, reason = False, str(exc)
        return Step(
            group=group,
            account=test.appid if test is not None else None,
            account_type=test.kind.value if test is not None else None,
            step=name,
            passed=passed,
            reason=reason,
            seconds=round(time.monotonic() - started, 3),
        )

    # ----- the steps: each returns an optional note, or raises StepFailed ------------

    def _ticket(self, component: str) -> str | None:
        result = self._events.push_ticket(component).result
        if not result.delivered:
            raise StepFailed(
                f"Ticket 推送未得到 success 应答 (the ticket push was not answered 'success': "
                f"{result.error})"
            )
        return None

    def _authorize(self, component: str, test: ReleaseAccount, codes: list[str]) -> str | None:
        done = self._state.authorizations.pre_authorize(component, account_spec(test))
        codes.append(done.auth_code)
        push = done.notice.push
        result = self._events.deliver(component, push.info_type, push.message)
        if not result.delivered:
            raise StepFailed(
                f"授权事件推送未得到 success 应答 (the authorized push was not answered "
                f"'success': {result.error})"
            )
        return None

    def _text(self, component: str, test: ReleaseAccount, openid: str) -> str | None:
        request = UserMessage(component, "text", content=PROBE_TEXT, from_user=openid)
        _passive_text(self._send(test, request), PROBE_TEXT_ANSWER)
        return None

    def _event(self, component: str, test: ReleaseAccount, openid: str) -> str | None:
        event = TEST_EVENTS[test.kind]
        request = UserMessage(component, "event", event=event, from_user=openid)
        _passive_text(self._send(test, request), event + EVENT_ANSWER_SUFFIX)
        return None

    def _api_text(self, component: str, test: ReleaseAccount, openid: str, code: str) -> str | None:
        mark = len(self._state.outbox.messages())
        request = UserMessage(
            component, "text", content=QUERY_AUTH_CODE_PREFIX + code, from_user=openid
        )
        delivery = self._send(test, request)
        problems: list[str] = []
        note = None
        if delivery.outcome in (NO_ANSWER, INVALID):
            problems.append(delivery.reason or "")
        elif delivery.outcome == SUCCESS:
            note = (
                "应答为 success，微信视同空串 "
                "(answered 'success', which WeChat treats as the empty string)"
            )
        elif delivery.outcome != EMPTY:
            problems.append(
                "不应给出被动回复 (a passive reply was given; the check expects the empty string)"
            )
        problems.extend(self._custom_message_problems(component, test, openid, code, mark))
        uses = self._state.authorizations.code_queries(code)
        if uses > 1:
            problems.append(
                f"授权码被重复使用 (api_query_auth was called {uses} times with the code)"
            )
        if problems:
            raise StepFailed("; ".join(problems))
        return note

    # ----- helpers ----------------------------------------------------------------------

    def _send(self, test: ReleaseAccount, request: UserMessage) -> Delivery:
        try:
            return self._messages.send(test.appid, request)
        except MessageRefused as exc:
            raise StepFailed(f"消息无法推送 ({exc})") from None

    def _custom_message_problems(
        self, component: str, test: ReleaseAccount, openid: str, code: str, mark: int
    ) -> list[str]:
        sent = self._custom_messages(component, test.appid, openid, mark)
        deadline = f"{self._send_deadline:g}"
        if not sent:
            return [
                f"{deadline} 秒内没有收到客服消息 (no customer-service message in {deadline} s)"
            ]
        problems = []
        if len(sent) > 1:
            problems.append(
                f"客服消息发送了 {len(sent)} 次 (the customer-service message was sent "
                f"{len(sent)} times)"
            )
        expected = code + API_ANSWER_SUFFIX
        first = sent[0]
        got = first.get("text", {}).get("content") if first["msgtype"] == "text" else None
        if got != expected:
            shown = repr(got) if got is not None else f"a {first['msgtype']} message"
            problems.append(f"客服消息内容不正确 (expected {expected}, got {shown})")
        if any(message["before_reply"] for message in sent):
            problems.append(
                "客服消息早于被动回复 (the customer-service message was sent before the reply)"
            )
        return problems

    def _custom_messages(
        self, component: str, authorizer: str, openid: str, mark: int
    ) -> list[dict[str, Any]]:
        """The custom messages to ``openid`` sent after ``mark``: waits for the first up to
        the deadline, then ``settle`` seconds more for any copy."""

        def matching() -> list[dict[str, Any]]:
            return [
                m
                for m in self._state.outbox.messages()[mark:]
                if (m["component_appid"], m["authorizer_appid"], m["touser"])
                == (component, authorizer, openid)
            ]

        deadline = time.monotonic() + self._send_deadline
        while not matching() and time.monotonic() < deadline:
            time.sleep(_POLL)
        if not matching():
            return []
        time.sleep(max(0.0, min(self._settle, deadline - time.monotonic())))
        return matching()


def _passive_text(delivery: Delivery, expected: str) -> None:
    """StepFailed unless the delivery got a passive text reply of exactly ``expected``."""
    if delivery.outcome in (NO_ANSWER, INVALID):
        raise StepFailed(delivery.reason or delivery.outcome)
    if delivery.outcome in (EMPTY, SUCCESS):
        raise StepFailed(f"没有被动回复 (no passive reply: the answer was {delivery.outcome})")
    reply = delivery.reply or {}
    if reply.get("MsgType") != "text":
        raise StepFailed(f"回复类型不正确 (expected a text reply, got {reply.get('MsgType')})")
    content = reply.get("Content", "")
    if content != expected:
        raise StepFailed(f"回复内容不正确 (expected {expected}, got {content!r})")
