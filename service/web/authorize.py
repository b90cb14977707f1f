"""The merchant's pages: the entry page (on the 授权发起页域名), our links and the callback.

Anonymous traffic costs little. The entry page calls nothing and writes nothing: its PC
and H5 buttons point at this same route with ``go=pc|h5`` and a signature (an HMAC under a
key derived from the component's secret, valid ``LINK_TTL``), and only such a signed link
creates a pre_auth_code and answers 302 to WeChat's page. A browser keeps the entry page as
the Referer through that redirect, and the answer's ``Referrer-Policy: origin`` sends our
origin to WeChat's domain check (protocol §4.3). The callback refuses a code that is not
shaped like WeChat's before anything else; a well-shaped one is exchanged, once, together
with the ``authorized`` push. Every request takes tokens from a per-client bucket
(``rate_limit``): a page one, a request that calls WeChat ``WECHAT_COST``.

WeChat's errmsg never reaches a page (61004's names our egress IP): the pages give a
generic reason and the log line has the errcode and errmsg.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import threading
import time
from typing import Any
from urllib.parse import urlencode

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    make_response,
    render_template,
    request,
    url_for,
)

from service.code_exchange import MAX_CODE_LENGTH, ExchangeResult, Outcome
from service.component_token import TokenUnavailableError
from service.store.records import AuthorizerRecord
from service.web import runtime
from service.web.rate_limit import TokenBuckets, Verdict, client_address
from service.wechat.accounts import AUTH_TYPES, AccountType, permission_set_name
from service.wechat.errors import WeChatError
from service.wechat.links import (
    LinkParamError,
    LinkRequest,
    parse_auth_type,
    parse_biz_appid,
    parse_category_ids,
)

log = logging.getLogger(__name__)

bp = Blueprint("authorize", __name__, template_folder="templates")

PAGES = ("pc", "h5")
LINK_TTL = 3600  # how long an entry page's buttons work; the pre_auth_code is made on click
WECHAT_COST = 10  # tokens a request takes when it calls WeChat; a page view takes 1
# WeChat's authorization codes: the prefix, then URL-safe base64 characters (84 of them
# from the mock, about as many seen in real ones). Any length from 16 up to our limit.
CODE_PREFIX = "queryauthcode@@@"
AUTH_CODE_SHAPE = re.compile(
    re.escape(CODE_PREFIX) + rf"[A-Za-z0-9_-]{{16,{MAX_CODE_LENGTH - len(CODE_PREFIX)}}}",
    re.ASCII,
)
_LINK_KEY_LABEL = b"gateway authorize link v1"
_BUCKETS = "public_rate_limit"
_buckets_lock = threading.Lock()


def clock() -> float:
    return time.time()


# Why WeChat refused a code, for the merchant (protocol §3.4).
REFUSAL_MESSAGES = {
    61009: "授权码无效。The authorization code is not valid: it was never issued to us.",
    61010: "授权码已过期或已使用。The authorization code has expired or was already used.",
    61003: "该账号未授权给本平台。The account has not authorized this platform.",
}
WECHAT_ERROR_MESSAGE = (
    "微信暂时无法完成这一步，请稍后重试；如果一直这样，请联系服务商。"
    "WeChat could not complete this step. Please try again later; if it keeps happening, "
    "contact the service provider."
)
UNAVAILABLE_MESSAGE = (
    "平台暂时无法发起授权，请稍后重试。The platform cannot start an authorization right now; "
    "please try again later."
)


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


# ----- the per-client rate limit --------------------------------------------------------


def _buckets() -> TokenBuckets:
    buckets: TokenBuckets | None = current_app.extensions.get(_BUCKETS)
    if buckets is None:
        with _buckets_lock:
            buckets = current_app.extensions.get(_BUCKETS)
            if buckets is None:
                limit = runtime().settings.public_rate_limit
                buckets = TokenBuckets(limit.per_minute, limit.burst)
                current_app.extensions[_BUCKETS] = buckets
    return buckets


def _take(cost: int) -> Verdict:
    if "rate_client" not in g:
        hops = runtime().settings.public_rate_limit.client_ip_hops
        g.rate_client = client_address(
            request.remote_addr, request.headers.getlist("X-Forwarded-For"), hops
        )
    verdict = _buckets().take(g.rate_client, cost)
    if verdict.report:  # once a minute per client: a flood writes a line, not a line each
        log.warning(
            "public rate limit reached",
            extra={
                "client": g.rate_client,
                "path": request.path,
                "retry_after": verdict.retry_after,
            },
        )
    return verdict


def _too_many(verdict: Verdict) -> Response:
    seconds = verdict.retry_after
    response = _page(
        429,
        outcome="rate_limited",
        title="请求过于频繁 Too many requests",
        message=f"请求过于频繁，请 {seconds} 秒后再试。Too many requests from your network; "
        f"please try again in {seconds} s.",
    )
    response.headers["Retry-After"] = str(seconds)
    return response


@bp.before_request
def _limit_every_page() -> Response | None:
    verdict = _take(1)
    return None if verdict.allowed else _too_many(verdict)


# ----- signed links -----------------------------------------------------------------------


def _link_mac(component_appid: str, link: LinkRequest, expires: int) -> str:
    component = runtime().settings.components[component_appid]
    key = hmac.new(component.secret.encode(), _LINK_KEY_LABEL, hashlib.sha256).digest()
    fields = [
        component_appid,
        str(link.auth_type),
        link.biz_appid or "",
        "|".join(str(i) for i in link.category_ids),
        str(expires),
    ]
    digest = hmac.new(key, "\n".join(fields).encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _link_params(link: LinkRequest) -> dict[str, str]:
    params = {"auth_type": str(link.auth_type)}
    if link.biz_appid:
        params["biz_appid"] = link.biz_appid
    if link.category_ids:
        params["category_ids"] = "|".join(str(i) for i in link.category_ids)
    return params


def _base_url() -> str:
    return runtime().settings.public_base_url or request.host_url.rstrip("/")


def _our_link(component_appid: str, page: str, link: LinkRequest, expires: int) -> str:
    sig = f"{expires}.{_link_mac(component_appid, link, expires)}"
    query = {"go": page, **_link_params(link), "sig": sig}
    return f"{_base_url()}/authorize/{component_appid}?{urlencode(query)}"


def _signature_state(component_appid: str, link: LinkRequest, sig: str) -> str:
    """``valid``, ``expired`` (ours, too old) or ``invalid`` (missing, forged or altered)."""
    expires_text, _, mac = sig.partition(".")
    if not (expires_text.isascii() and expires_text.isdigit() and len(expires_text) <= 12):
        return "invalid"
    expires = int(expires_text)
    if not hmac.compare_digest(mac.encode(), _link_mac(component_appid, link, expires).encode()):
        return "invalid"
    return "valid" if clock() <= expires else "expired"


# ----- the pages --------------------------------------------------------------------------


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
        "links": None,
    }
    go = args.get("go")
    try:
        if go is not None and go not in PAGES:
            raise LinkParamError("go", "must be pc or h5")
        biz_appid = parse_biz_appid(args.get("biz_appid"))
        category_ids = _category_ids(args.get("category_ids"))
        if not args.get("auth_type"):
            if go is not None:
                raise LinkParamError("auth_type", "is required")
            return _html(render_template("entry.html", **context))
        auth_type = parse_auth_type(args["auth_type"])
    except LinkParamError as exc:
        return _failure(400, "bad_request", "参数错误 Bad request", str(exc), component_appid)
    redirect_uri = rt.settings.callback_url(component_appid) or url_for(
        "authorize.callback", component_appid=component_appid, _external=True
    )
    link = LinkRequest(auth_type, redirect_uri, biz_appid, category_ids)
    if go is not None:
        return _follow(component_appid, go, link, args.get("sig", ""))
    expires = int(clock()) + LINK_TTL
    context.update(
        links={page: _our_link(component_appid, page, link, expires) for page in PAGES},
        auth_type_label=AUTH_TYPES[auth_type].label,
        link_minutes=LINK_TTL // 60,
    )
    return _html(render_template("entry.html", **context))


def _redirect(location: str, status: int) -> Response:
    response = make_response("", status)
    response.headers["Location"] = location
    response.headers["Cache-Control"] = "no-store"
    return response


def _html(body: str) -> Response:
    response = make_response(body)
    response.headers["Cache-Control"] = "no-store"
    return response


def _follow(component_appid: str, page: str, link: LinkRequest, sig: str) -> Response:
    """A signed link of our entry page: a fresh pre_auth_code, then 302 to WeChat's page."""
    if request.method == "HEAD":  # link checkers and previews: nothing to create for them
        return _html("")
    state = _signature_state(component_appid, link, sig)
    if state == "expired":  # an entry page left open: a fresh one, its buttons work again
        fresh = url_for("authorize.entry", component_appid=component_appid)
        return _redirect(f"{fresh}?{urlencode(_link_params(link))}", 303)
    if state != "valid":
        return _failure(
            403,
            "link_invalid",
            "链接无效 Invalid link",
            "这个授权链接无效或已被改动，请从授权页重新开始。This authorization link is not "
            "valid; start again from the authorization page.",
            component_appid,
        )
    verdict = _take(WECHAT_COST - 1)
    if not verdict.allowed:
        return _too_many(verdict)
    try:
        issued = runtime().links.issue(component_appid, link)
    except TokenUnavailableError as exc:
        log.warning(
            "authorization link not issued: no component token",
            extra={"component_appid": component_appid, "error": str(exc)},
        )
        return _failure(
            503, "unavailable", "暂时无法授权 Not ready", UNAVAILABLE_MESSAGE, component_appid
        )
    except WeChatError as exc:
        log.warning(
            "authorization link not issued: WeChat error",
            extra={
                "component_appid": component_appid,
                "api": exc.api,
                "errcode": exc.errcode,
                "errmsg": exc.errmsg,
            },
        )
        return _failure(
            502, "wechat_error", "微信接口错误 WeChat error", WECHAT_ERROR_MESSAGE, component_appid
        )
    target = issued.links.pc_url if page == "pc" else issued.links.h5_url
    response = _redirect(target, 302)
    # The redirect keeps the entry page as the referrer; WeChat checks its domain (§4.3).
    response.headers["Referrer-Policy"] = "origin"
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
    if not AUTH_CODE_SHAPE.fullmatch(code):  # not WeChat's: no call, no write
        return _failure(
            400,
            "code_invalid",
            "授权失败 Authorization failed",
            REFUSAL_MESSAGES[61009],
            component_appid,
        )
    verdict = _take(WECHAT_COST - 1)
    if not verdict.allowed:
        return _too_many(verdict)
    result = rt.code_exchange.exchange(component_appid, code, "callback")
    return _result_page(component_appid, code, result)


