"""One image, two services: started with SERVICE_ROLE=public or internal, gunicorn serves only
that role's routes, and the two together run the whole flow.

Both are configured as Cloud Run configures them: one variable per secret, and the internal
one taking Google ID tokens (INTERNAL_AUTH=cloud_run_iam) instead of API keys, which it
verifies itself: here against the test's own signing key, whose certificate this test
serves in place of Google's (ID_TOKEN_CERTS_URL).
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from devstack.processes import ManagedProcess, free_port
from devstack.stack import component_variables, service_env, start_service
from tests.e2e.helpers import ADMIN, create_merchant, stored_authorizer
from tests.service.google_keys import CertsServer, SigningKey, claims, strip_signature
from tests.stack import E2E_PROJECT, Stack

pytestmark = pytest.mark.e2e

# The internal service's audience (its URL on Cloud Run) and the callers it lets in.
AUDIENCE = "https://wcg-e2e-internal-123456789012.asia-east2.run.app"
SCHEDULER = "wcg-e2e-scheduler@gateway-e2e.iam.gserviceaccount.com"
ORDERS = "orders@gateway-e2e.iam.gserviceaccount.com"
KEY = SigningKey("e2e-key")


def identity(email: str = ORDERS) -> dict[str, str]:
    """A caller's headers as they reach the container behind Cloud Run: the token Cloud Run
    checked (X-Serverless-Authorization) without its signature, the copy in Authorization
    as sent."""
    token = KEY.sign(claims(email, AUDIENCE))
    return {
        "X-Serverless-Authorization": f"Bearer {strip_signature(token)}",
        "Authorization": f"Bearer {token}",
    }


def scheduler_identity() -> dict[str, str]:
    """Cloud Scheduler's OIDC token as it reaches the container: Cloud Run checked it in
    Authorization and passed it on without its signature."""
    return {"Authorization": f"Bearer {strip_signature(KEY.sign(claims(SCHEDULER, AUDIENCE)))}"}


@dataclass
class Roles:
    public: str
    internal: str


def _start(
    role: str, stack: Stack, public_url: str, port: int, log: Path, certs_url: str
) -> ManagedProcess:
    env = {
        **service_env(
            [stack.demo], public_url, stack.mock_url, E2E_PROJECT, stack.firestore_host, ""
        ),
        "WECHAT_COMPONENTS": "",
        **component_variables(stack.demo),
        "SERVICE_ROLE": role,
        "INTERNAL_AUTH": "cloud_run_iam" if role == "internal" else "api_key",
    }
    if role == "internal":
        env["INTERNAL_AUDIENCE"] = AUDIENCE
        env["INTERNAL_INVOKERS"] = f"{SCHEDULER},{ORDERS}"
        env["ID_TOKEN_CERTS_URL"] = certs_url
    return start_service(port, env, log, workers=1, name=f"{role} service (gunicorn)")


@pytest.fixture(scope="module")
def certs() -> Iterator[CertsServer]:
    """Google's certificate endpoint, as far as the internal service knows."""
    with CertsServer(KEY).running() as server:
        yield server


@pytest.fixture(scope="module")
def services(
    stack: Stack, certs: CertsServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Roles]:
    logs = tmp_path_factory.mktemp("role-logs")
    public_port, internal_port = free_port(), free_port()
    public_url = f"http://127.0.0.1:{public_port}"
    public = _start("public", stack, public_url, public_port, logs / "public.log", certs.url)
    try:
        internal = _start(
            "internal", stack, public_url, internal_port, logs / "internal.log", certs.url
        )
    except Exception:
        public.stop()
        raise
    yield Roles(public=public_url, internal=f"http://127.0.0.1:{internal_port}")
    internal.stop()
    public.stop()


@pytest.fixture
def roles(e2e: Stack, services: Roles) -> Roles:
    # WeChat pushes to the public service, as the open platform console would be set up.
    e2e.mock.update_component(
        e2e.demo.appid, {"event_url": f"{services.public}/wechat/{e2e.demo.appid}/events"}
    )
    return services


