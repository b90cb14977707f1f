"""The ``/_mock/`` control plane: set the mock up, drive it, and read its logs.

Set up components, merchant accounts, faults, quotas, open platform accounts and the
clock; play the merchant headlessly; send users' messages to an account and run the
全网发布 check; read and replay the logs.

JSON in and out. Bad input is HTTP 400 ``{"error": "<field>: <reason>"}``; an unknown
component or account is 404; a duplicate or a state conflict is 409. A refused
authorization rule also says which rule, as ``code`` (the pages' ``data-error`` value).
Handlers parse with ``control_inputs``, call the state, and deliver any push the state
returned after the state's lock is released.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from mock_wechat.api_table import API_NAMES
from mock_wechat.app_services import services
from mock_wechat.auth_rules import AuthRuleError, Refusal
from mock_wechat.config import InvalidField
from mock_wechat.control_inputs import (
    json_object,
    parse_account,
    parse_advance,
    parse_authorize,
    parse_component,
    parse_component_patch,
    parse_component_ref,
    parse_fault_rules,
    parse_open_account,
    parse_quota_rules,
    parse_redeliver,
    parse_release_check,
    parse_seed,
    parse_update_authorization,
    parse_user_message,
)
from mock_wechat.deliveries import MessageRefused
from mock_wechat.event_pusher import PushResult
from mock_wechat.faults import MESSAGE_PUSH
from mock_wechat.merchant_accounts import DuplicateAccountError, UnknownAccountError
from mock_wechat.models import UnknownComponentError
from mock_wechat.open_accounts import OpenAccountConflict
from mock_wechat.release_check import ReleaseCheck, choose_groups

bp = Blueprint("mock_control", __name__, url_prefix="/_mock")

# The HTTP status of each reason an authorization rule gives for refusing.
REFUSAL_STATUS = {
    Refusal.INVALID: 400,
    Refusal.UNKNOWN: 404,
    Refusal.CONFLICT: 409,
    Refusal.FORBIDDEN: 403,
}


@bp.errorhandler(InvalidField)
def bad_input(exc: InvalidField) -> tuple[Response, int]:
    return jsonify(error=str(exc)), 400


@bp.errorhandler(UnknownComponentError)
def unknown_component(exc: UnknownComponentError) -> tuple[Response, int]:
    return jsonify(error=f"unknown component: {exc.appid}"), 404


@bp.errorhandler(UnknownAccountError)
def unknown_account(exc: UnknownAccountError) -> tuple[Response, int]:
    return jsonify(error=f"unknown account: {exc.appid}"), 404


@bp.errorhandler(DuplicateAccountError)
def duplicate_account(exc: DuplicateAccountError) -> tuple[Response, int]:
    return jsonify(error=f"appid: account {exc.appid} already exists"), 409


@bp.errorhandler(OpenAccountConflict)
def open_account_conflict(exc: OpenAccountConflict) -> tuple[Response, int]:
    return jsonify(error=str(exc)), 409


@bp.errorhandler(MessageRefused)
def message_refused(exc: MessageRefused) -> tuple[Response, int]:
    return jsonify(error=str(exc)), 409


@bp.errorhandler(AuthRuleError)
def refused(exc: AuthRuleError) -> tuple[Response, int]:
    return jsonify(error=exc.message, code=exc.code), REFUSAL_STATUS[exc.refusal]


def _body() -> dict[str, Any]:
    return json_object(request.get_data(cache=False))


def _push(result: PushResult | None) -> dict[str, Any] | None:
    return None if result is None else result.to_dict()


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.post("/components")
def register_component() -> tuple[Response, int]:
    config = parse_component(_body())
    return jsonify(services().state.register_component(config)), 201


@bp.get("/components")
def list_components() -> Response:
    return jsonify(components=services().state.list_components())


@bp.get("/components/<appid>")
def get_component(appid: str) -> Response:
    return jsonify(services().state.get_component(appid))


@bp.patch("/components/<appid>")
def update_component(appid: str) -> Response:
    patch = parse_component_patch(_body())
    return jsonify(services().state.update_component(appid, patch))


@bp.post("/components/<appid>/push-ticket")
def push_ticket(appid: str) -> Response:
    return jsonify(services().events.push_ticket(appid).to_dict())


@bp.post("/components/<appid>/authorizers/seed")
def seed_authorizers(appid: str) -> tuple[Response, int]:
    """Many authorized, already-exchanged authorizers at once, for benchmarks (no pushes)."""
    given = parse_seed(_body())
    grants = services().state.seed_authorizers(appid, given.type, given.count)
    seeded = [
        {"authorizer_appid": g.authorizer_appid, "refresh_token": g.refresh_token} for g in grants
    ]
    return jsonify(authorizers=seeded), 201


@bp.post("/accounts")
def create_account() -> tuple[Response, int]:
    account = services().state.accounts.add(parse_account(_body()))
    return jsonify(account.public()), 201


@bp.get("/accounts")
def list_accounts() -> Response:
    return jsonify(accounts=[a.public() for a in services().state.accounts.all()])


@bp.get("/accounts/<appid>")
def get_account(appid: str) -> Response:
    return jsonify(services().state.authorizations.account_view(appid))


@bp.post("/authorize")
def authorize() -> Response:
    """The authorization pages without a browser: same rules, same confirmation."""
    given = parse_authorize(_body())
    done = services().state.authorizations.authorize(
        given.request, given.authorizer_appid, given.admin, given.category_ids
    )
    result = services().events.dispatch(done.notice)
    return jsonify(
        auth_code=done.auth_code,
        expires_in=done.expires_in,
        info_type=done.info_type,
        redirect_url=done.redirect_url,
        push=_push(result),
    )


@bp.post("/accounts/<appid>/unauthorize")
def unauthorize(appid: str) -> Response:
    component = parse_component_ref(_body())
    notice = services().state.authorizations.unauthorize(component, appid)
    return jsonify(push=_push(services().events.dispatch(notice)))


@bp.post("/accounts/<appid>/update-authorization")
def update_authorization(appid: str) -> Response:
    component, category_ids = parse_update_authorization(_body())
    done = services().state.authorizations.update_authorization(component, appid, category_ids)
    return jsonify(auth_code=done.auth_code, push=_push(services().events.dispatch(done.notice)))


@bp.post("/authorizers/<appid>/messages")
def send_message(appid: str) -> Response:
    """A user's message or event to an authorized account, delivered to the component's
    message_url now; answers the delivery record once the final answer is judged."""
    request_ = parse_user_message(_body())
    return jsonify(services().messages.send(appid, request_).to_dict())


@bp.get("/authorizers/<appid>/messages")
def account_messages(appid: str) -> Response:
    return jsonify(messages=services().state.account_messages(appid))


@bp.post("/components/<appid>/release-check")
def release_check(appid: str) -> Response:
    """The 全网发布 check, run now against the component's URLs (takes seconds)."""
    given = parse_release_check(_body())
    found = services()
    check = ReleaseCheck(found.state, found.events, found.messages, given.send_deadline)
    report = check.run(appid, choose_groups(given.group, given.all_groups))
    return jsonify(report.to_dict())


