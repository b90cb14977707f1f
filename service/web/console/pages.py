"""The console's pages and actions (routes of ``service.web.console.bp``)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import segno
from flask import Response, redirect, request, url_for
from flask.typing import ResponseReturnValue

from service.authorizer_tokens import Outcome as TokenOutcome
from service.component_token import TokenUnavailableError
from service.console_auth import api_key_operator
from service.console_pushlog import LoggedPush, ReplayRefused, replay
from service.console_quota import CLEARS_PER_MONTH, QuotaResetCounter, core_clear
from service.store.records import AuthorizerRecord, AuthorizerStatus, StoreError, SyncFlag
from service.web import runtime
from service.web.console import (
    audit,
    bp,
    cloud_mode,
    operator,
    page,
    refusal,
    safe_next,
    set_session_cookie,
    start_session,
)
from service.web.console_log import console_store, push_log
from service.wechat.accounts import (
    ACCOUNT_TYPE_LABELS,
    APPID_PATTERN,
    AUTH_TYPES,
    PERMISSION_SETS,
    AccountType,
    permission_set_name,
)
from service.wechat.errors import ClearQuotaLimitError, WeChatError
from service.wechat.links import LinkParamError, LinkRequest, parse_auth_type, parse_biz_appid

PAGE_SIZE = 50
NAME_RESULTS = 50
SINCE_HOURS = (1, 6, 24, 72, 720)
APPID_PREFIX = "wx0123456789abcdef"
STATUS_LABELS = {
    AuthorizerStatus.AUTHORIZED.value: "已授权",
    AuthorizerStatus.REVOKED.value: "已取消授权",
    AuthorizerStatus.NEEDS_REAUTHORIZATION.value: "需重新授权",
}
SYNC_FLAG_LABELS = {
    SyncFlag.NOT_LISTED.value: "微信授权列表中没有",
    SyncFlag.UNEXCHANGED.value: "授权码未换取（无 refresh_token）",
}
TYPE_LABELS = {kind.value: label for kind, label in ACCOUNT_TYPE_LABELS.items()}
BEIJING = timezone(timedelta(hours=8))
RECENT_ERRORS = 10
SWEEP_STALE = 15 * 60  # Cloud Scheduler runs it every 5 minutes


def when(moment: float | None) -> str:
    """A moment in Beijing time, as WeChat's console shows it."""
    if not moment:
        return "—"
    return datetime.fromtimestamp(moment, BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def ago(moment: float | None, now: float) -> str:
    if not moment:
        return "—"
    return span(now - moment) + ("前" if now >= moment else "后")


def span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 60:
        return f"{int(seconds)} 秒"
    if seconds < 3600:
        return f"{int(seconds // 60)} 分钟"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} 小时"
    return f"{seconds / 86400:.1f} 天"


@bp.app_template_filter("bj")
def _bj(moment: float | None) -> str:
    return when(moment)


def component_choice() -> str:
    components = list(runtime().settings.components)
    chosen = request.args.get("component") or request.form.get("component") or components[0]
    return chosen if chosen in components else components[0]


# ----- sign-in ------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if cloud_mode():
        return redirect(url_for(".overview"))
    settings = runtime().settings
    target = safe_next(request.values.get("next"))
    if not settings.service_api_keys:
        return refusal(503, "控制台未启用", "请先设置 SERVICE_API_KEYS：本地用其中一个密钥登录。")
    if request.method == "GET":
        start_session(None)  # the form's CSRF token
        return page("login.html", next=target, error=None)
    who = api_key_operator(settings, request.form.get("key", ""))
    if who is None:
        audit().record("匿名", "sign_in", "console", "refused: key not accepted")
        start_session(None)
        return page("login.html", 401, next=target, error="密钥不正确。")
    audit().record(who, "sign_in", "console", "ok")
    response = redirect(target)
    set_session_cookie(response, start_session(who))
    return response


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    audit().record(operator(), "sign_out", "console", "ok")
    response = redirect(url_for(".login"))
    set_session_cookie(response, None)
    return response


