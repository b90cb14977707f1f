"""POST /wechat/<appid>/events: what is accepted, what is refused; refusals store nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from service import create_app
from service.store.firestore import FirestoreStore
from service.store.records import ComponentRecord
from service.wechat.crypto import MessageCrypto
from service.wechat.messages import build_envelope, build_xml
from tests.service.push_component import APPID, KEY, NEW_KEY, TOKEN, service_env


@pytest.fixture
def env(firestore_project: str) -> dict[str, str]:
    return service_env(firestore_project)


@pytest.fixture
def client(env: dict[str, str]) -> FlaskClient:
    return create_app(env).test_client()


def ticket_xml(
    ticket: str = "ticket@@@abc", create_time: int = 1700000000, app_id: str = APPID
) -> str:
    return build_xml(
        {
            "AppId": app_id,
            "CreateTime": create_time,
            "InfoType": "component_verify_ticket",
            "ComponentVerifyTicket": ticket,
        }
    )


def sealed_push(
    xml: str,
    *,
    key: str = NEW_KEY,
    token: str = TOKEN,
    appid: str = APPID,
    envelope_appid: str = APPID,
    timestamp: int | None = None,
) -> tuple[dict[str, str], bytes]:
    crypto = MessageCrypto(token, key, appid)
    sealed = crypto.seal(xml, str(timestamp or int(time.time())), "619113215")
    query = {
        "signature": sealed.signature,
        "timestamp": sealed.timestamp,
        "nonce": sealed.nonce,
        "encrypt_type": "aes",
        "msg_signature": sealed.msg_signature,
    }
    return query, build_envelope(envelope_appid, sealed.encrypt).encode()


def post(client: FlaskClient, query: dict[str, str], body: bytes, appid: str = APPID) -> Any:
    return client.post(
        f"/wechat/{appid}/events", query_string=query, data=body, content_type="text/xml"
    )


def test_ticket_push_is_stored_and_answered_success(
    client: FlaskClient, store: FirestoreStore
) -> None:
    response = post(client, *sealed_push(ticket_xml()))
    assert response.status_code == 200
    assert response.data == b"success" and response.mimetype == "text/plain"
    record = store.get_component(APPID)
    assert (record.ticket, record.ticket_create_time) == ("ticket@@@abc", 1700000000)


def test_push_sealed_with_the_previous_key_is_accepted(
    client: FlaskClient, store: FirestoreStore
) -> None:
    assert post(client, *sealed_push(ticket_xml(), key=KEY)).status_code == 200
    assert store.get_component(APPID).ticket == "ticket@@@abc"


def test_unknown_info_type_is_answered_success(client: FlaskClient) -> None:
    xml = build_xml({"AppId": APPID, "CreateTime": 1, "InfoType": "something_new", "X": "y"})
    response = post(client, *sealed_push(xml))
    assert (response.status_code, response.data) == (200, b"success")


def _swap(query: dict[str, str], **changes: str) -> dict[str, str]:
    return {**query, **changes}


def _drop(query: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in query.items() if k != name}


Case = Callable[[], tuple[dict[str, str], bytes]]
BAD_PUSHES: dict[str, tuple[Case, int, str]] = {
    "wrong msg_signature": (
        lambda: (lambda q, b: (_swap(q, msg_signature="0" * 40), b))(*sealed_push(ticket_xml())),
        403,
        "signature",
    ),
    "wrong plain signature": (
        lambda: (lambda q, b: (_swap(q, signature="0" * 40), b))(*sealed_push(ticket_xml())),
        403,
        "signature",
    ),
    "wrong token": (lambda: sealed_push(ticket_xml(), token="other"), 403, "signature"),
    "unknown key": (lambda: sealed_push(ticket_xml(), key="A" * 43), 400, "decrypt"),
    "wrong appid inside the ciphertext": (
        lambda: sealed_push(ticket_xml(), appid="wx1111111111111111"),
        400,
        "AppId",
    ),
    "wrong envelope AppId": (
        lambda: sealed_push(ticket_xml(), envelope_appid="wx1111111111111111"),
        400,
        "AppId",
    ),
    "wrong message AppId": (
        lambda: sealed_push(ticket_xml(app_id="wx1111111111111111")),
        400,
        "AppId",
    ),
    "stale timestamp": (
        lambda: sealed_push(ticket_xml(), timestamp=int(time.time()) - 3600),
        400,
        "timestamp",
    ),
    "missing msg_signature": (
        lambda: (lambda q, b: (_drop(q, "msg_signature"), b))(*sealed_push(ticket_xml())),
        400,
        "msg_signature",
    ),
    "plaintext mode": (
        lambda: (lambda q, b: (_swap(q, encrypt_type="raw"), b))(*sealed_push(ticket_xml())),
        400,
        "encrypt_type",
    ),
    "xxe envelope": (
        lambda: (
            sealed_push(ticket_xml())[0],
            b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<xml><AppId>&x;</AppId><Encrypt>e</Encrypt></xml>",
        ),
        400,
        "unsafe XML",
    ),
    "xxe inside the ciphertext": (
        lambda: sealed_push(
            '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            f"<xml><AppId>{APPID}</AppId><CreateTime>1</CreateTime>"
            "<InfoType>component_verify_ticket</InfoType>"
            "<ComponentVerifyTicket>&x;</ComponentVerifyTicket></xml>"
        ),
        400,
        "unsafe XML",
    ),
    "not xml": (lambda: (sealed_push(ticket_xml())[0], b"hello"), 400, "not well-formed"),
    "oversized body": (
        lambda: (
            sealed_push(ticket_xml())[0],
            b"<xml><Encrypt>" + b"A" * 300_000 + b"</Encrypt></xml>",
        ),
        413,
        "byte limit",
    ),
    "missing ticket field": (
        lambda: sealed_push(
            build_xml({"AppId": APPID, "CreateTime": 1, "InfoType": "component_verify_ticket"})
        ),
        400,
        "ComponentVerifyTicket",
    ),
}


@pytest.mark.parametrize("case", list(BAD_PUSHES), ids=list(BAD_PUSHES))
def test_bad_pushes_get_a_4xx_with_a_reason_and_store_nothing(
    case: str, client: FlaskClient, store: FirestoreStore
) -> None:
    build, status, reason = BAD_PUSHES[case]
    response = post(client, *build())
    assert response.status_code == status, response.get_data(as_text=True)
    assert reason in response.get_json()["error"]
    assert store.get_component(APPID) == ComponentRecord(appid=APPID)
    assert "success" not in response.get_data(as_text=True)


def test_unknown_component_is_404(client: FlaskClient) -> None:
    response = post(client, *sealed_push(ticket_xml()), appid="wx9999999999999999")
    assert response.status_code == 404
    assert "unknown component" in response.get_json()["error"]


def test_errors_never_echo_secrets(client: FlaskClient) -> None:
    query, body = sealed_push(ticket_xml(), token="other")
    text = post(client, query, body).get_data(as_text=True)
    for secret in (TOKEN, KEY, NEW_KEY, "appsecret"):
        assert secret not in text


def test_tasks_refresh_requires_the_api_key(client: FlaskClient) -> None:
    assert client.post("/tasks/refresh").status_code == 401
    denied = client.post("/tasks/refresh", headers={"Authorization": "Bearer nope"})
    assert denied.status_code == 403


def test_internal_api_is_disabled_without_keys(env: dict[str, str]) -> None:
    app = create_app({**env, "SERVICE_API_KEYS": ""})
    response = app.test_client().post("/tasks/refresh", headers={"Authorization": "Bearer k1"})
    assert response.status_code == 503
    assert "SERVICE_API_KEYS" in response.get_json()["error"]


def test_healthz_reports_without_secrets(client: FlaskClient, store: FirestoreStore) -> None:
    post(client, *sealed_push(ticket_xml()))
    now = time.time()
    store.modify_component(
        APPID, lambda r: r.but(component_token="SECRET-TOKEN", component_token_expires_at=now + 100)
    )
    response = client.get("/healthz")
    assert response.status_code == 200
    component = response.get_json()["components"][APPID]
    assert 0 <= component["ticket_age_seconds"] < 30
    assert 95 <= component["component_token_expires_in_seconds"] <= 100
    assert response.get_json()["status"] == "ok"
    assert "SECRET-TOKEN" not in response.get_data(as_text=True)
    assert "ticket@@@" not in response.get_data(as_text=True)
