"""/console: the operators' screen, server-rendered (Jinja), on the internal role only.

Access (``service.console_auth``): in the cloud, the Google ID token that
``gcloud run services proxy`` sends, of an email in CONSOLE_OPERATORS; locally, a sign-in
form taking a SERVICE_API_KEYS key. Either way a signed session cookie carries the CSRF
token that every form POST sends back. Every action is written to the audit log. Pages
call the core through the runtime, never WeChat themselves.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response as BaseResponse

from service.console_audit import AuditLog
from service.console_auth import (
    SESSION_COOKIE,
    Session,
    SessionCodec,
    csrf_matches,
    new_session,
    operator_verifier,
    session_key,
)
from service.web import runtime
from service.web.console_log import console_store
from service.web.id_tokens import IdTokenRefusal, Verifier

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder=str(Path(__file__).resolve().parent.parent / "templates"),
)

_CODEC = "console_session_codec"
_VERIFIER = "console_id_token_verifier"
# Pages open without a session (each still needs the CSRF token of its form).
OPEN_ENDPOINTS = frozenset({"console.login"})
# Where a page in another role's nav may go later (task D adds open platform accounts).
NAV = (
    ("console.overview", "概览"),
    ("console.authorizers", "授权方"),
    ("console.links", "授权链接"),
    ("console.pushes", "推送日志"),
    ("console.operations", "运维操作"),
    ("console.audit_log", "审计日志"),
)


def codec() -> SessionCodec:
    found: SessionCodec | None = current_app.extensions.get(_CODEC)
    if found is None:
        found = current_app.extensions.setdefault(
            _CODEC, SessionCodec(session_key(runtime().settings))
        )
    return found


def verifier() -> Verifier:
    found: Verifier | None = current_app.extensions.get(_VERIFIER)
    if found is None:
        found = current_app.extensions.setdefault(_VERIFIER, operator_verifier(runtime().settings))
    return found


def audit() -> AuditLog:
    return AuditLog(console_store())


def operator() -> str:
    who: str = g.console_operator
    return who


def cloud_mode() -> bool:
    return runtime().settings.internal_auth == "cloud_run_iam"


def page(template: str, http_status: int = 200, **context: Any) -> Response:
    nonce = secrets.token_urlsafe(16)
    g.console_nonce = nonce
    settings = runtime().settings
    body = render_template(
        f"console/{template}",
        nav=NAV,
        operator=g.get("console_operator"),
        csrf_token=g.console_session.csrf if g.get("console_session") else "",
        nonce=nonce,
        components=list(settings.components),
        cloud=cloud_mode(),
        **context,
    )
    return make_response(body, http_status)


def refusal(status: int, title: str, message: str) -> Response:
    return page("message.html", status, title=title, message=message, tone="bad")


@bp.before_request
def guard() -> ResponseReturnValue | None:
    g.console_session = codec().load(request.cookies.get(SESSION_COOKIE))
    if cloud_mode():
        refused = _cloud_identity()
        if refused is not None:
            return refused
    elif request.endpoint not in OPEN_ENDPOINTS:
        session = g.console_session
        if session is None or session.who is None:
            target = request.full_path if request.method == "GET" else url_for(".overview")
            return redirect(url_for(".login", next=target))
        g.console_operator = session.who
    if request.method == "POST" and not csrf_matches(
        g.console_session, request.form.get("csrf_token")
    ):
        return refusal(
            403,
            "请求无效",
            "表单的 CSRF 令牌不对或已过期：请回到页面刷新后再提交。",
        )
    component = (request.view_args or {}).get("component_appid")
    if component is not None and component not in runtime().settings.components:
        return refusal(404, "未找到", f"没有配置第三方平台 {component[:40]}。")
    return None


def _cloud_identity() -> Response | None:
    try:
        caller = verifier().caller(request.headers.get, cloud_run_checked_ok=True)
    except IdTokenRefusal as exc:
        if exc.status == 403:
            message = (
                "这个 Google 账号不是控制台的操作员：请把它加入 stack 配置 console_operators "
                f"（CONSOLE_OPERATORS）。{exc.reason}"
            )
        else:
            message = (
                "请用 gcloud run services proxy 打开内部服务，它会带上你的 Google 身份。"
                f"{exc.reason}"
            )
        return refusal(exc.status, "无权访问", message)
    g.console_operator = caller.email
    session = g.console_session
    if session is None or session.who != caller.email:
        # A session of this operator's own: it carries the CSRF token of their forms.
        g.console_session = new_session(caller.email)
        g.console_new_session = True
    return None


@bp.after_request
def headers(response: Response) -> Response:
    if g.get("console_new_session"):
        set_session_cookie(response, g.console_session)
    nonce = g.get("console_nonce", "")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
        f"script-src 'nonce-{nonce}'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    )
    return response


def set_session_cookie(response: BaseResponse, session: Session | None) -> None:
    if session is None:
        response.delete_cookie(SESSION_COOKIE, path="/console")
        return
    response.set_cookie(
        SESSION_COOKIE,
        codec().dump(session),
        max_age=int(codec().ttl),
        path="/console",
        httponly=True,
        secure=request.is_secure,
        samesite="Strict",
    )


def safe_next(target: str | None) -> str:
    """Only a path inside the console: never another site."""
    if not target:
        return url_for("console.overview")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/console"):
        return url_for("console.overview")
    return target


def start_session(who: str | None) -> Session:
    session = new_session(who)
    g.console_session = session
    g.console_new_session = True
    return session


from service.web import open_account_console  # noqa: E402,F401  (task D's page)
from service.web.console import pages  # noqa: E402,F401  (registers the routes)