# ----- overview ---------------------------------------------------------------------------


@bp.get("/")
def overview() -> ResponseReturnValue:
    rt = runtime()
    store = console_store()
    now = time.time()
    sweep = _safe(store.last_sweep) or {}
    sweep_at = float(sweep.get("at") or 0.0)
    report = sweep.get("report") or {}
    cards = []
    for appid in rt.settings.components:
        cards.append(_component_card(appid, now, sweep_at, report))
    return page(
        "overview.html",
        cards=cards,
        sweep_at=sweep_at,
        sweep_ago=ago(sweep_at, now),
        sweep_stale=not sweep_at or now - sweep_at > SWEEP_STALE,
        sweep_report=report,
        # SWEEP_MODE=fanout: the last sweep's shards and outcomes (service.sweep_shards).
        fanout=_safe(rt.sweep_progress.latest) if rt.settings.sweep_mode == "fanout" else None,
    )


def _safe(read: Any, *args: Any) -> Any:
    try:
        return read(*args)
    except StoreError:
        return None


def _component_card(appid: str, now: float, sweep_at: float, report: dict[str, Any]) -> Any:
    rt = runtime()
    settings = rt.settings
    store = console_store()
    record = rt.store.get_component(appid)
    checks: list[dict[str, str]] = []

    def check(name: str, value: str, tone: str, note: str = "") -> None:
        checks.append({"name": name, "value": value, "tone": tone, "note": note})

    received = record.ticket_received_at
    if received is None:
        check("component_verify_ticket", "从未收到", "bad", "检查授权事件接收URL")
    else:
        age = now - received
        tone = "bad" if age > settings.ticket_stale_after else "ok"
        check("component_verify_ticket", f"{span(age)}前收到", tone, when(received))
    expires = record.component_token_expires_at
    if not record.component_token or expires is None:
        check("component_access_token", "没有", "bad", "需要先收到 ticket")
    elif expires <= now:
        check("component_access_token", f"已过期 {span(now - expires)}", "bad", when(expires))
    else:
        tone = "warn" if expires - now < settings.component_token_refresh_margin else "ok"
        check("component_access_token", f"{span(expires - now)}后过期", tone, when(expires))
    paused = record.authorizer_token_paused_until(now)
    if paused is not None:
        check(
            "45009 暂停",
            f"api_authorizer_token 暂停至 {when(paused)}",
            "bad",
            f"第 {record.authorizer_token_quota_strikes} 次；可在运维操作中 clear_quota",
        )
    else:
        check("45009 暂停", "无", "ok")
    detail = (report.get("components") or {}).get(appid)
    if not sweep_at or detail is None:
        check("最近一次刷新", "没有记录", "warn", "Cloud Scheduler 每 5 分钟调用 /tasks/refresh")
    else:
        counts = dict(detail.get("authorizers") or {})
        due = counts.pop("due", 0)
        outcomes = "，".join(f"{k} {v}" for k, v in sorted(counts.items()))
        text = f"component_access_token {detail.get('component_token', '—')}；到期的授权方 {due} 个"
        text += f"（{outcomes}）" if outcomes else ""
        failed = int(counts.get("failed", 0)) + int(detail.get("component_token") == "failed")
        tone = "bad" if failed or detail.get("error") else "ok"
        if tone == "ok" and now - sweep_at > SWEEP_STALE:
            tone = "warn"
        check("最近一次刷新", f"{ago(sweep_at, now)}：{text}", tone, detail.get("error") or "")
    if record.last_error:
        recent = record.last_error_at is not None and now - record.last_error_at < 3600
        check(
            "最近错误", record.last_error, "bad" if recent else "warn", when(record.last_error_at)
        )
    errors = _safe(store.recent_errors, appid, now - 86400, RECENT_ERRORS) or []
    counts = {
        status: _safe(store.count_authorizers, appid, status)
        for status in (s.value for s in AuthorizerStatus)
    }
    tones = [c["tone"] for c in checks]
    return {
        "appid": appid,
        "checks": checks,
        "errors": errors,
        "counts": counts,
        "healthy": "bad" not in tones,
        "tone": "bad" if "bad" in tones else "warn" if "warn" in tones else "ok",
    }


