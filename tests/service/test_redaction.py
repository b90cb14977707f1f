"""Every log line is redacted, whichever library wrote it: messages, extra fields, exceptions."""

from __future__ import annotations

import json
import logging

import pytest

from service import redaction
from service.jsonlog import JsonFormatter
from service.redaction import MASK, redact, redact_value

TOKEN = "49_o9wfABCdefGHIjklMNOpqrSTUvwxYZ0123456789"
LEAKS = [
    # urllib3's retry warning (connectionpool.py), as it reaches the log
    (
        "Retrying (Retry(total=1, connect=2, read=1, redirect=None, status=2)) after connection "
        "broken by 'ProtocolError('Connection aborted.', RemoteDisconnected('Remote end closed "
        f"connection without response'))': /cgi-bin/component/api_authorizer_token?"
        f"component_access_token={TOKEN}"
    ),
    f"GET /cgi-bin/account/getaccountbasicinfo?foo=1&access_token={TOKEN}&bar=2 HTTP/1.1",
    f'{{"component_appid": "wx1", "component_access_token": "{TOKEN}", "expires_in": 7200}}',
    f"{{'authorizer_refresh_token': '{TOKEN}', 'expires_in': 7200}}",
    f"<xml><ComponentVerifyTicket><![CDATA[{TOKEN}]]></ComponentVerifyTicket></xml>",
    f"exchanging queryauthcode@@@{TOKEN} failed",
    f"Authorization: Bearer {TOKEN}",
    f"component_appsecret={TOKEN}&component_verify_ticket=ticket@@@{TOKEN}",
]


@pytest.mark.parametrize("text", LEAKS, ids=range(len(LEAKS)))
def test_credentials_are_masked_wherever_they_stand(text: str) -> None:
    masked = redact(text)
    assert TOKEN not in masked and MASK in masked, masked


@pytest.mark.parametrize(
    "text",
    [
        "WeChat call api=api_query_auth errcode=0 ms=12.5",
        '{"errcode": 61010, "errmsg": "authorization code expired"}',
        "message answered authorizer_appid=wx570bc396a51b8ff8 msg_type=text",
        "timestamp is more than 300s from our clock",
    ],
)
def test_what_is_not_a_credential_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_configured_secrets_are_masked_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redaction, "_secrets", ())
    redaction.register_secrets(["the-app-secret-value", None, "abc"])  # too short: not a secret
    assert redact("oops: the-app-secret-value leaked") == f"oops: {MASK} leaked"
    assert redact("abc") == "abc"


def test_a_configured_secret_inside_a_name_does_not_hide_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A component whose secret is "appsecret" once made "component_appsecret=…" unreadable
    # to the name patterns, and its value went out whole.
    monkeypatch.setattr(redaction, "_secrets", ())
    redaction.register_secrets(["appsecret"])
    assert TOKEN not in redact(f"component_appsecret={TOKEN}&component_verify_ticket=x")


def test_extra_fields_named_like_credentials_are_masked_whole() -> None:
    fields = {"auth_code": "123", "info": {"name": "某公司", "code": "x1"}, "n": 3}
    assert redact_value(fields) == {
        "auth_code": MASK,
        "info": {"name": "某公司", "code": MASK},
        "n": 3,
    }


def test_the_formatter_redacts_message_extras_and_exceptions() -> None:
    logger = logging.getLogger("urllib3.connectionpool")
    try:
        raise ValueError(f"https://api.weixin.qq.com/x?access_token={TOKEN}")
    except ValueError:
        record = logger.makeRecord(
            logger.name,
            logging.WARNING,
            __file__,
            1,
            "Retrying %s",
            (f"/cgi-bin/component/api_create_preauthcode?component_access_token={TOKEN}",),
            exc_info=__import__("sys").exc_info(),
            extra={"url": f"https://x/?access_token={TOKEN}", "refresh_token": TOKEN},
        )
    line = JsonFormatter().format(record)
    assert TOKEN not in line
    payload = json.loads(line)
    assert payload["refresh_token"] == MASK and MASK in payload["url"]
    assert "ValueError" in payload["exception"]
