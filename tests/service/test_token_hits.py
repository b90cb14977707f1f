"""The token API's cache hit, answered before Flask (service.web.token_hits), on the
Firestore emulator: the same answer Flask gives, and everything else left to Flask."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service import create_app
from service.store.firestore import FirestoreStore
from service.store.records import AuthorizerRecord, StoreError
from service.web import token_hits
from service.web.token_hits import TokenHits
from tests.service.google_keys import CertsServer, SigningKey, claims
from tests.service.test_console import API_KEY, COMPONENT, local_env

MERCHANT = "wx326eecacf7370d4e"
PATH = f"/api/v1/components/{COMPONENT}/authorizers/{MERCHANT}/token"
KEY = {"Authorization": f"Bearer {API_KEY}"}
STORED = "00_stored-access-token"
INTERNAL_URL = "https://wcg-internal-123456789012.asia-east2.run.app"
ORDERS = "orders@p.iam.gserviceaccount.com"


def put_authorizer(store: FirestoreStore, expires_in: float = 3600) -> AuthorizerRecord:
    record = AuthorizerRecord(
        component_appid=COMPONENT,
        appid=MERCHANT,
        access_token=STORED,
        access_token_expires_at=time.time() + expires_in,
        refresh_token="refreshtoken@@@r0",
    )
    store.modify_authorizer(COMPONENT, MERCHANT, lambda _: record)
    return record


def counting_flask_views(app: Flask) -> list[str]:
    """The token route's calls through Flask, from now on."""
    calls: list[str] = []
    view = app.view_functions["internal_api.token"]

    def counted(**kwargs: Any) -> Any:
        calls.append(kwargs["authorizer_appid"])
        return view(**kwargs)

    app.view_functions["internal_api.token"] = counted
    return calls


@pytest.fixture
def app(firestore_project: str) -> Flask:
    return create_app(local_env(firestore_project))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def test_a_stored_token_is_answered_before_flask_as_flask_answers_it(
    app: Flask, client: FlaskClient, store: FirestoreStore
) -> None:
    record = put_authorizer(store)
    flask_calls = counting_flask_views(app)
    assert isinstance(app.wsgi_app, TokenHits)

    fast = [client.post(PATH, headers=KEY), client.post(PATH, headers=KEY, json={})]
    assert flask_calls == []
    # A body Flask accepts but too long to be the plain "{}": Flask answers it.
    slow = client.post(PATH, headers=KEY, json={"padding": "x" * 2000})
    assert flask_calls == [MERCHANT]

    expected = {
        "access_token": STORED,
        "expires_at": int(record.access_token_expires_at or 0),
        "outcome": "fresh",
    }
    for response in [*fast, slow]:
        assert response.status_code == 200
        assert response.get_json() == expected
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["Cache-Control"] == "no-store"
    assert fast[0].data == slow.data  # byte for byte, as Flask writes it


@pytest.mark.parametrize(
    ("headers", "body", "status", "reason"),
    [
        ({}, None, 401, "missing 'Authorization: Bearer <key>' header"),
        ({"Authorization": "Bearer wrong"}, None, 403, "API key not accepted"),
        (KEY, b"not json", 400, "body must be a JSON object (or empty)"),
        (KEY, b"[]", 400, "body must be a JSON object (or empty)"),
        (KEY, b'{"invalid_token": ""}', 400, "invalid_token must be the token WeChat refused"),
    ],
)
def test_a_refusal_is_flasks_with_its_reason(
    client: FlaskClient,
    store: FirestoreStore,
    headers: dict[str, str],
    body: bytes | None,
    status: int,
    reason: str,
) -> None:
    put_authorizer(store)
    response = client.post(PATH, headers=headers, data=body)
    assert (response.status_code, response.get_json()["error"]) == (status, reason)


def test_paths_and_methods_it_does_not_serve_go_to_flask(
    client: FlaskClient, store: FirestoreStore
) -> None:
    put_authorizer(store)
    unknown = client.post(PATH.replace(COMPONENT, "wx00000000000000ff"), headers=KEY)
    assert (unknown.status_code, unknown.get_json()["error"]) == (
        404,
        "unknown component wx00000000000000ff",
    )
    bad_appid = client.post(PATH.replace(MERCHANT, "wxnope"), headers=KEY)
    assert bad_appid.status_code == 400
    assert client.get(PATH, headers=KEY).status_code == 405
    assert client.post(PATH + "/", headers=KEY).status_code == 404