# ----- authorizers ----------------------------------------------------------------------


@bp.get("/authorizers")
def authorizers() -> ResponseReturnValue:
    rt = runtime()
    component = component_choice()
    q = request.args.get("q", "").strip()[:64]
    status = request.args.get("status") or None
    kind = request.args.get("type") or None
    after = request.args.get("after") or None
    if status is not None and status not in STATUS_LABELS:
        return refusal(400, "参数错误", "status 不是已知的授权状态。")
    if kind is not None and kind not in TYPE_LABELS:
        return refusal(400, "参数错误", "type 不是已知的账号类型。")
    if after is not None and not APPID_PATTERN.match(after):
        return refusal(400, "参数错误", "after 必须是上一页最后一个 appid。")
    mode, next_after, note = "list", None, ""
    if q and _is_appid_prefix(q):
        mode = "appid"
        start = after or q
        found = rt.store.list_authorizers(
            component, status=status, account_type=kind, after=start, limit=PAGE_SIZE + 1
        )
        if len(q) == len(APPID_PREFIX):  # a whole appid: the one record
            record = rt.store.get_authorizer(component, q)
            found = [record] if record is not None and _matches(record, status, kind) else []
        matching = [r for r in found if r.appid.startswith(q)]
        rows = matching[:PAGE_SIZE]
        if len(matching) > PAGE_SIZE:
            next_after = rows[-1].appid
    elif q:
        mode = "name"
        rows = console_store().authorizers_named(component, q, status, kind, NAME_RESULTS + 1)
        if len(rows) > NAME_RESULTS:
            rows = rows[:NAME_RESULTS]
            note = f"只显示名称以“{q}”开头的前 {NAME_RESULTS} 个，请输入更长的名称。"
    else:
        found = rt.store.list_authorizers(
            component, status=status, account_type=kind, after=after, limit=PAGE_SIZE + 1
        )
        rows = found[:PAGE_SIZE]
        if len(found) > PAGE_SIZE:
            next_after = rows[-1].appid
    query: dict[str, Any] = {
        k: v
        for k, v in {"component": component, "q": q, "status": status, "type": kind}.items()
        if v
    }
    return page(
        "authorizers.html",
        component=component,
        q=q,
        status=status or "",
        kind=kind or "",
        mode=mode,
        rows=[_row(r) for r in rows],
        note=note,
        next_url=url_for(".authorizers", **query, after=next_after) if next_after else None,
        first_url=url_for(".authorizers", **query) if after else None,
        statuses=STATUS_LABELS,
        types=TYPE_LABELS,
    )


def _type_label(record: AuthorizerRecord) -> str:
    return TYPE_LABELS.get(record.account_type or "", "未知")


def _is_appid_prefix(q: str) -> bool:
    return (
        len(q) <= len(APPID_PREFIX)
        and q.startswith("wx")
        and all(c in "0123456789abcdef" for c in q[2:])
    )


def _matches(record: AuthorizerRecord, status: str | None, kind: str | None) -> bool:
    return (status is None or record.status == status) and (
        kind is None or record.account_type == kind
    )


def _row(record: AuthorizerRecord) -> dict[str, Any]:
    return {
        "appid": record.appid,
        "name": record.nick_name or "—",
        "type": TYPE_LABELS.get(record.account_type or "", "未知"),
        "status": record.status,
        "status_label": STATUS_LABELS.get(record.status, record.status),
        "expires": when(record.access_token_expires_at),
        "sync_flag": SYNC_FLAG_LABELS.get(record.sync_flag or "", record.sync_flag or ""),
        "last_error": record.last_error or "",
    }


