"""The service with one deliberate bug, to prove the release check catches it.

``gunicorn "tests.e2e.mutated_service:create_app()"`` with ``GATEWAY_MUTATION`` naming the
bug. Each is what a hand-written handler typically gets wrong; the real service's code is
patched in the serving process only, so the rest of the stack is the real one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from flask import Flask, Response

import service.release_responder
import service.web.message_url
from service import create_app as create_service
from service.code_exchange import CodeExchanger, ExchangeResult, Outcome
from service.message_answers import Answer, AnswerKind
from service.release_responder import ReleaseResponder
from service.wechat.crypto import MessageCrypto
from service.wechat.errors import WeChatError
from service.wechat.release_accounts import TEXT_PROBE


def reply_left_unencrypted() -> None:
    """Passive replies go out as plaintext XML instead of the encrypted envelope."""
    render = service.web.message_url.render

    def plain(answer: Answer, crypto: MessageCrypto, use_previous_key: bool) -> Response:
        if answer.kind is AnswerKind.REPLY and answer.reply is not None:
            return Response(answer.reply, mimetype="text/xml")
        return render(answer, crypto, use_previous_key)

    service.web.message_url.render = plain


def callback_suffix_dropped() -> None:
    """The text probe is echoed back without ``_callback``."""
    service.release_responder.TEXT_REPLY = TEXT_PROBE  # type: ignore[misc]


def custom_message_sent_before_the_reply() -> None:
    """The customer-service text is sent inside the request, before the empty answer."""
    respond = ReleaseResponder.respond

    def send_first(self: ReleaseResponder, *args: Any) -> Answer:
        answer = respond(self, *args)
        if answer.after is not None:
            answer.after()
            return Answer(answer.kind, answer.outcome, answer.reply)
        return answer

    ReleaseResponder.respond = send_first  # type: ignore[method-assign]


def code_exchanged_twice() -> None:
    """The release check's code goes to api_query_auth again, as a naive SDK does, even
    though the authorized push exchanged it; the stored token is then used."""
    exchange = CodeExchanger.exchange

    def naive(
        self: CodeExchanger,
        component_appid: str,
        code: str,
        source: str,
        *rest: Any,
        **named: Any,
    ) -> ExchangeResult:
        if source != "release_check":
            return exchange(self, component_appid, code, source, *rest, **named)
        try:
            self.tokens.call_with_token(
                component_appid,
                lambda token: self.client.api_query_auth(component_appid, code, token),
            )
        except WeChatError as exc:
            return ExchangeResult(Outcome.REFUSED, errcode=exc.errcode, reason=str(exc))
        return ExchangeResult(Outcome.EXCHANGED)

    CodeExchanger.exchange = naive  # type: ignore[method-assign]


MUTATIONS: dict[str, Callable[[], None]] = {
    "reply_left_unencrypted": reply_left_unencrypted,
    "callback_suffix_dropped": callback_suffix_dropped,
    "custom_message_sent_before_the_reply": custom_message_sent_before_the_reply,
    "code_exchanged_twice": code_exchanged_twice,
}


def create_app() -> Flask:
    MUTATIONS[os.environ["GATEWAY_MUTATION"]]()
    return create_service()
