"""The internal API under /api/v1 (SERVICE_API_KEYS locally; Cloud Run IAM in the cloud)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from service.component_token import TokenUnavailableError
from service.web import runtime
from service.web.auth import require_api_key
from service.web.errors import error_response
from service.wechat.errors import WeChatError
from service.wechat.links import LinkParamError, parse_link_request

bp = Blueprint("internal_api", __name__, url_prefix="/api/v1")


def _known(component_appid: str) -> bool:
    return component_appid in runtime().settings.components


@bp.post("/components/<component_appid>/authorize-links")
@require_api_key
def authorize_links(component_appid: str) -> tuple[Response, int]:
    rt = runtime()
    if not _known(component_appid):
        return error_response(404, f"unknown component {component_appid}")
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        return error_response(400, "body must be a JSON object")
    try:
        link_request = parse_link_request(data, rt.settings.callback_url(component_appid))
    except LinkParamError as exc:
        return jsonify(error=str(exc), param=exc.param), 400
    try:
        issued = rt.authorization.issue_links(component_appid, link_request)
    except TokenUnavailableError as exc:
        return error_response(503, f"component token unavailable: {exc}")
    except WeChatError as exc:
        return jsonify(error=str(exc), errcode=exc.errcode), 502
    links = issued.links
    body: dict[str, Any] = {
        "pc_url": links.pc_url,
        "h5_url": links.h5_url,
        "h5_legacy_url": links.h5_legacy_url,
        "plugin": links.plugin,
        "pre_auth_code": issued.pre_auth_code,
        "expires_at": int(issued.expires_at),
        "auth_type": link_request.auth_type,
        "redirect_uri": link_request.redirect_uri,
    }
    return jsonify(body), 201