@bp.get("/components/<component_appid>/authorizers/<authorizer_appid>")
def authorizer(component_appid: str, authorizer_appid: str) -> ResponseReturnValue:
    if not APPID_PATTERN.match(authorizer_appid):
        return refusal(400, "参数错误", "appid 必须是 wx 加 16 位十六进制数字。")
    record = runtime().store.get_authorizer(component_appid, authorizer_appid)
    if record is None:
        return refusal(404, "未找到", f"{component_appid} 下没有授权方 {authorizer_appid}。")
    now = time.time()
    expires = record.access_token_expires_at
    counter = _quota_counter()
    return page(
        "authorizer.html",
        component=component_appid,
        record=record,
        row=_row(record),
        permission_sets=[{"id": i, "name": permission_set_name(i)} for i in record.func_info],
        token_state=_token_state(record, now),
        token_expires=when(expires),
        history=list(reversed(record.history)),
        history_when=[when(h.get("at")) for h in reversed(record.history)],
        resets=_safe(counter.left, authorizer_appid),
        clears_per_month=CLEARS_PER_MONTH,
        result=None,
    )


def _token_state(record: AuthorizerRecord, now: float) -> dict[str, str]:
    expires = record.access_token_expires_at
    if not record.access_token or not expires:
        return {"tone": "warn", "text": "没有有效的 authorizer_access_token"}
    if expires <= now:
        return {"tone": "bad", "text": f"已过期 {span(now - expires)}"}
    return {"tone": "ok", "text": f"{span(expires - now)}后过期"}


def _authorizer_action(
    component_appid: str,
    authorizer_appid: str,
    action: str,
    result: str,
    tone: str,
    message: str,
    **detail: Any,
) -> Response:
    audit().record(operator(), action, f"{component_appid}/{authorizer_appid}", result, **detail)
    back = url_for(
        ".authorizer", component_appid=component_appid, authorizer_appid=authorizer_appid
    )
    return page(
        "message.html",
        title=ACTION_TITLES[action],
        message=message,
        tone=tone,
        back=back,
        detail=detail,
    )


ACTION_TITLES = {
    "renew_token": "立即刷新令牌",
    "fetch_profile": "重新拉取资料",
    "clear_quota": "clear_quota",
    "sync": "同步授权方列表",
    "replay_push": "重放推送",
    "generate_links": "生成授权链接",
}
RENEW_MESSAGES = {
    TokenOutcome.RENEWED: ("ok", "已刷新：新的 authorizer_access_token 已保存。"),
    TokenOutcome.SKIPPED: (
        "warn",
        "没有刷新：它不是可刷新的已授权账号（无 refresh_token 或已取消授权），"
        "或另一个进程正在刷新它。",
    ),
    TokenOutcome.FAILED: ("bad", "刷新失败（暂时性错误），凭证未改动，下次刷新会重试。"),
    TokenOutcome.NEEDS_REAUTHORIZATION: (
        "bad",
        "微信拒绝了 refresh_token（61023）：商户需要重新授权。",
    ),
    TokenOutcome.REVOKED: ("bad", "该账号已取消授权（61003）。"),
    TokenOutcome.QUOTA_EXCEEDED: (
        "bad",
        "api_authorizer_token 超出每日额度（45009），已暂停；可 clear_quota。",
    ),
}


@bp.post("/components/<component_appid>/authorizers/<authorizer_appid>/renew")
def renew(component_appid: str, authorizer_appid: str) -> ResponseReturnValue:
    if not APPID_PATTERN.match(authorizer_appid):
        return refusal(400, "参数错误", "appid 必须是 wx 加 16 位十六进制数字。")
    # Due before any expiry WeChat gives (7200 s): the manager renews it now, one refresher.
    due_before = time.time() + 3 * 7200
    outcome = runtime().authorizer_tokens.refresh_due(component_appid, authorizer_appid, due_before)
    tone, message = RENEW_MESSAGES.get(outcome, ("warn", outcome.value))
    record = runtime().store.get_authorizer(component_appid, authorizer_appid)
    expires = when(record.access_token_expires_at) if record is not None else "—"
    return _authorizer_action(
        component_appid,
        authorizer_appid,
        "renew_token",
        outcome.value,
        tone,
        f"{message} 令牌过期时间：{expires}",
    )


