"""``python -m mock_wechat send-message`` and ``release-check`` against a running mock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.processes import free_port
from devstack.stack import MockControl, mock_registration
from mock_wechat.__main__ import main
from service.config import ComponentConfig
from tests.mock_wechat.helpers import AES_KEY, APPID, SECRET, TOKEN, MockClient, Receiver
from tests.mock_wechat.responder import Responder


@pytest.fixture
def responder(mock: MockClient) -> Iterator[Responder]:
    server = Responder(mock.base)
    mock.register(server.event_url, message_url=server.message_url)
    try:
        yield server
    finally:
        server.close()


def seeded(mock: MockClient) -> str:
    mock.post(f"/_mock/components/{APPID}/authorizers/seed", {"count": 1})
    appid: str = mock.get("/_mock/accounts")["accounts"][0]["appid"]
    return appid


def send(mock: MockClient, *args: str) -> int:
    return main(["send-message", "--mock", mock.base, "--component", APPID, *args])


def test_send_message_prints_the_reply_and_what_the_user_sees(
    mock: MockClient, responder: Responder, capsys: pytest.CaptureFixture[str]
) -> None:
    account = seeded(mock)
    args = ["--account", account, "--event", "CLICK", "--event-key", "MENU_1"]
    code = send(mock, *args, "--field", "MenuId=7", "--from", "oFan")
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith(f"event CLICK from oFan to {account} (component {APPID})\n")
    assert "  try 1: HTTP 200 in " in out and "outcome: reply\n" in out
    assert "reply: <xml><ToUserName><![CDATA[oFan]]>" in out
    assert out.endswith("the user sees: CLICKfrom_callback\n")
    [record] = mock.get(f"/_mock/authorizers/{account}/messages")["messages"]
    assert (
        "<EventKey><![CDATA[MENU_1]]></EventKey><MenuId><![CDATA[7]]></MenuId>" in record["message"]
    )
    assert send(mock, "--account", account, "--text", "hello") == 0
    assert capsys.readouterr().out.endswith("outcome: empty\nthe user sees: (nothing)\n")
    assert send(mock, "--account", account, "--type", "image") == 0


def test_send_message_without_a_valid_answer_exits_1(
    mock: MockClient, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.status = 500
    mock.register(receiver.url, message_url=receiver.url + "/$APPID$")
    assert send(mock, "--account", seeded(mock), "--text", "hi") == 1
    out = capsys.readouterr().out
    assert out.count("HTTP 500") >= 3 and "outcome: no_answer: 3 次推送均未在 5 秒内得到应答" in out
    assert "the user sees: 该公众号暂时无法提供服务，请稍后再试" in out


def test_send_message_bad_usage_or_no_mock_exits_2(
    mock: MockClient, responder: Responder, capsys: pytest.CaptureFixture[str]
) -> None:
    assert send(mock, "--account", "wx0000000000000000", "--text", "hi") == 2
    assert "HTTP 404): unknown account: wx0000000000000000" in capsys.readouterr().err
    account = seeded(mock)
    assert send(mock, "--account", account, "--text", "x", "--event-key", "K") == 2
    assert "--event-key goes with --event" in capsys.readouterr().err
    assert send(mock, "--account", account, "--type", "text", "--field", "NoEquals") == 2
    nowhere = f"http://127.0.0.1:{free_port()}"
    args = ["send-message", "--mock", nowhere, "--component", APPID, "--account", account]
    assert main([*args, "--text", "hi"]) == 2
    assert f"cannot reach mock WeChat at {nowhere}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(args)  # none of --text, --event, --type
    assert usage.value.code == 2


def test_release_check_prints_each_step_and_exits_by_the_result(
    mock: MockClient, responder: Responder, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["release-check", "--mock", mock.base, "--component", APPID, "--group", "2"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 8 + 1 and all(line.startswith("✔ group ") for line in lines[:-1])
    assert lines[0].startswith("✔ group - -") and "组件Ticket正确接收 (ticket)" in lines[0]
    assert lines[1].startswith("✔ group 2 wx9252c5e0bb1836fc ") and lines[1].endswith(
        "授权 (authorize)"
    )
    assert lines[-1] == "全网发布检测通过 (passed): 9/9 steps passed, groups 2"
    responder.mode = "no_callback"
    assert main([*args, "--send-deadline", "2"]) == 1
    out = capsys.readouterr().out
    assert "✘ group 2 wx9252c5e0bb1836fc 返回普通文本消息 (text): 回复内容不正确" in out
    assert out.splitlines()[-1].startswith("全网发布检测未通过 (failed): 7/9 steps passed")
    nowhere = f"http://127.0.0.1:{free_port()}"
    assert main(["release-check", "--mock", nowhere, "--component", APPID]) == 2
    assert main(["release-check", "--mock", mock.base, "--component", "wxnope"]) == 2
    assert "unknown component: wxnope" in capsys.readouterr().err


def test_mock_control_sends_messages_and_runs_the_check(mock: MockClient) -> None:
    component = ComponentConfig(appid=APPID, secret=SECRET, token=TOKEN, encoding_aes_key=AES_KEY)
    responder = Responder(mock.base)
    control = MockControl(mock.base)
    try:
        registration = mock_registration(
            component, responder.event_url, "127.0.0.1", message_url=responder.message_url
        )
        assert "message_url" not in mock_registration(component, responder.event_url, "h")
        control.register_component({**registration, "auto_push": False})
        [seeded] = control.seed_authorizers(APPID, 1)
        account = seeded["authorizer_appid"]
        record = control.send_message(
            account, APPID, "event", event="VIEW", from_user="oFan", fields={"MenuId": 3}
        )
        assert (record["outcome"], record["user_sees"]) == ("reply", "VIEWfrom_callback")
        assert "<MenuId>3</MenuId>" in record["message"]
        assert control.account_messages(account) == [record]
        report = control.release_check(APPID, group=5, send_deadline=2)
        assert (report["groups"], report["passed"]) == ([5], True)
    finally:
        responder.close()
