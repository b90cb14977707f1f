"""The authorization events URL's blueprint (授权事件接收URL): POST /wechat/<component>/events.

Answered ``success`` once the push is applied and delivered; a push its ``pubsub`` route
could not take is answered 503, so that WeChat tries it again.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, request

from service import log_events
from service.authorization_event_dispatch import open_push
from service.delivery import DeliveryFailed
from service.push_verification import PushRejected
from service.web import runtime
from service.web.console_log import push_log
from service.web.errors import error_response

bp = Blueprint("events", __name__)
log = logging.getLogger(__name__)


@bp.post("/wechat/<component_appid>/events")
def receive(component_appid: str) -> Response | tuple[Response, int]:
    rt = runtime()
    if component_appid not in rt.settings.components:
        return error_response(404, f"unknown component {component_appid}")
    received_at = time.time()
    try:
        opened = open_push(
            rt.crypto(component_appid),
            request.args,
            request.get_data(cache=False),
            now=received_at,
            max_clock_skew=rt.settings.push_max_clock_skew,
            max_bytes=rt.settings.max_body_bytes,
        )
    except PushRejected as exc:
        log.warning(
            "push refused",
            extra={"component_appid": component_appid, "status": exc.status, "reason": exc.reason},
        )
        return error_response(exc.status, exc.reason)
    where = {"component_appid": component_appid, "info_type": opened.message.info_type}
    try:
        outcome = rt.pushes.dispatch(opened, received_at)
    except DeliveryFailed as exc:
        log.error(
            "push applied but not delivered: not answered",
            extra={**where, "event": log_events.PUSH_NOT_DELIVERED, "error": str(exc)},
        )
        return error_response(503, "the gateway cannot deliver this push yet; retry")
    push_log().event(opened.message, opened.xml, outcome, received_at)  # the console's log
    log.info(
        "push handled",
        extra={
            **where,
            "outcome": outcome,
            "used_previous_key": opened.used_previous_key,
        },
    )
    return Response("success", mimetype="text/plain")
