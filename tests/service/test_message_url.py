"""POST /wechat/<c>/messages/<appid>: answers, the release check's cases, and refusals.

The Flask app runs on the Firestore emulator; WeChat is unreachable here (the release
check's send, which needs it, is proven end to end in tests/e2e).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service import create_app
from service.runtime import Runtime
from service.store.firestore import FirestoreStore
from service.store.records import AuthorizerRecord
from service.wechat.crypto import MessageCrypto
from service.wechat.messages import build_xml, parse_xml
from service.wechat.release_accounts import RELEASE_TEST_ACCOUNTS, TEXT_PROBE, TEXT_REPLY
from tests.service.push_component import APPID, KEY, NEW_KEY, TOKEN, service_env

MERCHANT = "wx00000000000000a1"
MERCHANT_GH = "gh_00000000000a"
OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
GROUP_3_OA = next(a for a in RELEASE_TEST_ACCOUNTS if a.group == 3 and a.appid.startswith("wx8e"))


@pytest.fixture
def app(firestore_project: str) -> Flask:
    return create_app(service_env(firestore_project))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def runtime(app: Flask) -> Runtime:
    rt: Runtime = app.extensions["gateway"]
    return rt


def message_xml(
    to: str = MERCHANT_GH, content: str = "hello", msg_id: str = "6427251175451672521"
) -> str:
    return build_xml(
        {
            "ToUserName": to,
            "FromUserName": OPENID,
            "CreateTime": 1700000000,
            "MsgType": "text",
            "Content": content,
            "MsgId": msg_id,
        }
    )


def event_xml(to: str, event: str = "LOCATION") -> str:
    return build_xml(
        {
            "ToUserName": to,
            "FromUserName": OPENID,
            "CreateTime": 1700000000,
            "MsgType": "event",
            "Event": event,
            "Latitude": "23.137466",
        }
    )


def sealed(
    xml: str,
    *,
    to: str = MERCHANT_GH,
    key: str = NEW_KEY,
    token: str = TOKEN,
    sender: str = APPID,
    timestamp: int | None = None,
) -> tuple[dict[str, str], bytes]:
    """The push as WeChat sends it: query parameters and the <ToUserName>/<Encrypt> body."""
    crypto = MessageCrypto(token, key, sender)
    envelope = crypto.seal(xml, str(timestamp or int(time.time())), "1556906150")
    query = {
        "signature": envelope.signature,
        "timestamp": envelope.timestamp,
        "nonce": envelope.nonce,
        "openid": OPENID,
        "encrypt_type": "aes",
        "msg_signature": envelope.msg_signature,
    }
    return query, build_xml({"ToUserName": to, "Encrypt": envelope.encrypt}).encode()


def post(
    client: FlaskClient,
    query: dict[str, str],
    body: bytes,
    account: str = MERCHANT,
    component: str = APPID,
) -> Any:
    response = client.post(
        f"/wechat/{component}/messages/{account}",
        query_string=query,
        data=body,
        content_type="text/xml",
    )
    response.close()  # as a server does once the answer is out: runs what follows it
    return response


def open_reply(body: bytes, key: str = NEW_KEY) -> dict[str, str]:
    """Check the reply envelope's signature and decrypt it, as WeChat does."""
    envelope = parse_xml(body)
    crypto = MessageCrypto(TOKEN, key, APPID)
    decrypted = crypto.verify_and_decrypt(
        envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"], envelope["Encrypt"]
    )
    return parse_xml(decrypted.message)


def writes(app: Flask) -> int:
    store = runtime(app).store
    assert isinstance(store, FirestoreStore)
    return store.ops.snapshot()[1]


# ----- ordinary messages ------------------------------------------------------------------


def test_an_ordinary_message_is_answered_success_without_a_write(
    app: Flask, client: FlaskClient
) -> None:
    before = writes(app)
    for msg_id in ("1", "2", "3"):
        response = post(client, *sealed(message_xml(msg_id=msg_id)))
        assert (response.status_code, response.data) == (200, b"success")
    assert writes(app) == before


