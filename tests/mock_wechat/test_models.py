"""The state object and its clock, without a server: lifetimes, errcodes, faults, schedule.

The component APIs are answered by their handlers (``api_handlers.answer``) or run whole,
as the HTTP layer runs them (``api_dispatch.call_api``), against the state in this process.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mock_wechat import errcodes as ec
from mock_wechat.api_dispatch import call_api, fault_outcome
from mock_wechat.api_handlers import answer as api_answer
from mock_wechat.config import ComponentPatch, InvalidField
from mock_wechat.faults import FaultRule
from mock_wechat.models import (
    COMPONENT_TOKEN_TTL,
    SUPERSEDED_GRACE,
    TICKET_TTL,
    Clock,
    MockApiError,
    MockWeChat,
    UnknownComponentError,
)
from tests.mock_wechat.helpers import AES_KEY, APPID, OTHER, SECRET, T0, TOKEN, config, errcode_of

RID = re.compile(r" rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$")


@pytest.fixture
def state() -> MockWeChat:
    mock = MockWeChat(Clock(wall=lambda: T0))
    mock.register_component(config())
    return mock


def token_body(state: MockWeChat, **overrides: Any) -> dict[str, Any]:
    body = {
        "component_appid": APPID,
        "component_appsecret": SECRET,
        "component_verify_ticket": state.issue_ticket(APPID).value,
    }
    body.update(overrides)
    return body


def new_token(state: MockWeChat, appid: str = APPID) -> str:
    body = {
        "component_appid": appid,
        "component_appsecret": SECRET,
        "component_verify_ticket": state.issue_ticket(appid).value,
    }
    token: str = api_answer(state, "api_component_token", body)["component_access_token"]
    return token


def preauth(
    state: MockWeChat, token: str, appid: str = APPID, name: str = "component_access_token"
) -> dict[str, Any]:
    return api_answer(state, "api_create_preauthcode", {"component_appid": appid}, {name: token})


# ----- clock -----------------------------------------------------------------------------


def test_clock_moves_forward_only_and_resets() -> None:
    clock = Clock(wall=lambda: T0)
    assert clock.now() == T0
    assert clock.advance(90) == T0 + 90
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        clock.advance(float("nan"))
    clock.reset()
    assert clock.now() == T0 and clock.offset == 0


def test_errmsg_carries_a_rid_suffix() -> None:
    body = ec.error_body(ec.TICKET_EXPIRED)
    assert body["errcode"] == 61005
    assert isinstance(body["errmsg"], str)
    assert body["errmsg"].startswith("component ticket is expired rid: ")
    assert RID.search(body["errmsg"])
    assert ec.errmsg(61005) != ec.errmsg(61005)  # a fresh rid each time


# ----- registry --------------------------------------------------------------------------


def test_registered_component_is_listed_without_secrets(state: MockWeChat) -> None:
    [listed] = state.list_components()
    assert listed["appid"] == APPID
    assert listed["next_push_at"] == T0 + 600
    text = json.dumps(listed)
    for secret in (SECRET, TOKEN, AES_KEY):
        assert secret not in text
    assert "secret" not in listed and "token" not in listed and "encoding_aes_key" not in listed


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"appid": ""}, "appid"),
        ({"secret": ""}, "secret"),
        ({"token": ""}, "token"),
        ({"encoding_aes_key": "short"}, "encoding_aes_key"),
        ({"encoding_aes_key": AES_KEY[:-1] + "!"}, "encoding_aes_key"),
        ({"event_url": "ftp://x.example/events"}, "event_url"),
        ({"event_url": "/relative"}, "event_url"),
        ({"ticket_interval": 0}, "ticket_interval"),
        ({"ticket_interval": float("inf")}, "ticket_interval"),
        ({"push_retries": -1}, "push_retries"),
        ({"message_url": "http://x.example/messages"}, "message_url"),  # no $APPID$
        ({"message_url": "ftp://x.example/$APPID$"}, "message_url"),
        ({"message_url": "/wechat/$APPID$/messages"}, "message_url"),
    ],
)
def test_component_config_is_validated(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidField) as info:
        config(**overrides)
    assert info.value.field == field


def test_message_url_is_shown_patched_and_filled_in_per_account(state: MockWeChat) -> None:
    assert state.get_component(APPID)["message_url"] is None
    url = "https://gw.example.com/wechat/$APPID$/messages?x=1"
    assert state.update_component(APPID, ComponentPatch(message_url=url))["message_url"] == url
    registered = config(message_url=url)
    assert registered.message_url_for("wx570bc396a51b8ff8") == (
        "https://gw.example.com/wechat/wx570bc396a51b8ff8/messages?x=1"
    )
    assert config().message_url_for("wx570bc396a51b8ff8") is None
    with pytest.raises(InvalidField):
        ComponentPatch(message_url="https://gw.example.com/messages")


def test_update_component_and_unknown_component(state: MockWeChat) -> None:
    state.clock.advance(10)
    updated = state.update_component(APPID, ComponentPatch(ticket_interval=30, push_retries=2))
    assert updated["ticket_interval"] == 30 and updated["push_retries"] == 2
    assert updated["next_push_at"] == T0 + 10 + 30  # rescheduled from now
    assert state.update_component(APPID, ComponentPatch(auto_push=False))["next_push_at"] is None
    with pytest.raises(UnknownComponentError):
        state.update_component("wxnope", ComponentPatch(auto_push=True))
    with pytest.raises(UnknownComponentError):
        state.issue_ticket("wxnope")


# ----- api_component_token ---------------------------------------------------------------


def test_component_token_success_shape(state: MockWeChat) -> None:
    answer = api_answer(state, "api_component_token", token_body(state))
    assert set(answer) == {"component_access_token", "expires_in"}
    assert answer["expires_in"] == 7200
    assert re.fullmatch(r"\d+_[A-Za-z0-9_-]{120}", answer["component_access_token"])


def test_every_success_issues_a_new_token(state: MockWeChat) -> None:
    assert new_token(state) != new_token(state)


@pytest.mark.parametrize(
    ("overrides", "errcode"),
    [
        ({"component_appid": None}, 41002),
        ({"component_appid": ""}, 41002),
        ({"component_appid": "wxunknown"}, 40013),
        ({"component_appsecret": None}, 41004),
        ({"component_appsecret": "wrong"}, 40125),
        ({"component_verify_ticket": None}, 61006),
        ({"component_verify_ticket": "ticket@@@unknown"}, 61006),
    ],
)
def test_component_token_errors(state: MockWeChat, overrides: dict[str, Any], errcode: int) -> None:
    body = {k: v for k, v in token_body(state, **overrides).items() if v is not None}
    assert errcode_of(lambda: api_answer(state, "api_component_token", body)) == errcode


def test_ticket_of_another_component_is_invalid(state: MockWeChat) -> None:
    state.register_component(config(OTHER))
    foreign = state.issue_ticket(OTHER).value
    body = token_body(state, component_verify_ticket=foreign)
    assert errcode_of(lambda: api_answer(state, "api_component_token", body)) == 61006


def test_ticket_lives_twelve_hours_and_older_tickets_still_work(state: MockWeChat) -> None:
    old = token_body(state)
    state.clock.advance(TICKET_TTL - 1)
    state.issue_ticket(APPID)  # a newer ticket does not retire the old one
    assert "component_access_token" in api_answer(state, "api_component_token", old)
    state.clock.advance(1)
    assert errcode_of(lambda: api_answer(state, "api_component_token", old)) == 61005


# ----- the shared token check ------------------------------------------------------------


def test_token_lifetime_is_7200_seconds(state: MockWeChat) -> None:
    token = new_token(state)
    state.clock.advance(COMPONENT_TOKEN_TTL - 1)
    assert preauth(state, token)["expires_in"] == 1800
    state.clock.advance(1)
    assert errcode_of(lambda: preauth(state, token)) == 42001


def test_superseded_token_keeps_working_for_300_seconds(state: MockWeChat) -> None:
    first = new_token(state)
    state.clock.advance(100)
    second = new_token(state)  # supersedes the first now
    state.clock.advance(SUPERSEDED_GRACE - 1)
    assert "pre_auth_code" in preauth(state, first)
    state.clock.advance(2)
    assert errcode_of(lambda: preauth(state, first)) == 40001
    assert "pre_auth_code" in preauth(state, second)


def test_supersede_grace_never_extends_past_expiry(state: MockWeChat) -> None:
    first = new_token(state)
    state.clock.advance(COMPONENT_TOKEN_TTL - 10)
    new_token(state)
    state.clock.advance(10)  # within the grace, but the first token's own life is over
    assert errcode_of(lambda: preauth(state, first)) == 42001


def test_a_third_token_does_not_restart_the_first_ones_grace(state: MockWeChat) -> None:
    first = new_token(state)
    new_token(state)
    state.clock.advance(200)
    new_token(state)
    state.clock.advance(101)
    assert errcode_of(lambda: preauth(state, first)) == 40001


@pytest.mark.parametrize(
    ("query", "errcode"),
    [({}, 41001), ({"component_access_token": ""}, 41001), ({"access_token": "nope"}, 40001)],
)
def test_token_missing_or_unknown(state: MockWeChat, query: dict[str, str], errcode: int) -> None:
    body = {"component_appid": APPID}
    assert errcode_of(lambda: api_answer(state, "api_create_preauthcode", body, query)) == errcode


def test_token_in_body_only_is_missing(state: MockWeChat) -> None:
    body = {"component_appid": APPID, "component_access_token": new_token(state)}
    assert errcode_of(lambda: api_answer(state, "api_create_preauthcode", body, {})) == 41001


def test_token_accepted_as_access_token(state: MockWeChat) -> None:
    assert "pre_auth_code" in preauth(state, new_token(state), name="access_token")


def test_token_of_another_component_is_refused(state: MockWeChat) -> None:
    state.register_component(config(OTHER))
    foreign = new_token(state, OTHER)
    assert errcode_of(lambda: preauth(state, foreign)) == 40001


# ----- api_create_preauthcode ------------------------------------------------------------


def test_pre_auth_code_shape_and_record(state: MockWeChat) -> None:
    answer = preauth(state, new_token(state))
    code = answer["pre_auth_code"]
    assert answer["expires_in"] == 1800
    assert code.startswith("preauthcode@@@") and len(code) == 100
    stored = state.pre_auth_code(code)
    assert stored is not None
    assert (stored.component, stored.expires_at, stored.used) == (APPID, T0 + 1800, False)


def test_pre_auth_code_needs_component_appid(state: MockWeChat) -> None:
    token = new_token(state)
    query = {"component_access_token": token}
    assert errcode_of(lambda: api_answer(state, "api_create_preauthcode", {}, query)) == 41002


# ----- api_start_push_ticket -------------------------------------------------------------


def test_start_push_ticket_turns_pushes_on_and_makes_one_due(state: MockWeChat) -> None:
    state.update_component(APPID, ComponentPatch(auto_push=False))
    body = {"component_appid": APPID, "component_secret": SECRET}
    assert api_answer(state, "api_start_push_ticket", body) == {"errcode": 0, "errmsg": "ok"}
    assert state.take_due_ticket_pushes() == [APPID]
    again = api_answer(state, "api_start_push_ticket", body)
    assert again == {"errcode": 0, "errmsg": "in a normal state"}
    assert state.take_due_ticket_pushes() == [APPID]
    assert state.take_due_ticket_pushes() == []


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"component_secret": SECRET}, 41002),
        ({"component_appid": "wxunknown", "component_secret": SECRET}, 40013),
        ({"component_appid": APPID, "component_secret": "wrong"}, 40125),
        ({"component_appid": APPID}, 41004),
        # the field is component_secret here, not component_appsecret
        ({"component_appid": APPID, "component_appsecret": SECRET}, 41004),
    ],
)
def test_start_push_ticket_errors(state: MockWeChat, body: dict[str, str], errcode: int) -> None:
    assert errcode_of(lambda: api_answer(state, "api_start_push_ticket", body)) == errcode


# ----- call_api: raw bodies and the call log ---------------------------------------------


@pytest.mark.parametrize(
    ("raw", "errcode"),
    [
        (b"", 44002),
        (b"  \n", 44002),
        (b"{not json", 47001),
        (b"\xff\xfe\x00", 47001),
        (b"[1, 2]", 47001),
        (b'"text"', 47001),
        (b'{"component_appid": 12}', 47001),
    ],
)
def test_bad_bodies(state: MockWeChat, raw: bytes, errcode: int) -> None:
    answer = call_api(state, "api_component_token", raw, {})
    assert answer["errcode"] == errcode
    assert RID.search(answer["errmsg"])
    assert state.calls()[-1]["errcode"] == errcode


def test_call_log_records_every_call_in_order(state: MockWeChat) -> None:
    ticket = state.issue_ticket(APPID).value
    good = json.dumps(
        {"component_appid": APPID, "component_appsecret": SECRET, "component_verify_ticket": ticket}
    ).encode()
    token = call_api(state, "api_component_token", good, {})["component_access_token"]
    state.clock.advance(5)
    body = json.dumps({"component_appid": APPID}).encode()
    call_api(state, "api_create_preauthcode", body, {"access_token": token})
    call_api(state, "api_create_preauthcode", body, {})
    calls = state.calls()
    assert [(c["api"], c["appid"], c["errcode"], c["fault"]) for c in calls] == [
        ("api_component_token", APPID, 0, False),
        ("api_create_preauthcode", APPID, 0, False),
        ("api_create_preauthcode", APPID, 41001, False),
    ]
    assert [c["time"] for c in calls] == [T0, T0 + 5, T0 + 5]
    assert len(state.calls("api_create_preauthcode")) == 2


# ----- ticket schedule -------------------------------------------------------------------


def test_first_automatic_push_is_one_interval_after_registration(state: MockWeChat) -> None:
    state.clock.advance(599)
    assert state.take_due_ticket_pushes() == []
    state.clock.advance(1)
    assert state.take_due_ticket_pushes() == [APPID]
    assert state.get_component(APPID)["next_push_at"] == T0 + 1200
    assert state.take_due_ticket_pushes() == []


def test_clock_jump_pushes_once_and_reschedules_from_now(state: MockWeChat) -> None:
    state.clock.advance(5000)
    assert state.take_due_ticket_pushes() == [APPID]
    assert state.take_due_ticket_pushes() == []
    assert state.get_component(APPID)["next_push_at"] == T0 + 5600


def test_no_automatic_pushes_when_off(state: MockWeChat) -> None:
    state.update_component(APPID, ComponentPatch(auto_push=False))
    state.clock.advance(10_000)
    assert state.take_due_ticket_pushes() == []


# ----- fault rules -----------------------------------------------------------------------


def test_faults_first_wins_star_and_times(state: MockWeChat) -> None:
    state.set_faults(
        [
            FaultRule(api="api_component_token", errcode=-1, times=2),
            FaultRule(api="*", http_status=503),
        ]
    )
    first = state.take_fault("api_component_token")
    assert first is not None and first.errcode == -1 and first.times == 1
    second = state.take_fault("api_component_token")
    assert second is not None and second.errcode == -1
    third = state.take_fault("api_component_token")  # the first rule is used up
    assert third is not None and third.http_status == 503
    other = state.take_fault("api_create_preauthcode")
    assert other is not None and other.http_status == 503
    assert [r["times"] for r in state.list_faults()] == [0, None]


def test_no_fault_when_nothing_matches(state: MockWeChat) -> None:
    state.set_faults([FaultRule(api="api_create_preauthcode", errcode=-1)])
    assert state.take_fault("api_component_token") is None
    state.clear_faults()
    assert state.take_fault("api_create_preauthcode") is None
    assert state.list_faults() == []


def test_fault_outcomes_are_logged_as_faults(state: MockWeChat) -> None:
    raw = json.dumps({"component_appid": APPID}).encode()
    errcode = fault_outcome(state, "api_component_token", raw, FaultRule(api="*", errcode=-1))
    assert errcode is not None and errcode.http_status == 200 and errcode.body is not None
    assert errcode.body["errcode"] == -1
    assert errcode.body["errmsg"].startswith("system error rid: ")
    status = fault_outcome(state, "api_component_token", raw, FaultRule(api="*", http_status=503))
    assert status is not None and (status.http_status, status.body) == (503, None)
    drop = fault_outcome(state, "api_component_token", b"", FaultRule(api="*", drop=True))
    assert drop is not None and drop.drop
    assert fault_outcome(state, "api_component_token", raw, FaultRule(api="*", delay=1)) is None
    assert [(c["appid"], c["errcode"], c["http_status"], c["fault"]) for c in state.calls()] == [
        (APPID, -1, 200, True),
        (APPID, None, 503, True),
        (None, None, None, True),
    ]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"api": "", "errcode": -1}, "api"),
        ({"api": "*"}, "effect"),
        ({"api": "*", "errcode": 0}, "errcode"),
        ({"api": "*", "http_status": 99}, "http_status"),
        ({"api": "*", "http_status": 600}, "http_status"),
        ({"api": "*", "delay": -1}, "delay"),
        ({"api": "*", "delay": 1, "times": 0}, "times"),
        ({"api": "*", "drop": True, "errcode": -1}, "drop"),
        ({"api": "*", "errcode": -1, "http_status": 500}, "errcode"),
        ({"api": "*", "delay_after": -1}, "delay_after"),
        ({"api": "*", "delay_after": 301}, "delay_after"),
        ({"api": "*", "delay_after": float("nan")}, "delay_after"),
        ({"api": "*", "delay_after": 1, "errcode": -1}, "delay_after"),
        ({"api": "*", "delay_after": 1, "http_status": 503}, "delay_after"),
    ],
)
def test_fault_rules_are_validated(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidField) as info:
        FaultRule(**fields)
    assert info.value.field == field


def test_delay_after_alone_and_with_drop_are_valid_rules() -> None:
    late = FaultRule(api="*", delay_after=0.5)
    assert late.to_dict()["delay_after"] == 0.5 and not late.drops_unprocessed
    assert not FaultRule(api="*", delay_after=0.5, drop=True).drops_unprocessed
    assert FaultRule(api="*", drop=True).drops_unprocessed


# ----- reset -----------------------------------------------------------------------------


def test_reset_starts_over(state: MockWeChat) -> None:
    token = new_token(state)
    target = state.push_target(APPID)
    state.record_push(target, "component_verify_ticket", 200, True, None)
    state.set_faults([FaultRule(api="*", errcode=-1)])
    call_api(state, "api_component_token", b"{}", {})
    state.clock.advance(1000)

    state.reset()

    assert state.list_components() == []
    assert state.calls() == [] and state.pushes() == [] and state.list_faults() == []
    assert state.now() == T0
    assert state.latest_ticket(APPID) is None
    # a push that started before the reset is not logged after it
    state.record_push(target, "component_verify_ticket", 200, True, None)
    assert state.pushes() == []
    state.register_component(config())
    assert errcode_of(lambda: preauth(state, token)) == 40001


# ----- a property over the token rules ---------------------------------------------------


@given(
    reissue_after=st.one_of(st.none(), st.integers(min_value=0, max_value=8000)),
    check_at=st.integers(min_value=0, max_value=9000),
)
def test_token_accepted_exactly_within_its_rules(reissue_after: int | None, check_at: int) -> None:
    state = MockWeChat(Clock(wall=lambda: T0))
    state.register_component(config(ticket_interval=10**9))
    first = new_token(state)
    expected_ok = check_at < COMPONENT_TOKEN_TTL
    if reissue_after is not None and reissue_after <= check_at:
        state.clock.advance(reissue_after)
        new_token(state)
        expected_ok = expected_ok and check_at - reissue_after <= SUPERSEDED_GRACE
        state.clock.advance(check_at - reissue_after)
    else:
        state.clock.advance(check_at)
    try:
        preauth(state, first)
        ok = True
    except MockApiError as exc:
        assert exc.errcode in (40001, 42001)
        ok = False
    assert ok == expected_ok
