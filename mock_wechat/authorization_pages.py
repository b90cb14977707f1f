"""The merchant's authorization pages, on WeChat's own paths (protocol §4).

- PC: ``/cgi-bin/componentloginpage`` shows a QR code of the confirm page, plus a form
  to "scan" as one of the known admins.
- H5: ``/safe/bindcomponent`` and ``/wxaopen/safe/bindcomponent`` show the same form
  as "open as this WeChat user".
- ``/safe/authorizelist`` lists the admin's accounts, then the permission-set form for
  one of them; ``POST /safe/authorize`` confirms or denies and redirects to redirect_uri.

Server-rendered HTML, no JavaScript. Every rule lives in ``Authorizations``; a refused
request renders ``error.html`` with ``id="wx-error"`` and ``data-error="<code>"``. A
confirmation's push is delivered here, after the state's lock is released and before
the 302 is answered (unless the component holds its pushes).
"""

from __future__ import annotations

from urllib.parse import urlencode

import segno
from flask import Blueprint, redirect, render_template, request
from werkzeug.wrappers import Response

from mock_wechat.app_services import services
from mock_wechat.auth_rules import AuthRuleError, Refusal, parse_category_ids
from mock_wechat.merchant_accounts import Account

bp = Blueprint("wechat_pages", __name__, template_folder="templates")

CONFIRM_PATH = "/safe/authorizelist"


def _error(exc: AuthRuleError) -> tuple[str, int]:
    status = 403 if exc.refusal is Refusal.FORBIDDEN else 400
    return render_template("error.html", code=exc.code, message=exc.message), status


def _list_href(session_id: str, admin: str, appid: str) -> str:
    query = urlencode({"session": session_id, "admin": admin, "authorizer_appid": appid})
    return f"{CONFIRM_PATH}?{query}"


def _entry(kind: str) -> str | tuple[str, int]:
    flow = services().state.authorizations
    try:
        session = flow.open_session(kind, request.args, request.headers.get("Referer"))
    except AuthRuleError as exc:
        return _error(exc)
    confirm_url = (
        request.host_url.rstrip("/") + CONFIRM_PATH + "?" + urlencode({"session": session.id})
    )
    qr = None
    if kind == "pc":  # the admin scans it with WeChat; it opens the confirm page
        qr = segno.make(confirm_url, error="m").png_data_uri(scale=5, border=2)
    return _admin_picker(session.id, qr=qr, confirm_url=confirm_url)


def _admin_picker(session_id: str, qr: str | None = None, confirm_url: str = "") -> str:
    state = services().state
    session = state.authorizations.session(session_id)
    biz = session.request.biz_appid
    biz_account = state.accounts.find(biz) if biz else None
    return render_template(
        "entry.html",
        session=session,
        qr=qr,
        confirm_url=confirm_url,
        admins=state.accounts.admins(),
        selected=biz_account.admin if biz_account else None,
    )


@bp.get("/cgi-bin/componentloginpage")
def pc_login_page() -> str | tuple[str, int]:
    return _entry("pc")


@bp.get("/safe/bindcomponent")
@bp.get("/wxaopen/safe/bindcomponent")
def h5_bind_page() -> str | tuple[str, int]:
    return _entry("h5")


@bp.get(CONFIRM_PATH)
def authorize_list() -> str | tuple[str, int]:
    """The confirm page the QR code points at: admin picker, accounts, then sets."""
    flow = services().state.authorizations
    session_id = request.args.get("session", "")
    admin = request.args.get("admin")
    appid = request.args.get("authorizer_appid")
    try:
        if not admin:
            return _admin_picker(session_id)
        if not appid:
            accounts = flow.listing(session_id, admin)
            return render_template(
                "accounts.html", admin=admin, items=_items(session_id, admin, accounts)
            )
        offer = flow.offer(session_id, admin, appid)
        component = flow.session(session_id).request.component
    except AuthRuleError as exc:
        return _error(exc)
    return render_template(
        "confirm.html", offer=offer, admin=admin, session_id=session_id, component=component
    )


def _items(session_id: str, admin: str, accounts: list[Account]) -> list[dict[str, object]]:
    return [{"account": a, "href": _list_href(session_id, admin, a.appid)} for a in accounts]


@bp.post("/safe/authorize")
def authorize() -> Response | tuple[str, int]:
    flow = services().state.authorizations
    form = request.form
    session_id, admin = form.get("session", ""), form.get("admin", "")
    appid = form.get("authorizer_appid", "")
    decision = form.get("decision", "confirm")  # Enter submits the first button: confirm
    try:
        if decision == "deny":
            back = flow.deny(session_id, admin, appid)
            return redirect(back or "/", 302)
        if decision != "confirm":
            raise AuthRuleError("decision", "decision must be confirm or deny")
        ticked = parse_category_ids(form.getlist("category_id"))
        done = flow.confirm(session_id, admin, appid, ticked)
    except AuthRuleError as exc:
        return _error(exc)
    services().events.dispatch(done.notice)
    return redirect(done.redirect_url or "/", 302)