def test_a_held_account_is_read_once_then_served_from_the_cache(
    app: Flask, client: FlaskClient, store: FirestoreStore
) -> None:
    store.modify_authorizer(
        APPID, MERCHANT, lambda _: AuthorizerRecord(APPID, MERCHANT, user_name=MERCHANT_GH)
    )
    rt_store = runtime(app).store
    assert isinstance(rt_store, FirestoreStore)
    reads_before = rt_store.ops.snapshot()[0]
    for msg_id in ("1", "2", "3", "4"):
        assert post(client, *sealed(message_xml(msg_id=msg_id))).status_code == 200
    assert rt_store.ops.snapshot()[0] - reads_before == 1


def test_a_message_for_a_held_account_under_another_gh_id_is_refused(
    client: FlaskClient, store: FirestoreStore
) -> None:
    store.modify_authorizer(
        APPID, MERCHANT, lambda _: AuthorizerRecord(APPID, MERCHANT, user_name=MERCHANT_GH)
    )
    response = post(client, *sealed(message_xml(to="gh_00000000000b"), to="gh_00000000000b"))
    assert response.status_code == 400
    assert MERCHANT in response.get_json()["error"]


def test_a_message_sealed_with_the_previous_key_is_accepted(client: FlaskClient) -> None:
    response = post(client, *sealed(message_xml(), key=KEY))
    assert (response.status_code, response.data) == (200, b"success")


def test_a_cipher_ending_with_the_accounts_own_appid_is_accepted(client: FlaskClient) -> None:
    # UNCONFIRMED whether WeChat ends it with the component's or the account's appid.
    response = post(client, *sealed(message_xml(), sender=MERCHANT))
    assert (response.status_code, response.data) == (200, b"success")


# ----- the release check ---------------------------------------------------------------


@pytest.mark.parametrize("account", RELEASE_TEST_ACCOUNTS, ids=lambda a: a.appid)
def test_every_test_account_gets_the_encrypted_callback_reply(
    client: FlaskClient, account: Any
) -> None:
    xml = message_xml(to=account.user_name, content=TEXT_PROBE)
    response = post(client, *sealed(xml, to=account.user_name), account=account.appid)
    assert response.status_code == 200 and response.mimetype == "text/xml"
    assert open_reply(response.data) == {
        "ToUserName": OPENID,
        "FromUserName": account.user_name,
        "CreateTime": open_reply(response.data)["CreateTime"],
        "MsgType": "text",
        "Content": TEXT_REPLY,
    }


def test_a_test_account_is_also_known_by_its_gh_id_alone(client: FlaskClient) -> None:
    to = GROUP_3_OA.user_name
    response = post(client, *sealed(message_xml(to=to, content=TEXT_PROBE), to=to))
    assert open_reply(response.data)["Content"] == TEXT_REPLY


def test_an_event_of_a_test_account_gets_event_from_callback(client: FlaskClient) -> None:
    to = GROUP_3_OA.user_name
    response = post(client, *sealed(event_xml(to), to=to), account=GROUP_3_OA.appid)
    assert open_reply(response.data)["Content"] == "LOCATIONfrom_callback"


def test_the_reply_goes_out_under_the_key_the_message_came_in_with(client: FlaskClient) -> None:
    to = GROUP_3_OA.user_name
    xml = message_xml(to=to, content=TEXT_PROBE)
    response = post(client, *sealed(xml, to=to, key=KEY), account=GROUP_3_OA.appid)
    assert open_reply(response.data, key=KEY)["Content"] == TEXT_REPLY


def test_a_test_appid_with_another_test_accounts_gh_id_is_refused(client: FlaskClient) -> None:
    other = next(a for a in RELEASE_TEST_ACCOUNTS if a.appid != GROUP_3_OA.appid)
    xml = message_xml(to=other.user_name, content=TEXT_PROBE)
    response = post(client, *sealed(xml, to=other.user_name), account=GROUP_3_OA.appid)
    assert response.status_code == 400