def api(roles: Roles, stack: Stack, path: str) -> str:
    return f"{roles.internal}/api/v1/components/{stack.demo.appid}{path}"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/tasks/refresh"),
        ("GET", "/api/v1/components/{c}/authorizers"),
        ("POST", "/api/v1/components/{c}/authorize-links"),
        ("POST", "/api/v1/components/{c}/authorizers/wx0123456789abcdef/token"),
    ],
)
def test_the_public_service_refuses_internal_routes(
    e2e: Stack, roles: Roles, method: str, path: str
) -> None:
    response = requests.request(
        method,
        roles.public + path.format(c=e2e.demo.appid),
        headers={**identity(), **e2e.auth},
        timeout=10,
    )
    assert response.status_code == 404
    assert "served by the internal service" in response.json()["error"]
    assert e2e.mock.calls() == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/wechat/{c}/events"),
        ("GET", "/authorize/{c}"),
        ("GET", "/authorize/{c}/callback?auth_code=x&expires_in=3600"),
    ],
)
def test_the_internal_service_refuses_public_routes(
    e2e: Stack, roles: Roles, method: str, path: str
) -> None:
    response = requests.request(
        method, roles.internal + path.format(c=e2e.demo.appid), headers=identity(), timeout=10
    )
    assert response.status_code == 404
    assert "served by the public service" in response.json()["error"]


def test_public_healthz_says_only_that_it_is_up(e2e: Stack, roles: Roles) -> None:
    public = requests.get(f"{roles.public}/healthz", timeout=10)
    assert public.json() == {"status": "ok", "role": "public"}
    internal = requests.get(f"{roles.internal}/healthz", timeout=10).json()
    assert e2e.demo.appid in internal["components"]


def test_the_internal_service_needs_an_identity_token(e2e: Stack, roles: Roles) -> None:
    bare = requests.post(f"{roles.internal}/tasks/refresh", timeout=10)
    assert bare.status_code == 401
    assert "missing identity token" in bare.json()["error"]
    listing = api(roles, e2e, "/authorizers")
    # Behind Cloud Run: the checked token without its signature, the copy intact.
    assert requests.get(listing, headers=identity(), timeout=10).status_code == 200
    # Without Cloud Run in front (a copy deployed by hand, say): the token as sent.
    token = KEY.sign(claims(ORDERS, AUDIENCE))
    for header in ("Authorization", "X-Serverless-Authorization"):
        answer = requests.get(listing, headers={header: f"Bearer {token}"}, timeout=10)
        assert answer.status_code == 200, (header, answer.text)


def _forged(now: float) -> list[tuple[str, dict[str, str], int, str]]:
    other = SigningKey("e2e-key")  # the published key's id, another key
    good = claims(ORDERS, AUDIENCE)

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    return [
        ("Authorization: x", {"Authorization": "x"}, 401, "'Bearer <ID token>'"),
        ("not a token", bearer("header.payload.signature"), 401, "not a well-formed"),
        ("another key", bearer(other.sign(good)), 401, "signature does not verify"),
        (
            "another audience",
            bearer(KEY.sign(claims(ORDERS, "https://other-123.asia-east2.run.app"))),
            401,
            "another audience",
        ),
        (
            "expired",
            bearer(KEY.sign(claims(ORDERS, AUDIENCE, issued_at=now - 7200))),
            401,
            "expired",
        ),
        (
            "not Google's",
            bearer(KEY.sign(claims(ORDERS, AUDIENCE, issuer="https://evil.example"))),
            401,
            "not issued by Google",
        ),
        # Claims of an allowed caller with the signature Cloud Run would have removed: on
        # the API that proves nothing.
        ("signature removed", bearer(strip_signature(KEY.sign(good))), 401, "signature"),
        (
            "a caller not listed",
            bearer(KEY.sign(claims("intruder@gateway-e2e.iam.gserviceaccount.com", AUDIENCE))),
            403,
            "may not call the internal service",
        ),
    ]


def test_the_internal_service_refuses_every_other_token(e2e: Stack, roles: Roles) -> None:
    calls = [
        ("POST", api(roles, e2e, "/authorizers/wxfedcba9876543210/token")),
        ("GET", api(roles, e2e, "/authorizers")),
        ("POST", f"{roles.internal}/tasks/refresh"),
    ]
    for case, headers, status, reason in _forged(time.time()):
        # /tasks/* take a token without its signature on Cloud Run's word (see below).
        for method, url in calls[:2] if case == "signature removed" else calls:
            answer = requests.request(method, url, headers=headers, timeout=10)
            assert answer.status_code == status, (case, url, answer.text)
            assert reason in answer.json()["error"], (case, answer.text)
            sent = headers["Authorization"].partition(" ")[2]
            assert not sent or sent not in answer.text, case
    assert e2e.mock.calls() == []  # no sweep ran, no token was asked of WeChat


