"""POST /wechat/<component_appid>/events: the 授权事件接收URL."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, request

from service.inbound import PushRejected
from service.pushes import open_push
from service.web import runtime
from service.web.errors import error_response

bp = Blueprint("events", __name__)
log = logging.getLogger(__name__)


@bp.post("/wechat/<component_appid>/events")
def receive(component_appid: str) -> Response | tuple[Response, int]:
    rt = runtime()
    if component_appid not in rt.settings.components:
        return error_response(404, f"unknown component {component_appid}")
    try:
        opened = open_push(
            rt.crypto(component_appid),
            request.args,
            request.get_data(cache=False),
            now=time.time(),
            max_clock_skew=rt.settings.push_max_clock_skew,
            max_bytes=rt.settings.max_body_bytes,
        )
    except PushRejected as exc:
        log.warning(
            "push refused",
            extra={"component_appid": component_appid, "status": exc.status, "reason": exc.reason},
        )
        return error_response(exc.status, exc.reason)
    outcome = rt.pushes.dispatch(opened.message)
    log.info(
        "push handled",
        extra={
            "component_appid": component_appid,
            "info_type": opened.message.info_type,
            "outcome": outcome,
            "used_previous_key": opened.used_previous_key,
        },
    )
    return Response("success", mimetype="text/plain")
