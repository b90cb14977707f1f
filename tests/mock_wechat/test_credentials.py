"""GET /_mock/credentials: every credential the mock issued, for tests that look for leaks."""

from __future__ import annotations

from flask.testing import FlaskClient

from mock_wechat.api_handlers import answer as api_answer
from mock_wechat.app import create_app
from mock_wechat.models import MockWeChat
from mock_wechat.protocol import AccountKind
from tests.mock_wechat.helpers import APPID, SECRET, config


def test_every_issued_credential_is_listed_revoked_ones_too() -> None:
    state = MockWeChat()
    state.register_component(config(rotate_refresh_tokens=True))
    ticket = state.issue_ticket(APPID)
    token = api_answer(
        state,
        "api_component_token",
        {
            "component_appid": APPID,
            "component_appsecret": SECRET,
            "component_verify_ticket": ticket.value,
        },
    )["component_access_token"]
    [grant] = state.seed_authorizers(APPID, AccountKind.OFFICIAL_ACCOUNT, 1)
    refreshed = api_answer(
        state,
        "api_authorizer_token",
        {
            "component_appid": APPID,
            "authorizer_appid": grant.authorizer_appid,
            "authorizer_refresh_token": grant.refresh_token,
        },
        {"component_access_token": token},
    )
    state.authorizations.unauthorize(APPID, grant.authorizer_appid)  # codes and tokens die
    client: FlaskClient = create_app(state).test_client()
    issued = client.get("/_mock/credentials").get_json()["credentials"]
    assert issued["tickets"] == [ticket.value]
    assert issued["component_tokens"] == [token]
    assert len(issued["authorization_codes"]) == 1
    assert refreshed["authorizer_access_token"] in issued["authorizer_access_tokens"]
    assert len(issued["authorizer_access_tokens"]) == 2  # the seed's exchange, the renewal
    assert issued["authorizer_refresh_tokens"] == [
        grant.refresh_token,
        refreshed["authorizer_refresh_token"],
    ]
