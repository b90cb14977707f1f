"""The message URL's blueprint (消息与事件接收URL): POST /wechat/<component>/messages/<account>.

Entered in the open platform console as ``https://<host>/wechat/<component>/messages/$APPID$``.
Every answer goes out within WeChat's 5 s: nothing slow happens before it (a Firestore read
bounded to 1 s, the release check's one bounded write, a publish bounded by
MESSAGE_PUBLISH_DEADLINE or a reply route's deadline), and what must follow the answer runs
once the answer has been written (``call_on_close``). A message Pub/Sub did not take is
answered 503, never ``success``: WeChat tries it again.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable

from flask import Blueprint, Response, request

from service import log_events
from service.delivery import DeliveryFailed
from service.message_answers import Answer, AnswerKind
from service.message_dispatch import open_message
from service.push_verification import PushRejected
from service.store.records import StoreError
from service.web import runtime
from service.web.console_log import push_log
from service.web.errors import error_response
from service.wechat.accounts import APPID_PATTERN
from service.wechat.crypto import MessageCrypto
from service.wechat.messages import build_reply_envelope

bp = Blueprint("messages", __name__)
log = logging.getLogger(__name__)


@bp.post("/wechat/<component_appid>/messages/<authorizer_appid>")
def receive(component_appid: str, authorizer_appid: str) -> Response | tuple[Response, int]:
    started = time.perf_counter()
    rt = runtime()
    if component_appid not in rt.settings.components:
        return error_response(404, f"unknown component {component_appid[:40]}")
    if not APPID_PATTERN.match(authorizer_appid):
        return error_response(
            400, "the account in the URL is not an appid ('wx' and 16 hex digits)"
        )
    where = {"component_appid": component_appid, "authorizer_appid": authorizer_appid}
    crypto = rt.crypto(component_appid)
    received_at = time.time()
    try:
        opened = open_message(
            crypto,
            request.args,
            request.get_data(cache=False),
            authorizer_appid,
            now=received_at,
            max_clock_skew=rt.settings.push_max_clock_skew,
            max_bytes=rt.settings.max_body_bytes,
        )
        message = opened.message
        handled = rt.messages.handle(component_appid, authorizer_appid, opened, received_at)
    except PushRejected as exc:
        log.warning("message refused", extra={**where, "status": exc.status, "reason": exc.reason})
        return error_response(exc.status, exc.reason)
    except StoreError as exc:
        # Not answered, so WeChat tries again: its retries are the buffer.
        log.error("message not answered: the store failed", extra={**where, "error": str(exc)})
        return error_response(503, "the gateway cannot store what this message needs; retry")
    except DeliveryFailed as exc:
        # Not answered success: WeChat tries again, and a later try may get through.
        log.error(
            "message not answered: not delivered",
            extra={**where, "event": log_events.PUSH_NOT_DELIVERED, "error": str(exc)},
        )
        return error_response(503, "the gateway cannot deliver this message yet; retry")
    response = render(handled.answer, crypto, opened.used_previous_key)
    response.call_on_close(
        push_log().message(
            component_appid,
            authorizer_appid,
            message,
            opened.xml,
            handled.answer.outcome,
            handled.route,
            received_at,
        )
    )
    if handled.answer.after is not None:
        response.call_on_close(after_answer(handled.answer, where))
    log.info(
        "message answered",
        extra={
            **where,
            "msg_type": message.msg_type,
            "event": message.event,
            "answer": handled.answer.kind.value,
            "outcome": handled.answer.outcome,
            "release_test": handled.release_test,
            "route": handled.route,
            "dedup_key": handled.dedup_key,
            "used_previous_key": opened.used_previous_key,
            "ms": round((time.perf_counter() - started) * 1000, 2),
        },
    )
    return response


def render(answer: Answer, crypto: MessageCrypto, use_previous_key: bool) -> Response:
    if answer.kind is AnswerKind.REPLY:
        assert answer.reply is not None
        timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
        sealed = crypto.seal(answer.reply, timestamp, nonce, use_previous_key)
        body = build_reply_envelope(sealed.encrypt, sealed.msg_signature, timestamp, nonce)
        return Response(body, mimetype="text/xml")
    if answer.kind is AnswerKind.EMPTY:
        return Response(b"", mimetype="text/plain")
    return Response("success", mimetype="text/plain")


def after_answer(answer: Answer, where: dict[str, str]) -> Callable[[], None]:
    action = answer.after
    assert action is not None

    def run() -> None:
        try:
            action()
        except Exception:  # the answer is out; the work is recovered by the next sweep
            log.exception("work after the answer failed", extra=where)

    return run
