"""The typed client against an injected transport: requests, errors, retries, no leaks."""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.models import PreparedRequest, Response

from service.wechat import errors
from service.wechat.client import ComponentClient

SECRET = "s3cr3t-app-secret"
TICKET = "ticket@@@very-secret-ticket"

Answer = dict[str, Any] | Callable[[PreparedRequest], Response] | Exception


class ScriptedTransport(BaseAdapter):
    """Answers each request with the next scripted answer and records what was sent."""

    def __init__(self, answers: list[Answer]) -> None:
        super().__init__()
        self.answers = answers
        self.sent: list[PreparedRequest] = []

    def send(self, request: PreparedRequest, **kwargs: Any) -> Response:  # type: ignore[override]
        self.sent.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return json_response(answer)

    def close(self) -> None:
        pass


def json_response(body: Any, status: int = 200) -> Response:
    response = Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers["Content-Type"] = "application/json; encoding=utf-8"
    return response


def client_with(answers: list[Answer]) -> tuple[ComponentClient, ScriptedTransport, list[float]]:
    transport = ScriptedTransport(answers)
    session = requests.Session()
    session.mount("https://", transport)
    sleeps: list[float] = []
    return ComponentClient(session=session, sleep=sleeps.append), transport, sleeps


def test_component_token_request_and_typed_answer() -> None:
    client, transport, _ = client_with(
        [{"component_access_token": "61W3mEpU66027wgNZ_x", "expires_in": 7200}]
    )
    token = client.api_component_token("wxc", SECRET, TICKET)
    assert (token.token, token.expires_in) == ("61W3mEpU66027wgNZ_x", 7200)
    (sent,) = transport.sent
    assert sent.method == "POST"
    assert sent.url == "https://api.weixin.qq.com/cgi-bin/component/api_component_token"
    assert json.loads(sent.body or b"") == {
        "component_appid": "wxc",
        "component_appsecret": SECRET,
        "component_verify_ticket": TICKET,
    }
    assert "61W3mEpU" not in repr(token)


def test_start_push_ticket_uses_component_secret_key() -> None:
    client, transport, _ = client_with([{"errcode": 0, "errmsg": "in a normal state"}])
    assert client.api_start_push_ticket("wxc", SECRET) == "in a normal state"
    body = json.loads(transport.sent[0].body or b"")
    assert body == {"component_appid": "wxc", "component_secret": SECRET}
    assert transport.sent[0].url is not None
    assert transport.sent[0].url.endswith("/cgi-bin/component/api_start_push_ticket")


@pytest.mark.parametrize(
    ("errcode", "kind"),
    [
        (40001, errors.InvalidCredentialError),
        (42001, errors.AccessTokenExpiredError),
        (40013, errors.InvalidAppIdError),
        (40125, errors.InvalidAppSecretError),
        (61004, errors.IpNotWhitelistedError),
        (61005, errors.TicketExpiredError),
        (61006, errors.TicketInvalidError),
        (61023, errors.RefreshTokenInvalidError),
        (45009, errors.QuotaExceededError),
        (48001, errors.WeChatError),
    ],
)
def test_errcode_becomes_typed_exception(errcode: int, kind: type[errors.WeChatError]) -> None:
    errmsg = f"some message rid: 64f69b23-60f73830-{errcode:08x}"
    client, _, _ = client_with([{"errcode": errcode, "errmsg": errmsg}])
    with pytest.raises(kind) as caught:
        client.api_component_token("wxc", SECRET, TICKET)
    assert type(caught.value) is kind
    assert (caught.value.errcode, caught.value.errmsg) == (errcode, errmsg)
    text = "".join(traceback.format_exception(caught.value))
    assert SECRET not in text and TICKET not in text


def test_system_busy_is_retried_with_backoff() -> None:
    client, transport, sleeps = client_with(
        [
            {"errcode": -1, "errmsg": "system error"},
            {"errcode": -1, "errmsg": "system error"},
            {"component_access_token": "tok", "expires_in": 7200},
        ]
    )
    assert client.api_component_token("wxc", SECRET, TICKET).token == "tok"
    assert len(transport.sent) == 3
    assert sleeps == [0.5, 1.0]


def test_system_busy_gives_up_after_the_retries() -> None:
    client, transport, _ = client_with([{"errcode": -1, "errmsg": "system error"}] * 3)
    with pytest.raises(errors.SystemBusyError) as caught:
        client.api_component_token("wxc", SECRET, TICKET)
    assert caught.value.transient and len(transport.sent) == 3


def test_transport_failure_hides_the_url_and_its_cause() -> None:
    leaky = requests.ConnectionError(
        "HTTPSConnectionPool: Max retries exceeded with url: /x?component_access_token=LEAK"
    )
    client, _, _ = client_with([leaky])
    with pytest.raises(errors.TransportError) as caught:
        client.api_start_push_ticket("wxc", SECRET)
    text = "".join(traceback.format_exception(caught.value))
    assert "LEAK" not in text and SECRET not in text
    assert "ConnectionError" in str(caught.value) and caught.value.transient


@pytest.mark.parametrize(
    "answer",
    [
        lambda request: json_response({"errcode": 0}, status=502),
        lambda request: _raw_response(b"<html>busy</html>"),
        lambda request: _raw_response(b"[1, 2]"),
        lambda request: json_response({"expires_in": 7200}),
    ],
    ids=["http-502", "not-json", "not-object", "missing-field"],
)
def test_unusable_answers_are_transport_errors(answer: Answer) -> None:
    client, _, _ = client_with([answer])
    with pytest.raises(errors.TransportError):
        client.api_component_token("wxc", SECRET, TICKET)


def _raw_response(content: bytes) -> Response:
    response = Response()
    response.status_code = 200
    response._content = content
    return response
