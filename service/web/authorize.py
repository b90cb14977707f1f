"""The merchant's pages: the entry page (on the 授权发起页域名) and the callback.

The entry page issues a fresh pre_auth_code and links to WeChat's page from itself, so
WeChat sees our domain in the Referer (protocol §4.3). The callback exchanges the code,
once, together with the ``authorized`` push, and shows what was granted.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, make_response, render_template, request, url_for

from service.authorization import MAX_CODE_LENGTH, ExchangeResult, Outcome
from service.component_token import TokenUnavailableError
from service.store.records import AuthorizerRecord
from service.web import runtime
from service.wechat.accounts import AUTH_TYPES, AccountType, permission_set_name
from service.wechat.errors import WeChatError
from service.wechat.links import (
    LinkParamError,
    LinkRequest,
    parse_auth_type,
    parse_biz_appid,
    parse_category_ids,
)

bp = Blueprint("authorize", __name__, template_folder="templates")

# Why WeChat refused a code, for the merchant (protocol §3.4).
REFUSAL_MESSAGES = {
    61009: "授权码无效。The authorization code is not valid: it was never issued to us.",
    61010: "授权码已过期或已使用。The authorization code has expired or was already used.",
    61003: "该账号未授权给本平台。The account has not authorized this platform.",
}


def _page(status: int, **context: Any) -> Response:
    response = make_response(render_template("result.html", **context), status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _failure(status: int, outcome: str, title: str, message: str, component_appid: str) -> Response:
    retry = url_for("authorize.entry", component_appid=component_appid)
    return _page(status, outcome=outcome, title=title, message=message, retry_url=retry)


def _unknown_component(component_appid: str) -> Response:
    return _page(
        404,
        outcome="unknown_component",
        title="未找到 Not found",
        message=f"Unknown component {component_appid}.",
    )


def _category_ids(raw: str | None) -> tuple[int, ...]:
    if not raw:
        return ()
    parts = raw.replace("|", ",").split(",")
    try:
        ids = [int(part) for part in parts if part.strip()]
    except ValueError:
        raise LinkParamError("category_ids", "must be ids separated by ',' or '|'") from None
    return parse_category_ids(ids)


@bp.get("/authorize/<component_appid>")
def entry(component_appid: str) -> Response:
    rt = runtime()
    if component_appid not in rt.settings.components:
        return _unknown_component(component_appid)
    args = request.args
    context: dict[str, Any] = {
        "component_appid": component_appid,
        "auth_types": list(AUTH_TYPES.values()),
        "biz_appid": args.get("biz_appid", ""),
        "category_ids": args.get("category_ids", ""),
        "issued": None,
    }
    try:
        biz_appid = parse_biz_appid(args.get("biz_appid"))
        category_ids = _category_ids(args.get("category_ids"))
        if not args.get("auth_type"):
            return make_response(render_template("entry.html", **context))
        auth_type = parse_auth_type(args["auth_type"])
    except LinkParamError as exc:
        return _failure(400, "bad_request", "参数错误 Bad request", str(exc), component_appid)
    redirect_uri = rt.settings.callback_url(component_appid) or url_for(
        "authorize.callback", component_appid=component_appid, _external=True
    )
    link_request = LinkRequest(auth_type, redirect_uri, biz_appid, category_ids)
    try:
        issued = rt.authorization.issue_links(component_appid, link_request)
    except TokenUnavailableError as exc:
        return _failure(
            503,
            "unavailable",
            "暂时无法授权 Not ready",
            f"The platform cannot talk to WeChat yet: {exc}",
            component_appid,
        )
    except WeChatError as exc:
        return _failure(502, "wechat_error", "微信接口错误 WeChat error", str(exc), component_appid)
    context.update(
        issued=issued,
        auth_type_label=AUTH_TYPES[auth_type].label,
        expires_at=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(issued.expires_at)),
    )
    response = make_response(render_template("entry.html", **context))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/authorize/<component_appid>/callback")
def callback(component_appid: str) -> Response:
    rt = runtime()
    if component_appid not in rt.settings.components:
        return _unknown_component(component_appid)
    code = request.args.get("auth_code", "")
    if not code:
        return _failure(
            400,
            "denied",
            "授权未完成 Not authorized",
            "授权已取消或未完成，未保存任何内容。The authorization was cancelled or "
            "not completed; nothing was stored.",
            component_appid,
        )
    if len(code) > MAX_CODE_LENGTH:
        return _failure(
            400,
            "code_invalid",
            "授权失败 Authorization failed",
            REFUSAL_MESSAGES[61009],
            component_appid,
        )
    result = rt.authorization.exchange(component_appid, code, "callback")
    return _result_page(component_appid, result)


def _result_page(component_appid: str, result: ExchangeResult) -> Response:
    if result.outcome in (Outcome.EXCHANGED, Outcome.ALREADY) and result.authorizer:
        return _page(200, **authorized_context(result.authorizer))
    if result.outcome == Outcome.REFUSED:
        code = result.errcode or 0
        outcome = {61010: "code_expired", 61003: "not_authorized"}.get(code, "code_invalid")
        message = REFUSAL_MESSAGES.get(code, result.reason or "The code was refused.")
        return _failure(400, outcome, "授权失败 Authorization failed", message, component_appid)
    if result.outcome == Outcome.IN_PROGRESS:
        return _page(
            503,
            outcome="in_progress",
            title="处理中 Still working",
            message="授权正在处理中，请稍后刷新。The authorization is still being "
            "processed; reload this page in a moment.",
        )
    return _failure(
        502,
        "error",
        "暂时无法完成 Try again",
        f"WeChat could not be reached to finish the authorization ({result.reason}). "
        "Reload this page to try again.",
        component_appid,
    )


def authorized_context(record: AuthorizerRecord) -> dict[str, Any]:
    known = {kind.value: kind.label for kind in AccountType}
    label = known.get(record.account_type or "", "—")
    return {
        "outcome": "authorized",
        "title": "授权成功 Authorization complete",
        "authorizer": record,
        "account_type_label": label,
        "permission_sets": [{"id": i, "name": permission_set_name(i)} for i in record.func_info],
    }
