"""The internal API under /api/v1/components/<c>: authorization links, authorizers, their
tokens, calls on their behalf, options, sync and quotas.

Everything here needs the bearer key (SERVICE_API_KEYS locally; Cloud Run IAM in the
cloud) and a configured component; an authorizer appid in the path must look like one.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue

from service.authorizer_options import OptionVia
from service.proxy import ProxyCall, ProxyPathError, UpstreamError
from service.store.records import AuthorizerRecord, AuthorizerStatus
from service.web import runtime
from service.web.errors import error_response
from service.web.internal_blueprints import make_internal
from service.web.token_hits import GLANCED, token_answer
from service.wechat.accounts import APPID_PATTERN, AccountType, permission_set_name
from service.wechat.errors import ClearQuotaLimitError, InvalidOptionError, WeChatError
from service.wechat.links import LinkParamError, parse_link_request

bp = make_internal(
    Blueprint("internal_api", __name__, url_prefix="/api/v1/components/<component_appid>")
)

MAX_PAGE_SIZE = 500
OPTION_NAME = re.compile(r"[a-z_]{1,64}")
OPTION_VALUE = re.compile(r"[0-9]{1,4}")
OPTION_VIAS = tuple(v.value for v in OptionVia)
STATUSES = tuple(s.value for s in AuthorizerStatus)
TYPES = tuple(t.value for t in AccountType)


@bp.errorhandler(WeChatError)
def wechat_error(exc: WeChatError) -> ResponseReturnValue:
    if isinstance(exc, InvalidOptionError):
        status = 400
    elif isinstance(exc, ClearQuotaLimitError):
        status = 429
    else:
        status = 502
    return jsonify(error=str(exc), errcode=exc.errcode), status


def _shown(record: AuthorizerRecord) -> dict[str, Any]:
    body = record.public()
    body["permission_sets"] = [{"id": i, "name": permission_set_name(i)} for i in record.func_info]
    return body


# ----- authorization links -----------------------------------------------------------


@bp.post("/authorize-links")
def authorize_links(component_appid: str) -> ResponseReturnValue:
    rt = runtime()
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        return error_response(400, "body must be a JSON object")
    try:
        link_request = parse_link_request(data, rt.settings.callback_url(component_appid))
    except LinkParamError as exc:
        return jsonify(error=str(exc), param=exc.param), 400
    issued = rt.links.issue(component_appid, link_request)
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


# ----- authorizers -----------------------------------------------------------------------


@bp.get("/authorizers")
def list_authorizers(component_appid: str) -> ResponseReturnValue:
    status, kind = request.args.get("status"), request.args.get("type")
    if status is not None and status not in STATUSES:
        return error_response(400, f"status must be one of {', '.join(STATUSES)}")
    if kind is not None and kind not in TYPES:
        return error_response(400, f"type must be one of {', '.join(TYPES)}")
    raw_size = request.args.get("page_size", "100")
    if not raw_size.isdigit() or not 1 <= int(raw_size) <= MAX_PAGE_SIZE:
        return error_response(400, f"page_size must be a whole number from 1 to {MAX_PAGE_SIZE}")
    page_size = int(raw_size)
    after = request.args.get("page_token") or None
    if after is not None and not APPID_PATTERN.match(after):
        return error_response(400, "page_token must be the next_page_token of a previous page")
    records = runtime().store.list_authorizers(
        component_appid, status=status, account_type=kind, after=after, limit=page_size + 1
    )
    page = records[:page_size]
    more = len(records) > page_size
    return jsonify(
        authorizers=[_shown(r) for r in page],
        next_page_token=page[-1].appid if more else None,
    )


@bp.get("/authorizers/<authorizer_appid>")
def get_authorizer(component_appid: str, authorizer_appid: str) -> ResponseReturnValue:
    record = runtime().store.get_authorizer(component_appid, authorizer_appid)
    if record is None:
        return error_response(404, f"no authorizer {authorizer_appid} for {component_appid}")
    return jsonify(_shown(record))


@bp.post("/authorizers/<authorizer_appid>/token")
def token(component_appid: str, authorizer_appid: str) -> ResponseReturnValue:
    invalid_token: str | None = None
    if request.get_data():
        data = request.get_json(force=True, silent=True)
        if not isinstance(data, dict):
            return error_response(400, "body must be a JSON object (or empty)")
        invalid_token = data.get("invalid_token")
        if invalid_token is not None and (not isinstance(invalid_token, str) or not invalid_token):
            return error_response(400, "invalid_token must be the token WeChat refused")
    issued, outcome = runtime().authorizer_tokens.get(
        component_appid,
        authorizer_appid,
        invalid_token,
        glanced=bool(request.environ.get(GLANCED)),
    )
    response = jsonify(token_answer(issued, outcome))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route(
    "/authorizers/<authorizer_appid>/proxy/<path:wechat_path>",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
)
def proxy(component_appid: str, authorizer_appid: str, wechat_path: str) -> ResponseReturnValue:
    call = ProxyCall(
        method=request.method,
        path=wechat_path,
        query=tuple(request.args.items(multi=True)),
        body=request.get_data(),
        content_type=request.content_type,
    )
    try:
        answer = runtime().proxy.forward(component_appid, authorizer_appid, call)
    except ProxyPathError as exc:
        return error_response(400, str(exc))
    except UpstreamError as exc:
        return error_response(exc.status, str(exc))
    response = Response(answer.body, status=answer.status, headers=answer.headers)
    if answer.retried:
        response.headers["X-Gateway-Token-Renewed"] = "1"
    return response


# ----- options (§3.8) ----------------------------------------------------------------------


def _option_via(name: str) -> OptionVia | ResponseReturnValue:
    """The token the caller chose, or the 400 that refuses the request."""
    via = request.args.get("via", OptionVia.COMPONENT_TOKEN.value)
    if via not in OPTION_VIAS:
        return error_response(400, f"via must be one of {', '.join(OPTION_VIAS)}")
    if not OPTION_NAME.fullmatch(name):
        return error_response(400, "option name must be lowercase letters and '_'")
    return OptionVia(via)


@bp.get("/authorizers/<authorizer_appid>/options/<name>")
def get_option(component_appid: str, authorizer_appid: str, name: str) -> ResponseReturnValue:
    via = _option_via(name)
    if not isinstance(via, OptionVia):
        return via
    option = runtime().options.get(component_appid, authorizer_appid, name, via)
    return jsonify(option_name=option.name, option_value=option.value, via=via.value)


@bp.put("/authorizers/<authorizer_appid>/options/<name>")
def set_option(component_appid: str, authorizer_appid: str, name: str) -> ResponseReturnValue:
    via = _option_via(name)
    if not isinstance(via, OptionVia):
        return via
    data = request.get_json(force=True, silent=True)
    value = data.get("option_value") if isinstance(data, dict) else None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not OPTION_VALUE.fullmatch(value):
        return error_response(400, 'body must be {"option_value": "<digits>"}')
    runtime().options.set(component_appid, authorizer_appid, name, value, via)
    return jsonify(option_name=name, option_value=value, via=via.value)


# ----- recovery and quotas ---------------------------------------------------------------


@bp.post("/sync")
def sync(component_appid: str) -> ResponseReturnValue:
    return jsonify(runtime().sync.run(component_appid).to_json())


@bp.post("/clear_quota")
def clear_component_quota(component_appid: str) -> ResponseReturnValue:
    runtime().quotas.clear(component_appid)
    return jsonify(cleared=component_appid)


@bp.post("/authorizers/<authorizer_appid>/clear_quota")
def clear_authorizer_quota(component_appid: str, authorizer_appid: str) -> ResponseReturnValue:
    runtime().quotas.clear(component_appid, authorizer_appid)
    return jsonify(cleared=authorizer_appid)
