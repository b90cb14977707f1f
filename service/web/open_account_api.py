"""Open platform accounts on the internal API (the seeds' scenes 1 and 2).

- ``GET  /api/v1/components/<c>/authorizers/<a>/open-account``: where the account is bound;
- ``POST`` the same with ``{"action": "create" | "bind" | "unbind", "open_appid"?}``;
- ``GET  /api/v1/open-account-group``: every authorizer of the deployment against
  GROUP_OPEN_APPID;
- ``POST /api/v1/open-account-group/bind-unbound``: binds the unbound ones, nothing else.

The internal API's guard (a bearer key, or Cloud Run IAM) comes before anything else. A
WeChat refusal is a 4xx carrying its errcode, its meaning in English and Chinese and what
to do; no answer from WeChat is 502 (504 for a timeout), saying whether anything changed.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from service.open_accounts import OpenAccountRefused, OpenAccountUnavailable, Result
from service.web import runtime
from service.web.errors import error_response
from service.web.internal_blueprints import make_internal
from service.wechat.accounts import APPID_PATTERN

bp = make_internal(Blueprint("open_account_api", __name__, url_prefix="/api/v1"))

ACCOUNT = "/components/<component_appid>/authorizers/<authorizer_appid>/open-account"
ACTIONS = ("create", "bind", "unbind")
NO_GROUP = (
    "no group open platform account is configured: set GROUP_OPEN_APPID to the open_appid "
    "every account of this deployment should be bound to"
)


# ----- errors ----------------------------------------------------------------------------


@bp.errorhandler(OpenAccountRefused)
def refused(exc: OpenAccountRefused) -> ResponseReturnValue:
    meaning = exc.meaning
    body: dict[str, Any] = {
        "error": f"WeChat {exc.errcode}: {meaning.en}",
        "errcode": exc.errcode,
        "meaning_zh": meaning.zh,
        "what_to_do": meaning.todo,
        "api": exc.api,
        "errmsg": exc.errmsg or None,  # WeChat's own text, with its rid for support
    }
    if exc.open_appid is not None:
        body["open_appid"] = exc.open_appid
    return jsonify(body), meaning.status


@bp.errorhandler(OpenAccountUnavailable)
def unavailable(exc: OpenAccountUnavailable) -> ResponseReturnValue:
    outcome = None if exc.outcome is None else exc.outcome.value
    return jsonify(error=exc.reason, outcome=outcome), exc.status


# ----- one authorizer (scene 1) -------------------------------------------------------------


@bp.get(ACCOUNT)
def get_open_account(component_appid: str, authorizer_appid: str) -> ResponseReturnValue:
    open_appid = runtime().open_accounts.bound_to(component_appid, authorizer_appid)
    return jsonify(
        authorizer_appid=authorizer_appid, open_appid=open_appid, bound=open_appid is not None
    )


@bp.post(ACCOUNT)
def change_open_account(component_appid: str, authorizer_appid: str) -> ResponseReturnValue:
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        return error_response(400, 'body must be a JSON object such as {"action": "create"}')
    action = data.get("action")
    if action not in ACTIONS:
        return error_response(400, f"action must be one of {', '.join(ACTIONS)}")
    allowed = {"action"} if action == "create" else {"action", "open_appid"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        return error_response(400, f"unknown field {unknown[0]!r} for action {action}")
    open_appid = data.get("open_appid")
    if action == "bind" and open_appid is None:
        return error_response(400, "bind needs open_appid: the open platform account to join")
    if open_appid is not None and not (
        isinstance(open_appid, str) and APPID_PATTERN.match(open_appid)
    ):
        return error_response(400, "open_appid must be 'wx' followed by 16 hex digits")
    accounts = runtime().open_accounts
    if action == "create":
        change = accounts.create(component_appid, authorizer_appid)
    elif action == "bind" and open_appid is not None:
        change = accounts.bind(component_appid, authorizer_appid, open_appid)
    else:
        change = accounts.unbind(component_appid, authorizer_appid, open_appid)
    status = 201 if change.result == Result.CREATED else 200
    return jsonify(authorizer_appid=authorizer_appid, action=action, **change.to_json()), status


# ----- the group (scene 2) ----------------------------------------------------------------


@bp.get("/open-account-group")
def group_report() -> ResponseReturnValue:
    group = runtime().open_account_group
    if group is None:
        return error_response(404, NO_GROUP)
    return jsonify(group.report().to_json())


@bp.post("/open-account-group/bind-unbound")
def group_bind_unbound() -> ResponseReturnValue:
    group = runtime().open_account_group
    if group is None:
        return error_response(404, NO_GROUP)
    return jsonify(group.bind_unbound().to_json())