@bp.post("/components/<component_appid>/authorizers/<authorizer_appid>/profile")
def fetch_profile(component_appid: str, authorizer_appid: str) -> ResponseReturnValue:
    if not APPID_PATTERN.match(authorizer_appid):
        return refusal(400, "参数错误", "appid 必须是 wx 加 16 位十六进制数字。")
    record = runtime().code_exchange.fill_profile(component_appid, authorizer_appid)
    if record is None:
        return _authorizer_action(
            component_appid,
            authorizer_appid,
            "fetch_profile",
            "failed",
            "bad",
            "没有拉到资料：api_get_authorizer_info 失败或该授权方不存在（详情见服务日志）。",
        )
    return _authorizer_action(
        component_appid,
        authorizer_appid,
        "fetch_profile",
        "ok",
        "ok",
        f"已更新资料：{record.nick_name or '—'}（{_type_label(record)}）。",
    )


# ----- authorization links ----------------------------------------------------------------


@bp.route("/links", methods=["GET", "POST"])
def links() -> ResponseReturnValue:
    rt = runtime()
    component = component_choice()
    sets_by_type = [
        {
            "label": TYPE_LABELS[kind.value],
            "sets": [s for s in PERMISSION_SETS.values() if kind in s.account_types],
        }
        for kind in (AccountType.OFFICIAL_ACCOUNT, AccountType.MINI_PROGRAM)
    ]
    others = [
        s
        for s in PERMISSION_SETS.values()
        if not s.account_types & {AccountType.OFFICIAL_ACCOUNT, AccountType.MINI_PROGRAM}
    ]
    if others:
        sets_by_type.append({"label": "其他账号类型", "sets": others})
    context: dict[str, Any] = {
        "component": component,
        "auth_types": list(AUTH_TYPES.values()),
        "sets_by_type": sets_by_type,
        "chosen_type": 3,
        "biz_appid": "",
        "chosen_sets": [],
        "issued": None,
        "error": None,
    }
    if request.method == "GET":
        return page("links.html", **context)
    form = request.form
    try:
        auth_type = parse_auth_type(form.get("auth_type", ""))
        biz_appid = parse_biz_appid(form.get("biz_appid", "").strip())
        chosen = [int(v) for v in form.getlist("category_id") if v.isdigit()]
        unknown = [i for i in chosen if i not in PERMISSION_SETS]
        if unknown:
            raise LinkParamError("category_id", f"unknown permission sets {unknown}")
    except LinkParamError as exc:
        context["error"] = str(exc)
        return page("links.html", 400, **context)
    context.update(chosen_type=auth_type, biz_appid=biz_appid or "", chosen_sets=chosen)
    base = (rt.settings.public_base_url or request.host_url).rstrip("/")
    query: dict[str, str] = {"auth_type": str(auth_type)}
    if biz_appid:
        query["biz_appid"] = biz_appid
    if chosen:
        query["category_ids"] = "|".join(str(i) for i in chosen)
    entry_url = f"{base}/authorize/{component}?{urlencode(query)}"
    redirect_uri = rt.settings.callback_url(component) or f"{base}/authorize/{component}/callback"
    link_request = LinkRequest(auth_type, redirect_uri, biz_appid, tuple(chosen))
    target = component
    try:
        issued = rt.links.issue(component, link_request)
    except (WeChatError, TokenUnavailableError) as exc:
        audit().record(operator(), "generate_links", target, f"failed: {exc}")
        context["error"] = f"微信没有给出 pre_auth_code：{exc}"
        return page("links.html", 502, **context)
    audit().record(
        operator(),
        "generate_links",
        target,
        "ok",
        auth_type=auth_type,
        biz_appid=biz_appid,
        category_ids=chosen,
    )
    qr = segno.make(entry_url, error="m").png_data_uri(scale=4, border=2)
    context["issued"] = {
        "entry_url": entry_url,
        "qr": qr,
        "pc_url": issued.links.pc_url,
        "h5_url": issued.links.h5_url,
        "h5_legacy_url": issued.links.h5_legacy_url,
        "expires": when(issued.expires_at),
        "public_base_set": rt.settings.public_base_url is not None,
    }
    return page("links.html", **context)


