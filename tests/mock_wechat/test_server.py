"""The mock as a real process: pushes over HTTP, API routes, faults, clock and control plane."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.processes import ManagedProcess
from devstack.stack import REPO
from service.wechat.crypto import MessageCrypto
from service.wechat.messages import ComponentVerifyTicket, parse_envelope, parse_message
from tests.mock_wechat.helpers import (
    AES_KEY,
    APPID,
    SECRET,
    TOKEN,
    MockClient,
    ReceivedPush,
    Receiver,
    start_mock,
    wait_until,
)

RID = r" rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$"


def open_push(push: ReceivedPush) -> ComponentVerifyTicket:
    """Check a push the way a real receiver must, and return the ticket message in it."""
    q = push.query
    assert q["encrypt_type"] == "aes"
    assert q["nonce"].isdigit()
    crypto = MessageCrypto(TOKEN, AES_KEY, APPID)
    crypto.verify_signature(q["signature"], q["timestamp"], q["nonce"])
    envelope = parse_envelope(push.body)
    assert envelope.app_id == APPID and envelope.to_user_name is None
    decrypted = crypto.verify_and_decrypt(
        q["msg_signature"], q["timestamp"], q["nonce"], envelope.encrypt
    )
    message = parse_message(decrypted.message)
    assert isinstance(message, ComponentVerifyTicket)
    assert message.app_id == APPID and message.info_type == "component_verify_ticket"
    return message


def token_request(ticket: str) -> dict[str, str]:
    return {
        "component_appid": APPID,
        "component_appsecret": SECRET,
        "component_verify_ticket": ticket,
    }


# ----- pushes ----------------------------------------------------------------------------


def test_push_is_signed_encrypted_and_carries_a_usable_ticket(
    mock: MockClient, receiver: Receiver
) -> None:
    mock.register(receiver.url)
    result = mock.post(f"/_mock/components/{APPID}/push-ticket")
    assert (result["delivered"], result["http_status"], result["error"]) == (True, 200, None)

    [push] = receiver.wait_for(1)
    assert push.headers["Content-Type"] == "text/xml"
    assert abs(int(push.query["timestamp"]) - time.time()) < 5
    message = open_push(push)
    assert message.ticket == result["ticket"]
    assert message.ticket.startswith("ticket@@@") and len(message.ticket) >= 70
    assert message.create_time == result["create_time"]

    answer = mock.api("api_component_token", token_request(message.ticket)).json()
    assert answer["expires_in"] == 7200 and "component_access_token" in answer

    [logged] = mock.get("/_mock/pushes")["pushes"]
    assert logged["appid"] == APPID and logged["info_type"] == "component_verify_ticket"
    assert (logged["url"], logged["http_status"], logged["delivered"]) == (receiver.url, 200, True)


def test_query_timestamp_is_real_time_and_create_time_mock_time(
    mock: MockClient, receiver: Receiver
) -> None:
    mock.register(receiver.url)
    mock.post("/_mock/clock", {"advance": 86_400})
    mock.post(f"/_mock/components/{APPID}/push-ticket")
    [push] = receiver.wait_for(1)
    assert abs(int(push.query["timestamp"]) - time.time()) < 5
    assert open_push(push).create_time >= time.time() + 86_400 - 5


@pytest.mark.parametrize(
    ("status", "reply"), [(200, b"ok"), (200, b"success\n"), (500, b"success")]
)
def test_reply_other_than_success_is_not_delivered(
    mock: MockClient, receiver: Receiver, status: int, reply: bytes
) -> None:
    receiver.status, receiver.reply = status, reply
    mock.register(receiver.url)
    result = mock.post(f"/_mock/components/{APPID}/push-ticket")
    assert result["delivered"] is False and result["http_status"] == status and result["error"]
    [logged] = mock.get("/_mock/pushes")["pushes"]
    assert logged["delivered"] is False and logged["error"]


def test_push_retries_make_more_attempts(mock: MockClient, receiver: Receiver) -> None:
    receiver.reply = b"nope"
    mock.register(receiver.url, push_retries=2)
    assert mock.post(f"/_mock/components/{APPID}/push-ticket")["delivered"] is False
    assert len(receiver.pushes()) == 3
    assert [p["delivered"] for p in mock.get("/_mock/pushes")["pushes"]] == [False] * 3


def test_unreachable_receiver_is_logged(mock: MockClient, receiver: Receiver) -> None:
    url = receiver.url
    receiver.close()
    mock.register(url)
    result = mock.post(f"/_mock/components/{APPID}/push-ticket")
    assert result["delivered"] is False and result["http_status"] is None
    assert "ConnectionError" in result["error"]


def test_automatic_pushes_follow_the_interval(mock: MockClient, receiver: Receiver) -> None:
    registered = time.time()
    mock.register(receiver.url, auto_push=True, ticket_interval=0.3)
    pushes = receiver.wait_for(3, timeout=5)
    assert pushes[0].received_at - registered >= 0.25  # first push one interval in, not at once
    tickets = {open_push(p).ticket for p in pushes}
    assert len(tickets) == len(pushes)


def test_clock_jump_pushes_once(mock: MockClient, receiver: Receiver) -> None:
    mock.register(receiver.url, auto_push=True, ticket_interval=600)
    time.sleep(0.2)
    assert receiver.pushes() == []
    mock.post("/_mock/clock", {"advance": 3_600})
    receiver.wait_for(1, timeout=2)
    time.sleep(0.4)
    assert len(receiver.pushes()) == 1


def test_start_push_ticket_pushes_within_a_second(mock: MockClient, receiver: Receiver) -> None:
    mock.register(receiver.url, auto_push=False)
    body = {"component_appid": APPID, "component_secret": SECRET}
    start = time.monotonic()
    assert mock.api("api_start_push_ticket", body).json() == {"errcode": 0, "errmsg": "ok"}
    receiver.wait_for(1, timeout=1)
    assert time.monotonic() - start < 1
    assert mock.get("/_mock/components")["components"][0]["auto_push"] is True

    answer = mock.api("api_start_push_ticket", body).json()
    assert answer == {"errcode": 0, "errmsg": "in a normal state"}
    receiver.wait_for(2, timeout=1)


def test_start_push_ticket_refuses_a_wrong_secret(mock: MockClient, receiver: Receiver) -> None:
    mock.register(receiver.url)
    answer = mock.api("api_start_push_ticket", {"component_appid": APPID, "component_secret": "x"})
    assert answer.json()["errcode"] == 40125


# ----- API request handling --------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/x-www-form-urlencoded"])
def test_json_body_read_whatever_the_content_type(
    mock: MockClient, receiver: Receiver, content_type: str | None
) -> None:
    mock.register(receiver.url)
    raw = json.dumps(token_request(mock.ticket())).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    response = mock.api("api_component_token", raw, headers=headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert "component_access_token" in response.json()


def test_bad_json_is_47001(mock: MockClient, receiver: Receiver) -> None:
    mock.register(receiver.url)
    response = mock.api("api_component_token", b"{oops")
    assert response.status_code == 200
    answer = response.json()
    assert answer["errcode"] == 47001
    assert answer["errmsg"].startswith("data format error rid: ")


@pytest.mark.parametrize("name", ["component_access_token", "access_token"])
def test_token_accepted_under_both_query_names(
    mock: MockClient, receiver: Receiver, name: str
) -> None:
    mock.register(receiver.url)
    token = mock.component_token()
    answer = mock.api("api_create_preauthcode", {"component_appid": APPID}, {name: token}).json()
    assert answer["expires_in"] == 1800
    assert answer["pre_auth_code"].startswith("preauthcode@@@")


def test_token_only_in_body_is_missing(mock: MockClient, receiver: Receiver) -> None:
    mock.register(receiver.url)
    body = {"component_appid": APPID, "component_access_token": mock.component_token()}
    assert mock.api("api_create_preauthcode", body).json()["errcode"] == 41001


def test_clock_advance_expires_the_token(mock: MockClient, receiver: Receiver) -> None:
    mock.register(receiver.url)
    token = mock.component_token()
    before = mock.get("/_mock/clock")["now"]
    after = mock.post("/_mock/clock", {"advance": 7_200})["now"]
    assert after - before >= 7_200
    query = {"component_access_token": token}
    answer = mock.api("api_create_preauthcode", {"component_appid": APPID}, query).json()
    assert answer["errcode"] == 42001


def test_call_log_filters_by_api(mock: MockClient, receiver: Receiver) -> None:
    mock.register(receiver.url)
    token = mock.component_token()
    mock.api("api_create_preauthcode", {"component_appid": APPID}, {"access_token": token})
    calls = mock.get("/_mock/calls")["calls"]
    assert [c["api"] for c in calls] == ["api_component_token", "api_create_preauthcode"]
    [only] = mock.get("/_mock/calls?api=api_create_preauthcode")["calls"]
    assert (only["appid"], only["errcode"], only["http_status"], only["fault"]) == (
        APPID,
        0,
        200,
        False,
    )


# ----- faults ----------------------------------------------------------------------------


def test_errcode_fault_once_then_normal(mock: MockClient, receiver: Receiver) -> None:
    mock.register(receiver.url)
    ticket = mock.ticket()
    mock.post(
        "/_mock/faults", {"rules": [{"api": "api_component_token", "errcode": -1, "times": 1}]}
    )
    first = mock.api("api_component_token", token_request(ticket))
    assert first.status_code == 200
    assert first.json()["errcode"] == -1
    assert first.json()["errmsg"].startswith("system error rid: ")
    assert "component_access_token" in mock.api("api_component_token", token_request(ticket)).json()
    assert [c["fault"] for c in mock.get("/_mock/calls")["calls"]] == [True, False]
    assert mock.get("/_mock/faults")["rules"][0]["times"] == 0


def test_http_status_fault(mock: MockClient, receiver: Receiver) -> None:
    mock.register(receiver.url)
    mock.post("/_mock/faults", {"rules": [{"api": "*", "http_status": 503}]})
    response = mock.api("api_create_preauthcode", {"component_appid": APPID})
    assert response.status_code == 503
    [call] = mock.get("/_mock/calls")["calls"]
    assert (call["http_status"], call["errcode"], call["fault"]) == (503, None, True)


def test_drop_fault_gives_a_connection_error(mock: MockClient, receiver: Receiver) -> None:
    mock.register(receiver.url)
    mock.post(
        "/_mock/faults", {"rules": [{"api": "api_component_token", "drop": True, "times": 1}]}
    )
    with pytest.raises(requests.ConnectionError):
        mock.api("api_component_token", token_request("ticket@@@x"))
    assert mock.api("api_component_token", token_request("x")).json()["errcode"] == 61006
    [dropped, normal] = mock.get("/_mock/calls")["calls"]
    assert (dropped["http_status"], dropped["fault"]) == (None, True)
    assert normal["fault"] is False


def test_delay_fault_delays_then_answers_normally(mock: MockClient, receiver: Receiver) -> None:
    mock.register(receiver.url)
    ticket = mock.ticket()
    mock.post("/_mock/faults", {"rules": [{"api": "*", "delay": 0.5, "times": 1}]})
    start = time.monotonic()
    answer = mock.api("api_component_token", token_request(ticket)).json()
    assert time.monotonic() - start >= 0.5
    assert "component_access_token" in answer
    start = time.monotonic()
    mock.api("api_component_token", token_request(ticket))
    assert time.monotonic() - start < 0.5


def test_delete_faults_clears_them(mock: MockClient, receiver: Receiver) -> None:
    mock.register(receiver.url)
    mock.post("/_mock/faults", {"rules": [{"api": "*", "errcode": 45009}]})
    assert requests.delete(mock.base + "/_mock/faults", timeout=5).json() == {"rules": []}
    assert mock.api("api_component_token", token_request("x")).json()["errcode"] == 61006


# ----- control plane ---------------------------------------------------------------------


def test_reset_starts_over(mock: MockClient, receiver: Receiver) -> None:
    mock.register(receiver.url)
    token = mock.component_token()
    mock.post("/_mock/faults", {"rules": [{"api": "*", "delay": 0.01}]})
    mock.post("/_mock/clock", {"advance": 999})

    mock.post("/_mock/reset")

    assert mock.get("/_mock/components") == {"components": []}
    assert mock.get("/_mock/calls") == {"calls": []}
    assert mock.get("/_mock/pushes") == {"pushes": []}
    assert mock.get("/_mock/faults") == {"rules": []}
    assert abs(mock.get("/_mock/clock")["now"] - time.time()) < 5
    mock.register(receiver.url)
    answer = mock.api("api_create_preauthcode", {"component_appid": APPID}, {"access_token": token})
    assert answer.json()["errcode"] == 40001


def test_components_never_show_secrets(mock: MockClient, receiver: Receiver) -> None:
    created = mock.register(receiver.url)
    listed = requests.get(mock.base + "/_mock/components", timeout=5).text
    for text in (json.dumps(created), listed):
        for secret in (SECRET, TOKEN, AES_KEY):
            assert secret not in text


def test_patch_component(mock: MockClient, receiver: Receiver) -> None:
    mock.register(receiver.url)
    response = requests.patch(
        f"{mock.base}/_mock/components/{APPID}",
        json={"auto_push": True, "ticket_interval": 0.2, "push_retries": 1},
        timeout=5,
    )
    assert response.status_code == 200
    assert response.json()["push_retries"] == 1
    receiver.wait_for(1, timeout=3)


VALID = {
    "appid": APPID,
    "secret": SECRET,
    "token": TOKEN,
    "encoding_aes_key": AES_KEY,
    "event_url": "http://127.0.0.1:9/e",
    "auth_domain": "provider.example.com",
}


@pytest.mark.parametrize(
    ("method", "path", "body", "reason"),
    [
        ("POST", "/_mock/components", b"not json", "body"),
        ("POST", "/_mock/components", b"[]", "body"),
        ("POST", "/_mock/components", {**VALID, "appid": ""}, "appid"),
        ("POST", "/_mock/components", {**VALID, "appid": 5}, "appid"),
        ("POST", "/_mock/components", {**VALID, "encoding_aes_key": "x" * 42}, "encoding_aes_key"),
        ("POST", "/_mock/components", {**VALID, "event_url": "ftp://h/e"}, "event_url"),
        ("POST", "/_mock/components", {**VALID, "ticket_interval": 0}, "ticket_interval"),
        ("POST", "/_mock/components", {**VALID, "ticket_interval": "1"}, "ticket_interval"),
        ("POST", "/_mock/components", {**VALID, "auto_push": "yes"}, "auto_push"),
        ("POST", "/_mock/components", {**VALID, "push_retries": 1.5}, "push_retries"),
        ("POST", "/_mock/components", {**VALID, "colour": "red"}, "colour"),
        ("PATCH", f"/_mock/components/{APPID}", {"secret": "new"}, "secret"),
        ("PATCH", f"/_mock/components/{APPID}", {}, "body"),
        ("PATCH", f"/_mock/components/{APPID}", {"ticket_interval": -1}, "ticket_interval"),
        ("POST", "/_mock/faults", {}, "rules"),
        ("POST", "/_mock/faults", {"rules": [{"api": "nope", "errcode": -1}]}, "rules[0].api"),
        ("POST", "/_mock/faults", {"rules": [{"api": "*"}]}, "rules[0].effect"),
        ("POST", "/_mock/faults", {"rules": [{"api": "*", "delay": "1"}]}, "rules[0].delay"),
        (
            "POST",
            "/_mock/faults",
            {"rules": [{"api": "*", "delay_after": 1, "errcode": -1}]},
            "rules[0].delay_after",
        ),
        (
            "POST",
            "/_mock/faults",
            {"rules": [{"api": "*", "delay": 1}, {"api": "*", "drop": True, "errcode": 1}]},
            "rules[1].drop",
        ),
        (
            "POST",
            "/_mock/faults",
            {"rules": [{"api": "*", "times": 0, "drop": True}]},
            "rules[0].times",
        ),
        ("POST", "/_mock/clock", {"advance": -5}, "advance"),
        ("POST", "/_mock/clock", {}, "advance"),
        ("POST", "/_mock/clock", {"advance": True}, "advance"),
    ],
)
def test_bad_control_input_is_400_with_a_reason(
    mock: MockClient, method: str, path: str, body: Any, reason: str
) -> None:
    mock.register("http://127.0.0.1:9/e")
    mock.post("/_mock/faults", {"rules": [{"api": "*", "delay": 0.01}]})
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = requests.request(method, mock.base + path, data=data, timeout=5)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith(reason), error
    # bad input changes nothing
    assert len(mock.get("/_mock/faults")["rules"]) == 1
    assert mock.get("/_mock/components")["components"][0]["ticket_interval"] == 600


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/_mock/components/wxnope", {"auto_push": True}),
        ("POST", "/_mock/components/wxnope/push-ticket", None),
        ("GET", "/_mock/components/wxnope", None),
    ],
)
def test_unknown_component_is_404(mock: MockClient, method: str, path: str, body: Any) -> None:
    response = requests.request(method, mock.base + path, json=body, timeout=5)
    assert response.status_code == 404
    assert "wxnope" in response.json()["error"]


# ----- the process -----------------------------------------------------------------------


def test_logs_are_json_lines_without_secrets(
    mock: MockClient, receiver: Receiver, mock_process: tuple[ManagedProcess, str]
) -> None:
    mock.register(receiver.url)
    ticket = mock.ticket()
    token = mock.component_token()
    query = {"component_access_token": token}
    code = mock.api("api_create_preauthcode", {"component_appid": APPID}, query).json()
    mock.post("/_mock/faults", {"rules": [{"api": "*", "errcode": 400}]})
    mock.api("api_create_preauthcode", {"component_appid": APPID}, query)
    assert wait_until(lambda: "api_create_preauthcode" in mock_process[0].log_text())

    text = mock_process[0].log_text()
    for secret in (SECRET, TOKEN, AES_KEY, ticket, token, code["pre_auth_code"]):
        assert secret not in text
    lines = [line for line in text.splitlines() if line.strip()]
    # stdout and stderr share the file: one plain line on stdout, JSON lines on stderr
    plain = [line for line in lines if not line.startswith("{")]
    assert len(plain) == 1 and plain[0].startswith("mock_wechat listening on http://127.0.0.1:")
    entries = [json.loads(line) for line in lines if line is not plain[0]]
    assert all({"severity", "message"} <= set(entry) for entry in entries)
    assert any(e["message"] == "api call" and e.get("errcode") == 400 for e in entries)
    requests_logged = [e for e in entries if e["message"] == "request"]
    assert {"method": "POST", "path": "/cgi-bin/component/api_create_preauthcode"}.items() <= (
        requests_logged[-1].items()
    )
    assert {e["status"] for e in requests_logged} >= {"200"}


def test_connections_are_kept_alive_as_wechat_keeps_them(mock: MockClient) -> None:
    """Two calls on one connection: the server neither closes it nor asks the client to."""
    host, port = mock.base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        for _ in range(2):
            connection.request("GET", "/_mock/healthz")
            response = connection.getresponse()
            assert json.loads(response.read()) == {"status": "ok"}
            assert response.getheader("Connection", "").lower() != "close"
            assert not response.will_close
        assert connection.sock is not None  # still the first connection
    finally:
        connection.close()


def test_sigterm_stops_the_server_cleanly(tmp_path: Path) -> None:
    process, base = start_mock(tmp_path / "mock.log")
    try:
        assert requests.get(base + "/_mock/healthz", timeout=5).json() == {"status": "ok"}
    finally:
        process.stop()
    assert process.process.returncode == 0
    assert '"message": "stopped"' in process.log_text()


def test_help_explains_the_command() -> None:
    argv = [sys.executable, "-m", "mock_wechat", "serve", "--help"]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "--port" in result.stdout and "--host" in result.stdout