# Outcomes after which the code's authorization is stored.
AUTHORIZED = (Outcome.EXCHANGED, Outcome.ALREADY, Outcome.RECOVERED)


def _result_page(component_appid: str, code: str, result: ExchangeResult) -> Response:
    if result.outcome in AUTHORIZED and result.authorizer:
        if runtime().code_exchange.first_view(component_appid, code):
            return _page(200, **authorized_context(result.authorizer))
        # Anyone holding the callback URL later sees only that it is done, not the account.
        return _page(
            200,
            outcome="authorized",
            title="授权已完成 Authorization complete",
            message="该授权已完成。This authorization is complete.",
        )
    if result.outcome in (Outcome.IN_PROGRESS, Outcome.CONFIRMING):
        return _page(
            503,
            outcome="in_progress",
            title="处理中 Still working",
            message="授权正在处理中，请稍后刷新。The authorization is still being "
            "processed; reload this page in a moment.",
        )
    if result.outcome == Outcome.REFUSED and result.errcode in REFUSAL_MESSAGES:
        errcode = result.errcode
        outcome = {61010: "code_expired", 61003: "not_authorized"}.get(errcode, "code_invalid")
        message = REFUSAL_MESSAGES[errcode]
        return _failure(400, outcome, "授权失败 Authorization failed", message, component_appid)
    log.warning(
        "authorization callback: WeChat error",
        extra={
            "component_appid": component_appid,
            "outcome": result.outcome.value,
            "errcode": result.errcode,
            "errmsg": result.reason,
        },
    )
    if result.outcome == Outcome.REFUSED:
        return _failure(
            400,
            "code_invalid",
            "授权失败 Authorization failed",
            WECHAT_ERROR_MESSAGE,
            component_appid,
        )
    return _failure(502, "error", "暂时无法完成 Try again", WECHAT_ERROR_MESSAGE, component_appid)


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