def test_a_token_to_renew_goes_to_flask_with_its_body(
    app: Flask, client: FlaskClient, store: FirestoreStore
) -> None:
    put_authorizer(store)
    flask_calls = counting_flask_views(app)

    # The body was read here and must reach the route whole: it invalidates the token.
    response = client.post(PATH, headers=KEY, json={"invalid_token": STORED})

    assert flask_calls == [MERCHANT]
    stored = store.get_authorizer(COMPONENT, MERCHANT)
    assert stored is not None and stored.access_token is None
    # WeChat (WECHAT_API_BASE) is unreachable here: no token to hand out.
    assert response.status_code == 503


def test_a_token_close_to_expiry_goes_to_flask_which_does_not_glance_again(
    app: Flask, client: FlaskClient, store: FirestoreStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_authorizer(store, expires_in=120)  # valid, but under min_ttl: Flask renews it
    flask_calls = counting_flask_views(app)
    runtime_store = app.extensions["gateway"].store
    glances: list[str] = []
    glance = runtime_store.get_authorizer_token

    def counted(component_appid: str, appid: str) -> object:
        glances.append(appid)
        return glance(component_appid, appid)

    monkeypatch.setattr(runtime_store, "get_authorizer_token", counted)
    response = client.post(PATH, headers=KEY)
    assert flask_calls == [MERCHANT]
    assert glances == [MERCHANT]  # read once, before Flask; the route read the record
    # Renewing fails (WeChat unreachable); the still-valid token is served, as Flask does.
    assert response.get_json()["outcome"] == "kept"


def test_a_store_failure_goes_to_flask_which_answers_503(
    app: Flask, client: FlaskClient, store: FirestoreStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_authorizer(store)
    flask_calls = counting_flask_views(app)

    def failing(*args: object) -> None:
        raise StoreError("Firestore read failed: ServiceUnavailable")

    monkeypatch.setattr(app.extensions["gateway"].authorizer_tokens, "stored", failing)
    response = client.post(PATH, headers=KEY)
    assert flask_calls == [MERCHANT]
    assert response.status_code == 503
    assert "store unavailable" in response.get_json()["error"]


def test_a_due_push_log_flush_runs_after_the_answer(
    client: FlaskClient, store: FirestoreStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What Flask's after-request hook does for every request (service.web.console_log)."""
    put_authorizer(store)
    flushed: list[bool] = []
    monkeypatch.setattr(
        token_hits, "flush_when_due", lambda extensions: lambda: flushed.append(True)
    )

    response = client.post(PATH, headers=KEY)
    assert response.status_code == 200
    response.close()
    assert flushed == [True]


def test_the_public_service_has_no_token_path(firestore_project: str) -> None:
    app = create_app(local_env(firestore_project, SERVICE_ROLE="public"))
    assert not isinstance(app.wsgi_app, TokenHits)
    assert app.test_client().post(PATH, headers=KEY).status_code == 404


@pytest.fixture
def signing_key() -> SigningKey:
    return SigningKey("key-1")


@pytest.fixture
def iam_client(
    firestore_project: str, signing_key: SigningKey
) -> Iterator[tuple[Flask, FlaskClient]]:
    with CertsServer(signing_key).running() as certs:
        env = local_env(
            firestore_project,
            SERVICE_ROLE="internal",
            INTERNAL_AUTH="cloud_run_iam",
            INTERNAL_AUDIENCE=INTERNAL_URL,
            INTERNAL_INVOKERS=ORDERS,
            ID_TOKEN_CERTS_URL=certs.url,
        )
        app = create_app(env)
        yield app, app.test_client()


def test_with_id_tokens_an_accepted_caller_gets_the_stored_token_before_flask(
    iam_client: tuple[Flask, FlaskClient], store: FirestoreStore, signing_key: SigningKey
) -> None:
    app, client = iam_client
    put_authorizer(store)
    flask_calls = counting_flask_views(app)
    token = signing_key.sign(claims(ORDERS, INTERNAL_URL))

    response = client.post(PATH, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.get_json()["access_token"] == STORED
    assert flask_calls == []

    stranger = signing_key.sign(claims("someone@other.iam.gserviceaccount.com", INTERNAL_URL))
    refused = client.post(PATH, headers={"Authorization": f"Bearer {stranger}"})
    assert refused.status_code == 403
    assert json.loads(refused.data)["error"]