def test_query_auth_code_is_answered_empty_and_queued_once_across_retries(
    app: Flask, client: FlaskClient, store: FirestoreStore
) -> None:
    to = GROUP_3_OA.user_name
    xml = message_xml(to=to, content="QUERY_AUTH_CODE:queryauthcode@@@abc")
    for _ in range(3):  # WeChat's retries of one message
        response = post(client, *sealed(xml, to=to), account=GROUP_3_OA.appid)
        assert (response.status_code, response.data) == (200, b"")
    [send] = store.open_release_sends(APPID)
    assert (send.authorizer_appid, send.to_user) == (GROUP_3_OA.appid, OPENID)
    assert send.code == "queryauthcode@@@abc"
    # WeChat is unreachable here: the send went back to pending, for the sweep to retry.
    assert send.status == "pending" and send.attempts == 3


def test_query_auth_code_is_answered_503_when_the_send_cannot_be_stored(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.store.records import StoreError

    def down(*args: Any, **kwargs: Any) -> bool:
        raise StoreError("Firestore write took longer than 2.0 s")

    monkeypatch.setattr(runtime(app).store, "create_release_send", down)
    to = GROUP_3_OA.user_name
    xml = message_xml(to=to, content="QUERY_AUTH_CODE:queryauthcode@@@abc")
    response = post(client, *sealed(xml, to=to), account=GROUP_3_OA.appid)
    assert response.status_code == 503  # not answered: WeChat tries again


# ----- refusals -----------------------------------------------------------------------------


def _swap(case: tuple[dict[str, str], bytes], **changes: str) -> tuple[dict[str, str], bytes]:
    query, body = case
    return {**query, **changes}, body


XXE = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    "<xml><ToUserName>&x;</ToUserName><Encrypt>abc</Encrypt></xml>"
)
Case = Callable[[], tuple[dict[str, str], bytes]]
HOSTILE: dict[str, tuple[Case, str, str, int]] = {
    "bad msg_signature": (
        lambda: _swap(sealed(message_xml()), msg_signature="0" * 40),
        APPID,
        MERCHANT,
        403,
    ),
    "bad signature": (
        lambda: _swap(sealed(message_xml()), signature="0" * 40),
        APPID,
        MERCHANT,
        403,
    ),
    "wrong token": (lambda: sealed(message_xml(), token="other"), APPID, MERCHANT, 403),
    "stale timestamp": (
        lambda: sealed(message_xml(), timestamp=int(time.time()) - 3600),
        APPID,
        MERCHANT,
        400,
    ),
    "wrong AppId in the cipher": (
        lambda: sealed(message_xml(), sender="wx00000000000000ff"),
        APPID,
        MERCHANT,
        400,
    ),
    "XXE": (lambda: (sealed(message_xml())[0], XXE.encode()), APPID, MERCHANT, 400),
    "DTD in the decrypted message": (
        lambda: sealed("<!DOCTYPE xml><xml><ToUserName>a</ToUserName></xml>"),
        APPID,
        MERCHANT,
        400,
    ),
    "oversized body": (
        lambda: (sealed(message_xml())[0], b"<xml>" + b"x" * 300_000 + b"</xml>"),
        APPID,
        MERCHANT,
        413,
    ),
    "unknown component": (lambda: sealed(message_xml()), "wxffffffffffffffff", MERCHANT, 404),
    "path appid is not an appid": (lambda: sealed(message_xml()), APPID, "$APPID$", 400),
    "ToUserName contradicts a test account": (
        lambda: sealed(message_xml(content=TEXT_PROBE)),
        APPID,
        GROUP_3_OA.appid,
        400,
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_pushes_are_refused_with_a_reason_and_change_nothing(
    app: Flask, client: FlaskClient, store: FirestoreStore, name: str
) -> None:
    case, component, account, status = HOSTILE[name]
    before = writes(app)
    response = post(client, *case(), account=account, component=component)
    assert response.status_code == status, response.data
    assert response.get_json()["error"]
    assert writes(app) == before
    assert store.open_release_sends(APPID) == []