# ----- the push log ------------------------------------------------------------------------


@bp.get("/pushes")
def pushes() -> ResponseReturnValue:
    rt = runtime()
    now = time.time()
    appid = request.args.get("appid", "").strip()[:32]
    kind = request.args.get("kind", "").strip()[:64]
    source = request.args.get("source", "")
    hours_text = request.args.get("hours", "24")
    hours = int(hours_text) if hours_text.isdigit() and int(hours_text) in SINCE_HOURS else 24
    components = list(rt.settings.components)
    found = push_log().recent(components, now - hours * 3600)
    shown = [
        p
        for p in found
        if (not appid or p.authorizer_appid == appid or p.component_appid == appid)
        and (
            not kind or kind.lower() in {x.lower() for x in (p.info_type, p.msg_type, p.event) if x}
        )
        and (source not in ("events", "messages") or p.source == source)
    ]
    tickets = []
    for component in components:
        record = rt.store.get_component(component)
        tickets.append(
            {
                "component": component,
                "received": when(record.ticket_received_at),
                "ago": ago(record.ticket_received_at, now),
                "create_time": when(record.ticket_create_time),
            }
        )
    return page(
        "pushes.html",
        pushes=[_push_row(p) for p in shown[:500]],
        total=len(shown),
        tickets=tickets,
        appid=appid,
        kind=kind,
        source=source,
        hours=hours,
        since_hours=SINCE_HOURS,
        flush_interval=rt.settings.push_log_flush_interval,
        capacity=rt.settings.push_log_messages,
    )


def _push_row(push: LoggedPush) -> dict[str, Any]:
    route = None
    if push.route:
        route = next((r for r in push_log().delivery.routes if r.name == push.route), None)
    replayable, why = True, ""
    if not push.stored:
        seconds = runtime().settings.push_log_flush_interval
        replayable, why = False, f"还在本进程内存中，尚未写入（至多 {seconds:g} 秒）"
    elif push.truncated:
        replayable, why = False, "正文过长，只保存了一部分"
    elif route is not None and route.reply is not None:
        replayable, why = False, "reply 路由不重放：被动回复只回答正在等待的用户"
    elif not push.route:
        replayable, why = False, "没有匹配的路由"
    return {
        "push": push,
        "when": when(push.received_at),
        "replayable": replayable,
        "why": why,
    }


@bp.post("/pushes/replay")
def replay_push() -> ResponseReturnValue:
    rt = runtime()
    ref = request.form.get("ref", "")[:300]
    log = push_log()
    push = log.find(ref)
    if push is None:
        return refusal(404, "未找到", "日志中没有这条推送（可能已过期）。")
    target = f"{push.source}:{push.authorizer_appid or push.component_appid}:{push.kind}"
    try:
        replayed = replay(push, rt.store, log.delivery)
    except ReplayRefused as exc:
        audit().record(operator(), "replay_push", target, f"refused: {exc}", ref=ref)
        return page(
            "message.html",
            409,
            title="重放推送",
            message=str(exc),
            tone="bad",
            back=url_for(".pushes"),
        )
    audit().record(
        operator(),
        "replay_push",
        target,
        "ok",
        ref=ref,
        route=replayed.route,
        message_id=replayed.message_id,
    )
    return page(
        "message.html",
        title="重放推送",
        message=f"已重新投递到路由 {replayed.route}（Pub/Sub message_id "
        f"{replayed.message_id or '—'}）。信封的 dedup_key 与原推送相同，并带 replayed_at。",
        tone="ok",
        back=url_for(".pushes"),
    )


