"""One image, two services: started with SERVICE_ROLE=public or internal, gunicorn serves only
that role's routes, and the two together run the whole flow.

Both are configured as Cloud Run configures them: one variable per secret, and the internal
one trusting Cloud Run's IAM (INTERNAL_AUTH=cloud_run_iam) instead of API keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from devstack.processes import ManagedProcess, free_port
from devstack.stack import component_variables, service_env, start_service
from tests.e2e.helpers import ADMIN, create_merchant, stored_authorizer
from tests.stack import E2E_PROJECT, Stack

pytestmark = pytest.mark.e2e

# What Cloud Run puts in front of the internal service: a caller's identity token, already
# checked against roles/run.invoker before the request reaches the container.
IDENTITY = {"Authorization": "Bearer header.payload.signature"}


@dataclass
class Roles:
    public: str
    internal: str


def _start(role: str, stack: Stack, public_url: str, port: int, log: Path) -> ManagedProcess:
    env = {
        **service_env(
            [stack.demo], public_url, stack.mock_url, E2E_PROJECT, stack.firestore_host, ""
        ),
        "WECHAT_COMPONENTS": "",
        **component_variables(stack.demo),
        "SERVICE_ROLE": role,
        "INTERNAL_AUTH": "cloud_run_iam" if role == "internal" else "api_key",
    }
    return start_service(port, env, log, workers=1, name=f"{role} service (gunicorn)")


@pytest.fixture(scope="module")
def services(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Roles]:
    logs = tmp_path_factory.mktemp("role-logs")
    public_port, internal_port = free_port(), free_port()
    public_url = f"http://127.0.0.1:{public_port}"
    public = _start("public", stack, public_url, public_port, logs / "public.log")
    try:
        internal = _start("internal", stack, public_url, internal_port, logs / "internal.log")
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
        headers={**IDENTITY, **e2e.auth},
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
        method, roles.internal + path.format(c=e2e.demo.appid), headers=IDENTITY, timeout=10
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
    assert "identity token" in bare.json()["error"]
    # Cloud Run's other header for the token, which leaves Authorization to the caller.
    serverless = requests.get(
        api(roles, e2e, "/authorizers"),
        headers={"X-Serverless-Authorization": "Bearer header.payload.signature"},
        timeout=10,
    )
    assert serverless.status_code == 200, serverless.text


def test_the_two_roles_together_run_the_authorization_flow(e2e: Stack, roles: Roles) -> None:
    # WeChat's ticket push reaches the public service, which answers "success".
    assert e2e.mock.push_ticket(e2e.demo.appid)["delivered"] is True
    # Cloud Scheduler's sweep on the internal service turns it into a component token.
    sweep = requests.post(f"{roles.internal}/tasks/refresh", headers=IDENTITY, timeout=30)
    assert sweep.status_code == 200, sweep.text
    assert sweep.json()["components"][e2e.demo.appid]["component_token"] == "renewed"

    # The provider asks the internal service for a link; its callback is on the public one.
    links = requests.post(
        api(roles, e2e, "/authorize-links"), json={"auth_type": 3}, headers=IDENTITY, timeout=30
    )
    assert links.status_code == 201, links.text
    redirect_uri = parse_qs(urlsplit(links.json()["pc_url"]).query)["redirect_uri"][0]
    assert redirect_uri == f"{roles.public}/authorize/{e2e.demo.appid}/callback"
    # The merchant's entry page on the public service issues its own link (Referer check).
    entry = requests.get(f"{roles.public}/authorize/{e2e.demo.appid}?auth_type=1", timeout=30)
    assert entry.status_code == 200 and "componentloginpage" in entry.text

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
        api(roles, e2e, f"/authorizers/{appid}/token"), headers=IDENTITY, timeout=30
    )
    assert token.status_code == 200, token.text
    assert token.json()["access_token"]
