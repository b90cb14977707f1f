"""The console's open platform account page (/console/open-accounts): the group report of
scene 2 and its bind-unbound action, in the console's style and behind its guard (session,
CSRF on the POST, audit log). The report asks WeChat once per account, so it runs only
when asked (``?run=1``), never on a plain visit."""

from __future__ import annotations

from flask import request, url_for
from flask.typing import ResponseReturnValue

from service.open_account_group import OpenAccountGroup
from service.store.records import StoreError
from service.web import runtime
from service.web.console import audit, bp, operator, page, refusal

TITLE = "开放平台帐号"


def _group() -> OpenAccountGroup | None:
    return runtime().open_account_group


@bp.get("/open-accounts")
def open_accounts() -> ResponseReturnValue:
    group = _group()
    report = None
    if group is not None and request.args.get("run") == "1":
        try:
            report = group.report().to_json()
        except StoreError as exc:
            return refusal(503, TITLE, f"读取授权方失败，请稍后再试：{exc}")
    return page(
        "open_accounts.html",
        title=TITLE,
        group=None if group is None else group.group_open_appid,
        report=report,
        binding=None,
    )


@bp.post("/open-accounts/bind-unbound")
def open_accounts_bind_unbound() -> ResponseReturnValue:
    group = _group()
    if group is None:
        return refusal(404, TITLE, "未设置 GROUP_OPEN_APPID：没有集团的开放平台帐号可绑定。")
    try:
        binding = group.bind_unbound().to_json()
    except StoreError as exc:
        audit().record(operator(), "bind_unbound", group.group_open_appid, f"failed: {exc}")
        return refusal(503, TITLE, f"读取授权方失败，未绑定任何帐号：{exc}")
    audit().record(
        operator(),
        "bind_unbound",
        group.group_open_appid,
        "ok",
        bound=[b["appid"] for b in binding["bound"]],
        failed=[f"{f['appid']}:{f['errcode']}" for f in binding["failed"]],
        left_bound_elsewhere=len(binding["bound_elsewhere"]),
    )
    return page(
        "open_accounts.html",
        title=TITLE,
        group=group.group_open_appid,
        report=None,
        binding=binding,
        again=url_for(".open_accounts", run="1"),
    )