def test_the_refresh_task_takes_the_schedulers_token_as_cloud_run_passes_it(
    e2e: Stack, roles: Roles
) -> None:
    sweep = requests.post(
        f"{roles.internal}/tasks/refresh", headers=scheduler_identity(), timeout=30
    )
    assert sweep.status_code in (200, 503), sweep.text
    assert e2e.demo.appid in sweep.json()["components"]
    # Its claims are still checked: another caller's, or an expired one, is refused.
    stranger = strip_signature(KEY.sign(claims("intruder@x.iam.gserviceaccount.com", AUDIENCE)))
    answer = requests.post(
        f"{roles.internal}/tasks/refresh",
        headers={"Authorization": f"Bearer {stranger}"},
        timeout=10,
    )
    assert answer.status_code == 403, answer.text
    expired = strip_signature(KEY.sign(claims(SCHEDULER, AUDIENCE, issued_at=time.time() - 7200)))
    answer = requests.post(
        f"{roles.internal}/tasks/refresh",
        headers={"Authorization": f"Bearer {expired}"},
        timeout=10,
    )
    assert answer.status_code == 401, answer.text


def test_googles_certificates_are_fetched_once_per_worker(
    e2e: Stack, roles: Roles, certs: CertsServer
) -> None:
    before = certs.fetches
    for _ in range(5):
        answer = requests.get(api(roles, e2e, "/authorizers"), headers=identity(), timeout=10)
        assert answer.status_code == 200, answer.text
    assert certs.fetches - before <= 1  # one worker; fetched already by an earlier test


def test_the_two_roles_together_run_the_authorization_flow(e2e: Stack, roles: Roles) -> None:
    # WeChat's ticket push reaches the public service, which answers "success".
    assert e2e.mock.push_ticket(e2e.demo.appid)["delivered"] is True
    # Cloud Scheduler's sweep on the internal service turns it into a component token.
    sweep = requests.post(
        f"{roles.internal}/tasks/refresh", headers=scheduler_identity(), timeout=30
    )
    assert sweep.status_code == 200, sweep.text
    assert sweep.json()["components"][e2e.demo.appid]["component_token"] == "renewed"

    # The provider asks the internal service for a link; its callback is on the public one.
    links = requests.post(
        api(roles, e2e, "/authorize-links"), json={"auth_type": 3}, headers=identity(), timeout=30
    )
    assert links.status_code == 201, links.text
    redirect_uri = parse_qs(urlsplit(links.json()["pc_url"]).query)["redirect_uri"][0]
    assert redirect_uri == f"{roles.public}/authorize/{e2e.demo.appid}/callback"
    # The merchant's entry page on the public service links to its own route, which makes
    # the pre_auth_code on the click and sends the browser on to WeChat (Referer check).
    entry = requests.get(f"{roles.public}/authorize/{e2e.demo.appid}?auth_type=1", timeout=30)
    found = re.search(r'id="pc-link"[^>]*href="([^"]+)"', entry.text)
    assert entry.status_code == 200 and found is not None, entry.text
    link = urljoin(entry.url, html.unescape(found.group(1)))
    followed = requests.get(link, allow_redirects=False, timeout=30)
    assert followed.status_code == 302 and "componentloginpage" in followed.headers["Location"]

    # The merchant confirms; WeChat pushes `authorized` to the public service and sends the
    # browser to the public callback.
    appid = create_merchant(e2e)
    confirmed = e2e.mock.authorize(
        {
            "component_appid": e2e.demo.appid,
            "pre_auth_code": links.json()["pre_auth_code"],
            "authorizer_appid": appid,
            "admin": ADMIN,
            "redirect_uri": redirect_uri,
        }
    )
    assert confirmed["push"]["delivered"] is True
    callback = requests.get(confirmed["redirect_url"], timeout=30)
    assert callback.status_code == 200, callback.text
    assert stored_authorizer(e2e, appid).status == "authorized"

    # The provider's other services get the merchant's token from the internal service.
    token = requests.post(
        api(roles, e2e, f"/authorizers/{appid}/token"), headers=identity(), timeout=30
    )
    assert token.status_code == 200, token.text
    assert token.json()["access_token"]