@bp.get("/calls")
def calls() -> Response:
    return jsonify(calls=services().state.calls(request.args.get("api")))


@bp.get("/credentials")
def credentials() -> Response:
    """Every credential issued since the last reset (tickets, tokens, codes), by kind."""
    return jsonify(credentials=services().state.issued_credentials())


@bp.get("/pushes")
def pushes() -> Response:
    return jsonify(pushes=services().state.pushes())


@bp.post("/pushes/redeliver")
def redeliver() -> Response | tuple[Response, int]:
    index = parse_redeliver(_body())
    try:
        entry = services().state.push_entry(index)
    except IndexError:
        return jsonify(error=f"index: no push {index} in the push log"), 404
    result = services().events.redeliver(entry)
    return jsonify(appid=entry.appid, info_type=entry.info_type, **result.to_dict())


@bp.get("/pushes/held")
def held_pushes() -> Response:
    return jsonify(held=[p.to_dict() for p in services().state.held_pushes()])


@bp.post("/pushes/release")
def release_pushes() -> Response:
    released = services().events.release_held()
    results = [
        {"appid": push.appid, "info_type": push.info_type, **result.to_dict()}
        for push, result in released
    ]
    return jsonify(pushes=results)


@bp.get("/faults")
def list_faults() -> Response:
    return jsonify(rules=services().state.list_faults())


@bp.post("/faults")
def set_faults() -> Response:
    state = services().state
    state.set_faults(parse_fault_rules(_body(), API_NAMES | {MESSAGE_PUSH}))
    return jsonify(rules=state.list_faults())


@bp.delete("/faults")
def clear_faults() -> Response:
    services().state.clear_faults()
    return jsonify(rules=[])


@bp.get("/quotas")
def quotas() -> Response:
    return jsonify(services().state.quotas.view())


@bp.post("/quotas")
def set_quotas() -> Response:
    state = services().state
    state.quotas.set_rules(parse_quota_rules(_body(), API_NAMES))
    return jsonify(state.quotas.view())


@bp.delete("/quotas")
def clear_quotas() -> Response:
    state = services().state
    state.quotas.clear()
    return jsonify(state.quotas.view())


@bp.get("/open-accounts")
def open_accounts() -> Response:
    return jsonify(open_accounts=services().state.open_accounts.all())


@bp.post("/open-accounts")
def register_open_account() -> tuple[Response, int]:
    """An open platform account made on open.weixin.qq.com: the API may not touch it."""
    principal_name, appids = parse_open_account(_body())
    state = services().state
    accounts = [state.accounts.get(appid) for appid in appids]
    created = state.open_accounts.register_on_website(principal_name, accounts)
    return jsonify(created.public()), 201


@bp.get("/messages")
def messages() -> Response:
    return jsonify(messages=services().state.outbox.messages())


@bp.get("/clock")
def get_clock() -> Response:
    return jsonify(now=services().state.now())


@bp.post("/clock")
def advance_clock() -> Response:
    return jsonify(now=services().state.advance_clock(parse_advance(_body())))


@bp.post("/reset")
def reset() -> Response:
    services().state.reset()
    return jsonify(status="ok")
