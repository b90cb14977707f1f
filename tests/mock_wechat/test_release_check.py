"""The 全网发布 check: its model parts, then whole runs against small in-test services.

Whole runs use the mock as a real process (5 s tries, as WeChat) and ``Responder``: the
correct one passes every step of every group; each broken one fails the step it breaks,
named. The one slow case runs the app in this process with a 0.3 s try timeout.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import requests

from mock_wechat import errcodes as ec
from mock_wechat.app import create_app
from mock_wechat.config import InvalidField
from mock_wechat.control_inputs import ReleaseCheckInput, parse_release_check
from mock_wechat.errcodes import MockApiError
from mock_wechat.grants import GrantBook
from mock_wechat.message_pusher import MessagePusher
from mock_wechat.models import MockWeChat
from mock_wechat.protocol import RELEASE_ACCOUNTS, RELEASE_GROUP_NUMBERS, AccountKind, sets_of
from mock_wechat.release_check import STEP_NAMES, account_spec, choose_groups
from tests.mock_wechat.helpers import APPID, OTHER, T0, MockClient, config
from tests.mock_wechat.responder import Responder, serving

GROUP_1_OA, GROUP_1_MP = "wx570bc396a51b8ff8", "wxd101a85aa106f53e"


# ----- model parts -----------------------------------------------------------------------------


def test_query_auth_calls_are_counted_per_code_refused_ones_too() -> None:
    book = GrantBook()
    grant, _ = book.grant(APPID, GROUP_1_OA, [1], T0)
    code = book.issue_code(grant, T0).value
    assert book.code_queries(code) == 0
    book.query_auth(APPID, code, T0)
    for component in (APPID, OTHER):  # used (61010), then another component's (61009)
        with pytest.raises(MockApiError):
            book.query_auth(component, code, T0)
    assert book.code_queries(code) == 3
    assert book.code_queries("queryauthcode@@@unknown") == 0
    with pytest.raises(MockApiError) as info:
        book.query_auth(APPID, "queryauthcode@@@unknown", T0)
    assert info.value.errcode == ec.CODE_INVALID


def test_pre_authorize_makes_the_test_account_and_grants_every_set() -> None:
    state = MockWeChat()
    state.register_component(config(auto_push=False, auth_push="hold"))
    oa, mp = (account_spec(a) for a in RELEASE_ACCOUNTS[:2])
    first = state.authorizations.pre_authorize(APPID, oa)
    account = state.accounts.get(GROUP_1_OA)
    assert (account.user_name, account.type, account.admin) == (
        "gh_3c884a361561",
        AccountKind.OFFICIAL_ACCOUNT,
        "wechat-release-tester",
    )
    assert account.nick_name == "全网发布测试公众号1"
    assert first.auth_code.startswith("queryauthcode@@@") and first.info_type == "authorized"
    assert not first.notice.held and state.held_pushes() == []  # never held
    assert f"<AuthorizationCode><![CDATA[{first.auth_code}]]>" in first.notice.push.message
    again = state.authorizations.pre_authorize(APPID, oa)  # a live grant is granted again
    assert again.auth_code != first.auth_code and len(state.accounts.all()) == 1
    state.authorizations.pre_authorize(APPID, mp)
    view = state.authorizations.account_view(GROUP_1_MP)
    every = [s.id for s in sets_of(AccountKind.MINI_PROGRAM)]
    assert view["user_name"] == "gh_8dad206e9538"
    assert view["authorizations"][0]["func_info"] == every


def test_groups_are_all_one_or_picked_at_random() -> None:
    offered: list[Sequence[int]] = []

    def pick(groups: Sequence[int]) -> int:
        offered.append(groups)
        return 4

    assert choose_groups(None, True, pick) == [1, 2, 3, 4, 5]
    assert choose_groups(2, False, pick) == [2] and offered == []
    assert choose_groups(None, False, pick) == [4] and offered == [RELEASE_GROUP_NUMBERS]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"group": 0}, "group"),
        ({"group": 6}, "group"),
        ({"group": "1"}, "group"),
        ({"group": True}, "group"),
        ({"group": 1, "all_groups": True}, "group"),
        ({"all_groups": "yes"}, "all_groups"),
        ({"send_deadline": 0}, "send_deadline"),
        ({"send_deadline": 121}, "send_deadline"),
        ({"send_deadline": "5"}, "send_deadline"),
        ({"groups": [1]}, "groups"),
    ],
)
def test_bad_release_check_input_names_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidField) as info:
        parse_release_check(body)
    assert info.value.field == field


def test_release_check_input_defaults() -> None:
    assert parse_release_check({}) == ReleaseCheckInput(None, False, 10.0)
    assert parse_release_check({"all_groups": True, "send_deadline": 2}).send_deadline == 2.0


# ----- whole runs --------------------------------------------------------------------------------


@pytest.fixture
def responders() -> Iterator[list[Responder]]:
    made: list[Responder] = []
    try:
        yield made
    finally:
        for responder in made:
            responder.close()


def run(
    mock: MockClient, responders: list[Responder], mode: str = "correct", **body: Any
) -> tuple[dict[str, Any], Responder]:
    responder = Responder(mock.base, mode)
    responders.append(responder)
    mock.register(responder.event_url, message_url=responder.message_url)
    report = mock.post(f"/_mock/components/{APPID}/release-check", body)
    return report, responder


def failed(report: dict[str, Any]) -> dict[tuple[str | None, str], str]:
    return {(s["account"], s["step"]): s["reason"] for s in report["steps"] if not s["passed"]}


def test_a_correct_service_passes_every_step_of_every_group(
    mock: MockClient, responders: list[Responder]
) -> None:
    report, responder = run(mock, responders, all_groups=True)
    assert responder.errors == []
    assert report["passed"] is True, failed(report)
    assert report["component_appid"] == APPID and report["groups"] == [1, 2, 3, 4, 5]
    steps = report["steps"]
    assert len(steps) == 1 + 10 * 4
    assert steps[0] == {**steps[0], "group": None, "account": None, "step": "ticket"}
    assert steps[0]["name"] == "组件Ticket正确接收"
    per_account = [(s["group"], s["account"], s["account_type"], s["step"]) for s in steps[1:]]
    assert per_account == [
        (a.group, a.appid, a.kind.value, step)
        for a in RELEASE_ACCOUNTS
        for step in ("authorize", "text", "api_text", "event")
    ]
    assert {s["name"] for s in steps} == set(STEP_NAMES.values())
    assert all(s["reason"] is None and s["seconds"] >= 0 for s in steps)
    # What WeChat would have seen: every account authorized, one custom text each.
    sent = mock.get("/_mock/messages")["messages"]
    assert len(sent) == 10 and not any(m["before_reply"] for m in sent)
    assert all(m["text"]["content"].endswith("_from_api") for m in sent)
    pushes = mock.get("/_mock/pushes")["pushes"]
    assert [p["info_type"] for p in pushes].count("authorized") == 10
    oa = mock.get(f"/_mock/authorizers/{GROUP_1_OA}/messages")["messages"]
    assert [(d["msg_type"], d["event"], d["outcome"]) for d in oa] == [
        ("text", None, "reply"),
        ("text", None, "empty"),
        ("event", "LOCATION", "reply"),
    ]
    assert oa[2]["user_sees"] == "LOCATIONfrom_callback"
    mp = mock.get(f"/_mock/authorizers/{GROUP_1_MP}/messages")["messages"]
    assert mp[2]["event"] == "user_enter_tempsession"


@pytest.mark.parametrize(
    ("mode", "steps", "words"),
    [
        ("plain", {"text", "event"}, "被动回复未加密 (the reply was not encrypted"),
        ("no_callback", {"text"}, "回复内容不正确 (expected TESTCOMPONENT_MSG_TYPE_TEXT_callback"),
        ("send_first", {"api_text"}, "客服消息早于被动回复"),
        ("exchange_twice", {"api_text"}, "授权码被重复使用 (api_query_auth was called 2 times"),
        ("json", {"text", "api_text", "event"}, "应答不是XML (the answer is JSON"),
    ],
)
def test_a_broken_service_fails_the_step_it_breaks(
    mock: MockClient, responders: list[Responder], mode: str, steps: set[str], words: str
) -> None:
    report, _ = run(mock, responders, mode, group=1, send_deadline=2)
    assert report["passed"] is False and report["groups"] == [1]
    failures = failed(report)
    assert set(failures) == {(a, s) for a in (GROUP_1_OA, GROUP_1_MP) for s in steps}
    assert all(words in reason for reason in failures.values()), failures


def test_a_service_without_a_message_url_fails_the_message_steps(mock: MockClient) -> None:
    mock.register("http://127.0.0.1:9/events")
    report = mock.post(f"/_mock/components/{APPID}/release-check", {"group": 3})
    failures = failed(report)
    assert failures[(None, "ticket")].startswith("Ticket 推送未得到 success 应答")
    assert "授权事件推送未得到 success 应答" in failures[("wx8e1097c5bc82cde9", "authorize")]
    reason = failures[("wx8e1097c5bc82cde9", "text")]
    assert reason == "消息无法推送 (message_url: component has no message_url)"
    assert len(failures) == 1 + 2 * 4


def test_a_slow_service_fails_with_no_answer_in_time(responders: list[Responder]) -> None:
    state = MockWeChat()
    app = create_app(state, messages=MessagePusher(state, timeout=0.3))
    with serving(app) as base:
        responder = Responder(base, "slow", slow=0.5)
        responders.append(responder)
        state.register_component(
            config(
                auto_push=False, event_url=responder.event_url, message_url=responder.message_url
            )
        )
        body = {"group": 1, "send_deadline": 2}
        report = requests.post(
            f"{base}/_mock/components/{APPID}/release-check", json=body, timeout=30
        )
    failures = failed(report.json())
    assert set(failures) == {(GROUP_1_OA, "text"), (GROUP_1_MP, "text")}
    reason = failures[(GROUP_1_OA, "text")]
    assert reason.startswith("3 次推送均未在 0.3 秒内得到应答 (no HTTP 200 answer in 0.3 s")


def test_release_check_errors(mock: MockClient) -> None:
    unknown = requests.post(
        f"{mock.base}/_mock/components/wxnope/release-check", json={}, timeout=5
    )
    assert unknown.status_code == 404 and "wxnope" in unknown.json()["error"]
    mock.register("http://127.0.0.1:9/events")
    bad = requests.post(
        f"{mock.base}/_mock/components/{APPID}/release-check", json={"group": 9}, timeout=5
    )
    assert bad.status_code == 400 and bad.json()["error"].startswith("group: must be one of")
    assert mock.get("/_mock/accounts")["accounts"] == []  # nothing ran


# ----- the control plane's message endpoint ------------------------------------------------------


def post_message(mock: MockClient, appid: str, body: Any) -> requests.Response:
    data = json.dumps(body).encode()
    return requests.post(f"{mock.base}/_mock/authorizers/{appid}/messages", data=data, timeout=30)


def test_message_endpoint_errors(mock: MockClient) -> None:
    mock.register("http://127.0.0.1:9/events", auth_push="hold")
    oa = mock.post(
        "/_mock/accounts",
        {"type": "official_account", "nick_name": "号", "principal_name": "公司", "admin": "a"},
    )["appid"]
    text = {"component_appid": APPID, "msg_type": "text"}
    cases: list[tuple[str, Any, int, str]] = [
        (oa, {"msg_type": "text"}, 400, "component_appid: "),
        (oa, b"nope", 400, "body: "),
        ("wx0000000000000000", text, 404, "unknown account: wx0000000000000000"),
        (oa, {**text, "component_appid": OTHER}, 404, f"unknown component: {OTHER}"),
        (oa, text, 409, f"authorization: account {oa} has not authorized {APPID}"),
    ]
    for appid, body, status, error in cases:
        response = post_message(mock, appid, body if isinstance(body, dict) else body.decode())
        assert (response.status_code, response.json()["error"][: len(error)]) == (status, error)
    mock.post(f"/_mock/components/{APPID}/authorizers/seed", {"count": 1})
    seeded = mock.get("/_mock/accounts")["accounts"][-1]["appid"]
    no_url = post_message(mock, seeded, text)
    assert no_url.status_code == 409
    assert no_url.json() == {"error": "message_url: component has no message_url"}
    patched = requests.patch(
        f"{mock.base}/_mock/components/{APPID}",
        json={"message_url": "http://127.0.0.1:9/no-placeholder"},
        timeout=5,
    )
    assert patched.status_code == 400 and "$APPID$" in patched.json()["error"]
    bad_rule = requests.post(
        f"{mock.base}/_mock/faults",
        json={"rules": [{"api": "message_push", "errcode": -1}]},
        timeout=5,
    )
    assert bad_rule.status_code == 400 and bad_rule.json()["error"].startswith("rules[0].errcode")
    unknown = requests.get(f"{mock.base}/_mock/authorizers/wx0000000000000000/messages", timeout=5)
    assert unknown.status_code == 404


def test_a_first_try_held_past_five_seconds_is_tried_again(
    mock: MockClient, responders: list[Responder]
) -> None:
    """The one real 5 s case: WeChat's own timeout, then the same message again."""
    responder = Responder(mock.base)
    responders.append(responder)
    registered = mock.register(responder.event_url, message_url=responder.message_url)
    assert registered["message_url"] == responder.message_url
    mock.post(f"/_mock/components/{APPID}/authorizers/seed", {"count": 1})
    appid = mock.get("/_mock/accounts")["accounts"][0]["appid"]
    mock.post("/_mock/faults", {"rules": [{"api": "message_push", "delay_after": 6, "times": 1}]})
    body = {"component_appid": APPID, "msg_type": "event", "event": "CLICK", "from_user": "oFan"}
    record = post_message(mock, appid, body).json()
    first, second = record["tries"]
    assert first["error"] == "timed out after 5s (the answer was held 6s)"
    assert 5 <= first["seconds"] < 5.5
    assert (second["http_status"], record["outcome"]) == (200, "reply")
    assert record["user_sees"] == "CLICKfrom_callback" and responder.errors == []
    assert mock.get(f"/_mock/authorizers/{appid}/messages")["messages"] == [record]
