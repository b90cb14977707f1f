"""The typed client against an injected transport: requests, errors, retries, no leaks."""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from urllib3 import HTTPResponse, ProxyManager
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from service.wechat import errors
from service.wechat.client import ComponentClient, build_http, without_environment_lookups

SECRET = "s3cr3t-app-secret"
TICKET = "ticket@@@very-secret-ticket"


@dataclass(frozen=True)
class Sent:
    method: str
    url: str
    body: bytes | None
    headers: dict[str, str]


Answer = dict[str, Any] | Callable[[Sent], HTTPResponse] | Exception


class ScriptedTransport:
    """Answers each request with the next scripted answer and records what was sent."""

    def __init__(self, answers: list[Answer]) -> None:
        self.answers = answers
        self.sent: list[Sent] = []

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> HTTPResponse:
        sent = Sent(method, url, body, dict(headers or {}))
        self.sent.append(sent)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(sent)
        return json_response(answer)


def json_response(body: Any, status: int = 200) -> HTTPResponse:
    return HTTPResponse(
        body=json.dumps(body).encode(),
        status=status,
        headers={"Content-Type": "application/json; encoding=utf-8"},
        preload_content=True,
    )


def client_with(answers: list[Answer]) -> tuple[ComponentClient, ScriptedTransport, list[float]]:
    transport = ScriptedTransport(answers)
    sleeps: list[float] = []
    return ComponentClient(http=transport, sleep=sleeps.append), transport, sleeps


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
    leaky = MaxRetryError(
        None,  # type: ignore[arg-type]
        "/x?component_access_token=LEAK",
        ProtocolError("Connection aborted: /x?component_access_token=LEAK"),
    )
    client, _, _ = client_with([leaky])
    with pytest.raises(errors.TransportError) as caught:
        client.api_start_push_ticket("wxc", SECRET)
    text = "".join(traceback.format_exception(caught.value))
    assert "LEAK" not in text and SECRET not in text
    assert "ProtocolError" in str(caught.value) and caught.value.transient
    assert caught.value.reached


def test_a_connection_never_made_is_reported_not_sent() -> None:
    refused = NewConnectionError(None, "Failed to establish a new connection")  # type: ignore[arg-type]
    client, _, _ = client_with([MaxRetryError(None, "/x", refused)])  # type: ignore[arg-type]
    with pytest.raises(errors.TransportError) as caught:
        client.api_query_auth("wxc", "queryauthcode@@@x", "token")
    assert not caught.value.reached
    assert "not sent" in str(caught.value)


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


def _raw_response(content: bytes) -> HTTPResponse:
    return HTTPResponse(body=content, status=200, preload_content=True)


COMPONENT_TOKEN = "49_component-token-value"
REFRESH = "refreshtoken@@@secret-refresh"


def test_create_preauthcode_puts_the_token_in_the_query() -> None:
    client, transport, _ = client_with([{"pre_auth_code": "preauthcode@@@x", "expires_in": 1800}])
    code = client.api_create_preauthcode("wx0123456789abcdef", COMPONENT_TOKEN)
    assert (code.code, code.expires_in) == ("preauthcode@@@x", 1800)
    sent = transport.sent[0]
    assert sent.url is not None and f"component_access_token={COMPONENT_TOKEN}" in sent.url
    assert json.loads(sent.body or b"{}") == {"component_appid": "wx0123456789abcdef"}
    assert COMPONENT_TOKEN not in repr(code)


