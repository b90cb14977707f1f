"""The WeChat API routes over HTTP: the wire's faults here, the answer from ``api_dispatch``.

One route per entry of ``api_table``: HTTP in and out; what to answer is decided by
``api_dispatch`` and the state. Faults are applied here because they are about the wire:
sleep, drop the TCP connection, or answer a bare status. A rule's ``delay`` is slept
before the call is processed, its ``delay_after`` between processing and answering (then,
with ``drop``, the answer is lost). So is a component's ``authorizer_token_latency``,
slept before each api_authorizer_token answer (and before any fault rule), outside the
state's lock. Everything else is ``api_dispatch.call_api``.

A custom message (``message_custom_send``) first waits, up to 1 s and outside the lock,
for a message push to its ``touser`` that is still waiting for the service's answer: an
honest service answers and then sends, and its send must not count as ``before_reply``
only because the mock has not read the answer yet. A service that sends before answering
blocks its own answer on this very call, so the push is still in flight after the wait.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from flask import Blueprint, Response, request

from mock_wechat import api_dispatch
from mock_wechat.api_table import API_ROUTES
from mock_wechat.app_services import services

bp = Blueprint("wechat_api", __name__)

# What a logged real WeChat reply carried (protocol §0, Response).
JSON_CONTENT_TYPE = "application/json; encoding=utf-8"
DROPPED = "mock_wechat.dropped"
CUSTOM_SEND = "message_custom_send"
REPLY_WAIT = 1.0  # seconds a custom message waits for a push to its user to be answered


def wechat_json(body: dict[str, Any], status: int = 200) -> Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(text, status=status, content_type=JSON_CONTENT_TYPE)


def bare_status(status: int) -> Response:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return Response(f"{status} {phrase}", status=status, mimetype="text/plain")


def drop_connection() -> Response:
    """Close the TCP connection so the client gets no HTTP response at all."""
    sock = request.environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket):
        raise RuntimeError("a drop fault needs the mock's server (no socket in this request)")
    request.environ[DROPPED] = True  # so the access log does not claim a status was sent
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # the client gave up first (after a delay_after): lost all the same
    # The server's write now fails (broken pipe), which it takes for a client gone.
    return Response(status=500)


def answer(api: str) -> Response:
    state = services().state
    raw = request.get_data(cache=False)
    latency = api_dispatch.answer_latency(state, api, raw)
    if latency:
        time.sleep(latency)
    rule = state.take_fault(api)
    if rule is not None:
        if rule.delay:
            time.sleep(rule.delay)
        outcome = api_dispatch.fault_outcome(state, api, raw, rule, request.args)
        if outcome is not None:
            if outcome.drop:
                return drop_connection()
            if outcome.body is not None:
                return wechat_json(outcome.body, outcome.http_status)
            return bare_status(outcome.http_status)
    if api == CUSTOM_SEND:
        api_dispatch.wait_for_reply(state, raw, request.args, REPLY_WAIT)
    lost = rule is not None and rule.drop
    body = api_dispatch.call_api(state, api, raw, request.args, answer_lost=lost)
    if rule is not None and rule.delay_after:
        time.sleep(rule.delay_after)  # outside the lock: the state has already changed
        if lost:
            return drop_connection()
    return wechat_json(body)


def _view(api: str) -> Callable[[], Response]:
    def view() -> Response:
        return answer(api)

    return view


for _route in API_ROUTES:
    bp.add_url_rule(
        _route.path,
        endpoint=_route.name,
        view_func=_view(_route.name),
        methods=list(_route.methods),
    )