# ----- operations -----------------------------------------------------------------------


def _quota_counter() -> QuotaResetCounter:
    return QuotaResetCounter(console_store(), core_clear(runtime()))


@bp.get("/operations")
def operations() -> ResponseReturnValue:
    rt = runtime()
    counter = _quota_counter()
    rows = []
    for component in rt.settings.components:
        rows.append({"appid": component, "resets": _safe(counter.left, component)})
    return page("operations.html", rows=rows, clears_per_month=CLEARS_PER_MONTH)


@bp.post("/components/<component_appid>/sync")
def sync(component_appid: str) -> ResponseReturnValue:
    try:
        report = runtime().sync.run(component_appid)
    except (WeChatError, TokenUnavailableError, StoreError) as exc:
        audit().record(operator(), "sync", component_appid, f"failed: {exc}")
        return page(
            "message.html",
            502,
            title="同步授权方列表",
            tone="bad",
            message=f"同步失败，未改动任何记录：{exc}",
            back=url_for(".operations"),
        )
    body = report.to_json()
    audit().record(
        operator(),
        "sync",
        component_appid,
        "ok",
        **{k: (len(v) if isinstance(v, list) else v) for k, v in body.items()},
    )
    return page("sync.html", component=component_appid, report=body)


@bp.get("/components/<component_appid>/clear_quota")
def confirm_clear_quota(component_appid: str) -> ResponseReturnValue:
    appid = request.args.get("appid") or None
    if appid is not None and not APPID_PATTERN.match(appid):
        return refusal(400, "参数错误", "appid 必须是 wx 加 16 位十六进制数字。")
    resets = _quota_counter().left(appid or component_appid)
    return page(
        "clear_quota.html",
        component=component_appid,
        appid=appid,
        resets=resets,
        clears_per_month=CLEARS_PER_MONTH,
    )


@bp.post("/components/<component_appid>/clear_quota")
def clear_quota(component_appid: str) -> ResponseReturnValue:
    appid = request.form.get("appid") or None
    if appid is not None and not APPID_PATTERN.match(appid):
        return refusal(400, "参数错误", "appid 必须是 wx 加 16 位十六进制数字。")
    counter = _quota_counter()
    target = f"{component_appid}/{appid}" if appid else component_appid
    back = (
        url_for(".authorizer", component_appid=component_appid, authorizer_appid=appid)
        if appid
        else url_for(".operations")
    )
    try:
        counter.clear(component_appid, appid)
    except ClearQuotaLimitError:
        audit().record(operator(), "clear_quota", target, "refused: 48006")
        return page(
            "message.html",
            429,
            title="clear_quota",
            tone="bad",
            back=back,
            message="微信拒绝：本月的 10 次重置已用完（48006）。",
        )
    except WeChatError as exc:
        audit().record(operator(), "clear_quota", target, f"failed: {exc}")
        return page(
            "message.html",
            502,
            title="clear_quota",
            tone="bad",
            back=back,
            message=f"重置失败：{exc}",
        )
    left = counter.left(appid or component_appid)
    audit().record(operator(), "clear_quota", target, "ok", left=left.left)
    return page(
        "message.html",
        title="clear_quota",
        tone="ok",
        back=back,
        message=f"已重置 {target} 的调用额度。本月至多还剩 {left.left} 次。",
    )


# ----- audit ----------------------------------------------------------------------------


@bp.get("/audit")
def audit_log() -> ResponseReturnValue:
    entries = audit().recent()
    return page("audit.html", entries=entries, when=when)
