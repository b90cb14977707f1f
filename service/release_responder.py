"""The 全网发布 check's answers, for its ten test accounts (messages doc §4.2).

Before any route: a test account's text ``TESTCOMPONENT_MSG_TYPE_TEXT`` gets the passive
reply ``TESTCOMPONENT_MSG_TYPE_TEXT_callback``; ``QUERY_AUTH_CODE:<code>`` gets an empty
answer at once, then the customer-service text ``<code>_from_api`` (``release_sends``); any
event gets the passive reply ``<Event>from_callback`` (the legacy case, which costs nothing).
Anything else from a test account is answered ``success``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from service.code_exchange import MAX_CODE_LENGTH
from service.message_answers import Answer
from service.release_sends import ReleaseSends
from service.wechat.messages import AccountMessage, text_reply
from service.wechat.release_accounts import (
    EVENT_REPLY_SUFFIX,
    QUERY_AUTH_CODE_PREFIX,
    TEXT_PROBE,
    TEXT_REPLY,
    ReleaseTestAccount,
)


class ReleaseResponder:
    def __init__(self, sends: ReleaseSends, clock: Callable[[], float] = time.time) -> None:
        self.sends = sends
        self.clock = clock

    def respond(
        self, component_appid: str, account: ReleaseTestAccount, message: AccountMessage
    ) -> Answer:
        """The answer; StoreError if the customer-service text cannot be queued in time."""
        now = int(self.clock())
        content = message.content or ""
        if message.msg_type == "text" and content == TEXT_PROBE:
            return Answer.passive(text_reply(message, TEXT_REPLY, now), "release_check_text")
        if message.msg_type == "text" and content.startswith(QUERY_AUTH_CODE_PREFIX):
            code = content[len(QUERY_AUTH_CODE_PREFIX) :]  # kept whole, queryauthcode@@@ too
            if not code or len(code) > MAX_CODE_LENGTH:
                return Answer.success("release_check_bad_code")
            key = self.sends.enqueue(
                component_appid, account.appid, message.from_user_name, code, message.dedup_key
            )
            return Answer.empty(
                "release_check_api_text", after=lambda: self.sends.run(component_appid, key)
            )
        if message.event is not None:
            reply = text_reply(message, message.event + EVENT_REPLY_SUFFIX, now)
            return Answer.passive(reply, "release_check_event")
        return Answer.success("release_check_other")
