"""INTERNAL_AUTH=cloud_run_iam: the internal service verifies the caller's Google-signed ID
token itself (signature, expiry, audience, issuer, and the caller's email in the list), so a
service reachable without Cloud Run's IAM check still gives nothing to ``Authorization: x``.

The keys are the test's own (tests/service/google_keys.py), served as Google serves its
certificates. A request that passes the check reaches the internal API's component check:
an unknown component answers 404, which needs no Firestore.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service import create_app
from service.web.auth import VERIFIER
from service.web.id_tokens import GoogleCerts, IdTokenRefusal, Verifier
from tests.service.google_keys import (
    CertsServer,
    SigningKey,
    claims,
    strip_signature,
)
from tests.service.test_config import PER_VARIABLE

AUDIENCE = "https://wcg-dev-internal-123456789012.asia-east2.run.app"
SCHEDULER = "wcg-dev-scheduler@wcg-test-project.iam.gserviceaccount.com"
ORDERS = "orders@wcg-test-project.iam.gserviceaccount.com"
STRANGER = "someone@other-project.iam.gserviceaccount.com"
# Passing the identity check, a request reaches the component check: 404 for this one.
API = "/api/v1/components/wx00000000000000ff/authorizers"
PASSED = (404, "unknown component wx00000000000000ff")


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey("key-1")


@pytest.fixture(scope="module")
def other_key() -> SigningKey:
    return SigningKey("key-other")


@pytest.fixture
def certs(key: SigningKey) -> Iterator[CertsServer]:
    with CertsServer(key).running() as server:
        yield server


def internal_env(certs_url: str, **overrides: str) -> dict[str, str]:
    return {
        **PER_VARIABLE,
        "SERVICE_ROLE": "internal",
        "INTERNAL_AUTH": "cloud_run_iam",
        "INTERNAL_AUDIENCE": AUDIENCE,
        "INTERNAL_INVOKERS": f"{SCHEDULER}, {ORDERS}",
        "ID_TOKEN_CERTS_URL": certs_url,
        "WECHAT_API_BASE": "http://127.0.0.1:9",
        **overrides,
    }


@pytest.fixture
def app(certs: CertsServer) -> Flask:
    return create_app(internal_env(certs.url))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def answer(client: FlaskClient, headers: dict[str, str], path: str = API) -> tuple[int, str]:
    response = client.get(path, headers=headers)
    return response.status_code, response.get_json()["error"]


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


# ----- who gets in --------------------------------------------------------------------------


def test_a_valid_token_of_a_listed_caller_passes(client: FlaskClient, key: SigningKey) -> None:
    for email in (SCHEDULER, ORDERS, ORDERS.upper()):
        assert answer(client, bearer(key.sign(claims(email, AUDIENCE)))) == PASSED
    # The other issuer spelling Google uses.
    token = key.sign(claims(ORDERS, AUDIENCE, issuer="accounts.google.com"))
    assert answer(client, bearer(token)) == PASSED


def test_the_token_may_come_in_x_serverless_authorization(
    client: FlaskClient, key: SigningKey
) -> None:
    token = key.sign(claims(ORDERS, AUDIENCE))
    assert answer(client, {"X-Serverless-Authorization": f"Bearer {token}"}) == PASSED


def test_behind_cloud_run_the_copy_in_authorization_is_verified(
    client: FlaskClient, key: SigningKey
) -> None:
    """Cloud Run checks X-Serverless-Authorization and passes it on without its signature;
    Authorization reaches the service as the caller sent it."""
    token = key.sign(claims(ORDERS, AUDIENCE))
    headers = {"X-Serverless-Authorization": f"Bearer {strip_signature(token)}", **bearer(token)}
    assert answer(client, headers) == PASSED


# ----- who does not ---------------------------------------------------------------------


def _refusals(key: SigningKey, other: SigningKey) -> list[tuple[str, dict[str, str], str]]:
    now = time.time()
    good = claims(ORDERS, AUDIENCE)
    header = {"alg": "RS256", "kid": key.kid, "typ": "JWT"}
    unsigned = f"{b64({**header, 'alg': 'none'})}.{b64(good)}."
    valid = key.sign(good)
    return [
        ("no header", {}, "missing identity token"),
        ("Authorization: x", {"Authorization": "x"}, "'Bearer <ID token>'"),
        ("basic", {"Authorization": "Basic b3JkZXJzOnB3"}, "'Bearer <ID token>'"),
        ("empty bearer", {"Authorization": "Bearer "}, "'Bearer <ID token>'"),
        ("not a JWT", bearer("header.payload.signature"), "not a well-formed ID token"),
        ("two parts", bearer("abc.def"), "not a well-formed ID token"),
        ("payload not JSON", bearer(f"{b64(header)}.bm90IGpzb24.c2ln"), "well-formed"),
        ("alg none", bearer(unsigned), "must be signed with RS256"),
        ("wrong audience", bearer(key.sign(claims(ORDERS, "https://other.run.app"))), "audience"),
        (
            "expired",
            bearer(key.sign(claims(ORDERS, AUDIENCE, issued_at=now - 7200))),
            "expired",
        ),
        (
            "issued in the future",
            bearer(key.sign(claims(ORDERS, AUDIENCE, issued_at=now + 600))),
            "issued in the future",
        ),
        (
            "wrong issuer",
            bearer(key.sign(claims(ORDERS, AUDIENCE, issuer="https://evil.example"))),
            "not issued by Google",
        ),
        # Signed by another key under the published key's id.
        ("bad signature", bearer(other.sign(good, kid=key.kid)), "signature does not verify"),
        ("tampered", bearer(valid[:-6] + ("A" * 6 if valid[-6:] != "A" * 6 else "B" * 6)), "sig"),
        ("unknown key", bearer(other.sign(good)), "unknown signing key"),
        (
            "signature removed, on the API",
            bearer(strip_signature(valid)),
            "without its signature",
        ),
        (
            "a bad X-Serverless-Authorization beside a good Authorization",
            {"X-Serverless-Authorization": "x", **bearer(valid)},
            "X-Serverless-Authorization must be 'Bearer <ID token>'",
        ),
    ]


def test_bad_tokens_get_401_saying_why(
    client: FlaskClient, key: SigningKey, other_key: SigningKey
) -> None:
    for case, headers, reason in _refusals(key, other_key):
        response = client.get(API, headers=headers)
        assert response.status_code == 401, (case, response.get_json())
        error = response.get_json()["error"]
        assert reason in error, (case, error)
        for value in headers.values():
            token = value.partition(" ")[2]
            assert not token or token not in response.get_data(as_text=True), case


@pytest.mark.parametrize(
    ("case", "changes", "reason"),
    [
        ("an email not in the list", {"email": STRANGER}, f"{STRANGER} may not call"),
        ("an unverified email", {"email_verified": False}, "no verified email"),
        ("no email at all", {"email": None}, "no verified email"),
    ],
)
def test_a_valid_token_of_a_caller_not_listed_gets_403(
    client: FlaskClient, key: SigningKey, case: str, changes: dict[str, Any], reason: str
) -> None:
    token_claims = {
        k: v for k, v in {**claims(ORDERS, AUDIENCE), **changes}.items() if v is not None
    }
    status, error = answer(client, bearer(key.sign(token_claims)))
    assert (status, reason in error) == (403, True), (case, error)


def test_the_public_role_and_api_keys_are_unchanged(certs: CertsServer, key: SigningKey) -> None:
    """INTERNAL_AUTH=api_key (local runs and tests) still takes SERVICE_API_KEYS only."""
    env = {**PER_VARIABLE, "SERVICE_API_KEYS": "k1", "WECHAT_API_BASE": "http://127.0.0.1:9"}
    client = create_app(env).test_client()
    assert answer(client, bearer("k1")) == PASSED
    assert answer(client, bearer(key.sign(claims(ORDERS, AUDIENCE))))[0] == 403


# ----- Google's certificates: cached, and a failure is not a pass --------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_certificates_are_fetched_once_and_a_new_key_is_picked_up(
    app: Flask, certs: CertsServer, key: SigningKey
) -> None:
    clock = FakeClock()
    app.extensions[VERIFIER] = Verifier((AUDIENCE,), (ORDERS,), GoogleCerts(certs.url, clock=clock))
    client = app.test_client()
    for _ in range(5):
        assert answer(client, bearer(key.sign(claims(ORDERS, AUDIENCE)))) == PASSED
    assert certs.fetches == 1
    # Google publishes a new key hours before it signs with it; a token under a key id not
    # yet seen makes the service fetch again, at most once a minute.
    rotated = SigningKey("key-2")
    certs.published.append(rotated)
    status, error = answer(client, bearer(rotated.sign(claims(ORDERS, AUDIENCE))))
    assert (status, "unknown signing key" in error, certs.fetches) == (401, True, 1)
    clock.now += 60
    assert answer(client, bearer(rotated.sign(claims(ORDERS, AUDIENCE)))) == PASSED
    assert certs.fetches == 2
    stranger = SigningKey("key-3")
    for _ in range(3):
        status, error = answer(client, bearer(stranger.sign(claims(ORDERS, AUDIENCE))))
        assert (status, "unknown signing key" in error) == (401, True)
    assert certs.fetches == 2


def test_unreachable_certificates_answer_503_not_200(
    client: FlaskClient, certs: CertsServer, key: SigningKey
) -> None:
    certs.failing = True
    status, error = answer(client, bearer(key.sign(claims(ORDERS, AUDIENCE))))
    assert status == 503 and "Google's signing certificates" in error
    # The failure is not remembered for long: once they answer again, calls pass.
    certs.failing = False
    time.sleep(1.1)
    assert answer(client, bearer(key.sign(claims(ORDERS, AUDIENCE)))) == PASSED


def test_a_closed_certificates_port_answers_503(key: SigningKey) -> None:
    client = create_app(internal_env("http://127.0.0.1:9/certs")).test_client()
    status, error = answer(client, bearer(key.sign(claims(ORDERS, AUDIENCE))))
    assert status == 503 and "Google's signing certificates" in error


def test_the_cache_honours_max_age(certs: CertsServer, key: SigningKey) -> None:
    certs.max_age = 600
    clock = FakeClock()
    cache = GoogleCerts(certs.url, clock=clock)
    cache.verifier(key.kid)
    clock.now += 599
    cache.verifier(key.kid)
    assert certs.fetches == 1
    clock.now += 2
    cache.verifier(key.kid)
    assert certs.fetches == 2
    # A max-age below a minute is held for a minute; without one, for five minutes.
    certs.max_age = 0
    clock.now += 700
    cache.verifier(key.kid)
    clock.now += 59
    cache.verifier(key.kid)
    assert certs.fetches == 3


def test_a_certificate_document_that_is_not_one_is_a_failure(certs: CertsServer) -> None:
    class NotCerts(SigningKey):
        def __init__(self) -> None:
            self.kid = "broken"
            self.certificate_pem = "not a certificate"

    certs.published = [NotCerts()]
    with pytest.raises(IdTokenRefusal) as caught:
        GoogleCerts(certs.url).verifier("broken")
    assert caught.value.status == 503


# ----- the refresh task: Cloud Scheduler's token, as Cloud Run passes it on -----------------


@pytest.fixture
def tasks_client(certs: CertsServer, firestore_project: str) -> FlaskClient:
    env = internal_env(certs.url, GOOGLE_CLOUD_PROJECT=firestore_project)
    return create_app(env).test_client()


def test_the_task_accepts_the_schedulers_token_checked_by_cloud_run(
    tasks_client: FlaskClient, key: SigningKey
) -> None:
    """Cloud Scheduler sends its OIDC token in Authorization, which Cloud Run checks and
    passes on without its signature: /tasks/* accept that (claims still checked)."""
    stripped = strip_signature(key.sign(claims(SCHEDULER, AUDIENCE)))
    response = tasks_client.post("/tasks/refresh", headers=bearer(stripped))
    assert response.status_code in (200, 503), response.get_json()
    assert "components" in response.get_json()
    signed = key.sign(claims(SCHEDULER, AUDIENCE))
    assert "components" in tasks_client.post("/tasks/refresh", headers=bearer(signed)).get_json()


@pytest.mark.parametrize(
    ("case", "changes", "status", "reason"),
    [
        ("another email", {"email": STRANGER}, 403, "may not call"),
        ("another audience", {"aud": "https://other.run.app"}, 401, "audience"),
        ("not Google's", {"iss": "https://evil.example"}, 401, "not issued by Google"),
        ("expired", {"exp": int(time.time()) - 3600}, 401, "expired"),
    ],
)
def test_the_task_still_checks_the_claims_of_a_checked_token(
    tasks_client: FlaskClient,
    key: SigningKey,
    case: str,
    changes: dict[str, Any],
    status: int,
    reason: str,
) -> None:
    stripped = strip_signature(key.sign({**claims(SCHEDULER, AUDIENCE), **changes}))
    response = tasks_client.post("/tasks/refresh", headers=bearer(stripped))
    assert response.status_code == status, (case, response.get_json())
    assert reason in response.get_json()["error"]


def test_the_task_refuses_what_the_api_refuses(
    tasks_client: FlaskClient, other_key: SigningKey
) -> None:
    for headers in (
        {},
        {"Authorization": "x"},
        bearer(other_key.sign(claims(SCHEDULER, AUDIENCE))),
    ):
        assert tasks_client.post("/tasks/refresh", headers=headers).status_code == 401