def test_query_auth_reads_tokens_and_func_info() -> None:
    answer = {
        "authorization_info": {
            "authorizer_appid": "wxf8b4f85f3a794e77",
            "authorizer_access_token": "QXjUq-access",
            "expires_in": 7200,
            "authorizer_refresh_token": REFRESH,
            "func_info": [
                {"funcscope_category": {"id": 1}},
                {"funcscope_category": {"id": 18}, "confirm_info": {"need_confirm": 0}},
                {"funcscope_category": {"id": 1}},
                {"bogus": True},
            ],
        }
    }
    client, _, _ = client_with([answer])
    info = client.api_query_auth("wx0123456789abcdef", "queryauthcode@@@c", COMPONENT_TOKEN)
    assert info.authorizer_appid == "wxf8b4f85f3a794e77"
    assert info.func_info == (1, 18)
    assert (info.access_token, info.expires_in, info.refresh_token) == (
        "QXjUq-access",
        7200,
        REFRESH,
    )
    assert REFRESH not in repr(info) and "QXjUq" not in repr(info)


def test_query_auth_without_api_permissions_has_no_tokens() -> None:
    answer = {"authorization_info": {"authorizer_appid": "wxf8b4f85f3a794e77", "func_info": []}}
    client, _, _ = client_with([answer])
    info = client.api_query_auth("wx0123456789abcdef", "queryauthcode@@@c", COMPONENT_TOKEN)
    assert info.access_token is None and info.refresh_token is None and info.func_info == ()


@pytest.mark.parametrize(
    ("errcode", "kind"),
    [
        (61009, errors.AuthorizationCodeInvalidError),
        (61010, errors.AuthorizationCodeExpiredError),
        (61003, errors.NotAuthorizedError),
    ],
)
def test_code_errors_are_typed(errcode: int, kind: type[errors.WeChatError]) -> None:
    client, _, _ = client_with([{"errcode": errcode, "errmsg": "code is invalid rid: 1-2-3"}])
    with pytest.raises(kind):
        client.api_query_auth("wx0123456789abcdef", "queryauthcode@@@c", COMPONENT_TOKEN)


def test_authorizer_info_tells_the_account_type_and_tolerates_old_fields() -> None:
    answer = {
        "authorizer_info": {
            "nick_name": "美妆饰品",
            "principal_name": "个人",
            "user_name": "gh_c43395cb652e",
            "service_type_info": {"id": 0},
            "verify_type_info": {"id": -1},
            "account_status": 1,
            "MiniProgramInfo": {"network": {}, "categories": [], "visit_status": 0},
        },
        # The old format: "appid" instead of "authorizer_appid".
        "authorization_info": {"appid": "wx326eecacf7370d4e", "func_info": []},
    }
    client, _, _ = client_with([answer])
    info = client.api_get_authorizer_info("wx0123456789abcdef", "wx326eecacf7370d4e", "t")
    assert info.account_type.value == "mini_program"
    assert (info.nick_name, info.service_type, info.verify_type) == ("美妆饰品", 0, -1)
    assert info.authorization.authorizer_appid == "wx326eecacf7370d4e"


def test_authorizer_token_keeps_a_missing_refresh_token_as_none() -> None:
    client, transport, _ = client_with(
        [{"authorizer_access_token": "acc", "expires_in": 7200, "authorizer_refresh_token": ""}]
    )
    token = client.api_authorizer_token("wx0123456789abcdef", "wx326eecacf7370d4e", REFRESH, "t")
    assert token.refresh_token is None and token.expires_in == 7200
    assert json.loads(transport.sent[0].body or b"{}")["authorizer_refresh_token"] == REFRESH


def test_the_pool_takes_the_environments_proxy_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert not isinstance(build_http("https://api.weixin.qq.com"), ProxyManager)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    proxied = build_http("https://api.weixin.qq.com")
    assert isinstance(proxied, ProxyManager)
    assert proxied.proxy is not None and proxied.proxy.host == "proxy.internal"
    monkeypatch.setenv("NO_PROXY", "api.weixin.qq.com")
    assert not isinstance(build_http("https://api.weixin.qq.com"), ProxyManager)


def test_the_proxied_calls_session_reads_the_environment_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    session = without_environment_lookups(requests.Session())
    assert not session.trust_env
    assert session.verify == "/etc/ssl/certs/ca-certificates.crt"
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert without_environment_lookups(requests.Session()).trust_env  # no_proxy is per host
