"""The local stack's parts: mock WeChat, the service under gunicorn, and a demo component.

``make dev`` and the end-to-end tests start the same processes the same way.
"""

from __future__ import annotations

import json
import os
import secrets
import string
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

from devstack.processes import ManagedProcess, start_process
from service.config import COMPONENT_APPIDS_VAR, COMPONENT_VARS, ComponentConfig

REPO = Path(__file__).resolve().parent.parent


def start_mock(port: int, log_path: Path, host: str = "127.0.0.1") -> ManagedProcess:
    process = start_process(
        "mock WeChat",
        [sys.executable, "-m", "mock_wechat", "serve", "--host", host, "--port", str(port)],
        log_path,
        cwd=REPO,
    )
    process.wait_http(f"http://{host}:{port}/_mock/healthz")
    return process


def start_demo_subscriber(port: int, log_path: Path, host: str = "127.0.0.1") -> ManagedProcess:
    """The demo business service (``devstack.demo_subscriber``): push and reply endpoints."""
    process = start_process(
        "demo subscriber",
        [sys.executable, "-m", "devstack.demo_subscriber", "--host", host, "--port", str(port)],
        log_path,
        cwd=REPO,
    )
    process.wait_http(f"http://{host}:{port}/healthz")
    return process


DEMO_TOPIC = "wechat-messages"
DEMO_SUBSCRIPTION = "demo-subscriber"


def demo_routes(subscriber_url: str, topic: str = DEMO_TOPIC) -> str:
    """MESSAGE_ROUTES for the local stack: users' texts to the reply route, all else to Pub/Sub."""
    return json.dumps(
        [
            {
                "name": "answer-texts",
                "match": {"source": ["messages"], "msg_type": ["text"]},
                "reply": f"{subscriber_url}/reply",
            },
            {"name": "everything-else", "pubsub": topic},
        ]
    )


def start_service(
    port: int,
    env: Mapping[str, str],
    log_path: Path,
    workers: int = 2,
    threads: int = 4,
    host: str = "127.0.0.1",
    worker_connections: int | None = None,
    app: str = "service:create_app()",
    ready_path: str = "/healthz",
    name: str = "service (gunicorn)",
) -> ManagedProcess:
    """gunicorn with ``app`` (the service by default), ready once ``ready_path`` answers 200.

    ``worker_connections`` caps how many connections one worker accepts at a time, so a
    burst of requests spreads over the workers instead of queueing in one. Another ``app``
    runs under the very same settings (the benchmarks' baseline does).
    """
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        str(REPO / "service" / "gunicorn_conf.py"),
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        *(["--worker-connections", str(worker_connections)] if worker_connections else []),
        app,
    ]
    process = start_process(name, argv, log_path, env={**os.environ, **env}, cwd=REPO)
    process.wait_http(f"http://{host}:{port}{ready_path}")
    return process


def _random_text(length: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def demo_component() -> ComponentConfig:
    """A freshly made-up third-party platform, to register in both the mock and the service."""
    return ComponentConfig(
        appid="wx" + secrets.token_hex(8),
        secret=_random_text(32, "0123456789abcdef"),
        token=_random_text(32),
        encoding_aes_key=_random_text(43),
    )


def components_env(*components: ComponentConfig) -> str:
    """The value of WECHAT_COMPONENTS for the service."""
    return json.dumps(
        [
            {
                "appid": c.appid,
                "secret": c.secret,
                "token": c.token,
                "encoding_aes_key": c.encoding_aes_key,
            }
            for c in components
        ]
    )


def component_variables(*components: ComponentConfig) -> dict[str, str]:
    """The same components in the form Cloud Run mounts them: one variable per secret."""
    env = {COMPONENT_APPIDS_VAR: ",".join(c.appid for c in components)}
    for c in components:
        values = {"secret": c.secret, "token": c.token, "encoding_aes_key": c.encoding_aes_key}
        for key, value in values.items():
            env[COMPONENT_VARS[key].format(appid=c.appid.upper())] = value
    return env


def service_env(
    components: list[ComponentConfig],
    service_url: str,
    mock_url: str,
    project: str,
    firestore_host: str,
    api_key: str,
) -> dict[str, str]:
    """The service's environment when the mock stands in for every WeChat host."""
    return {
        "WECHAT_COMPONENTS": components_env(*components),
        "WECHAT_API_BASE": mock_url,
        "WECHAT_MP_BASE": mock_url,
        "WECHAT_OPEN_BASE": mock_url,
        "PUBLIC_BASE_URL": service_url,
        "GOOGLE_CLOUD_PROJECT": project,
        "FIRESTORE_EMULATOR_HOST": firestore_host,
        "SERVICE_API_KEYS": api_key,
    }


# Merchants to play locally: one per account type the authorization pages list. Two admins,
# so a page with biz_appid can be tried with the wrong one.
DEMO_ADMIN = "demo-admin"
DEMO_MERCHANTS: list[dict[str, Any]] = [
    {"type": "official_account", "nick_name": "示例公众号", "principal_name": "示例科技有限公司"},
    {"type": "mini_program", "nick_name": "示例小程序", "principal_name": "示例科技有限公司"},
    {"type": "channels", "nick_name": "示例视频号", "principal_name": "示例科技有限公司"},
    {"type": "talent", "nick_name": "示例带货助手", "principal_name": "示例科技有限公司"},
    {"type": "promoter", "nick_name": "示例推客", "principal_name": "示例科技有限公司"},
    {
        "type": "official_account",
        "nick_name": "另一家的公众号",
        "principal_name": "另一家有限公司",
        "admin": "other-admin",
    },
]


def create_demo_merchants(control: MockControl) -> list[dict[str, Any]]:
    return [
        control.create_account({"admin": DEMO_ADMIN, **merchant}) for merchant in DEMO_MERCHANTS
    ]


# Scene 2's group: its headquarters' account makes the group's open platform account through
# the gateway (open/create), as only one made through the API can be bound to by the API.
DEMO_GROUP_HQ = {
    "type": "official_account",
    "nick_name": "示例集团总部",
    "principal_name": "示例科技有限公司",
    "admin": DEMO_ADMIN,
}


def open_group_account(
    control: MockControl, service_url: str, api_key: str, component_appid: str
) -> tuple[str, str]:
    """The group's headquarters authorizes ``component_appid`` (headless), and the gateway
    creates its open platform account: (the headquarters' appid, the open_appid)."""
    auth = {"Authorization": f"Bearer {api_key}"}
    hq: str = control.create_account(DEMO_GROUP_HQ)["appid"]
    base = f"{service_url}/api/v1/components/{component_appid}"
    links = requests.post(
        f"{base}/authorize-links", json={"auth_type": 1}, headers=auth, timeout=30
    )
    if links.status_code != 201:
        raise RuntimeError(f"authorize-links answered {links.status_code}: {links.text[:200]}")
    request = {
        "component_appid": component_appid,
        "pre_auth_code": links.json()["pre_auth_code"],
        "authorizer_appid": hq,
    }
    pushed = control.authorize(request)["push"]
    if not pushed or not pushed.get("delivered"):
        raise RuntimeError(f"the group's authorization push was not delivered: {pushed}")
    created = requests.post(
        f"{base}/authorizers/{hq}/open-account", json={"action": "create"}, headers=auth, timeout=30
    )
    if created.status_code != 201:
        raise RuntimeError(f"open-account create answered {created.status_code}: {created.text}")
    open_appid: str = created.json()["open_appid"]
    return hq, open_appid


def mock_registration(
    component: ComponentConfig,
    event_url: str,
    auth_domain: str,
    message_url: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The body of the mock's ``POST /_mock/components`` for the same component.

    ``message_url`` is the 消息与事件接收URL, with ``$APPID$`` where the account's appid goes.
    """
    body: dict[str, Any] = {
        "appid": component.appid,
        "secret": component.secret,
        "token": component.token,
        "encoding_aes_key": component.encoding_aes_key,
        "event_url": event_url,
        "auth_domain": auth_domain,
        **extra,
    }
    if message_url is not None:
        body["message_url"] = message_url
    return body


class MockControl:
    """A client for mock WeChat's control plane (``/_mock/``)."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def _call(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
        response = self.session.request(
            method, f"{self.base_url}/_mock{path}", json=body, timeout=timeout or self.timeout
        )
        if response.status_code >= 400:
            raise RuntimeError(f"mock {method} {path}: {response.status_code} {response.text}")
        return response.json()

    def register_component(self, registration: Mapping[str, Any]) -> Any:
        return self._call("POST", "/components", dict(registration))

    def push_ticket(self, appid: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/components/{appid}/push-ticket")
        return result

    def calls(self, api: str | None = None) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = self._call("GET", "/calls")["calls"]
        return [c for c in calls if api is None or c["api"] == api]

    def set_faults(self, rules: list[dict[str, Any]]) -> Any:
        return self._call("POST", "/faults", {"rules": rules})

    def reset(self) -> Any:
        return self._call("POST", "/reset")

    def update_component(self, appid: str, patch: Mapping[str, Any]) -> Any:
        return self._call("PATCH", f"/components/{appid}", dict(patch))

    def seed_authorizers(
        self, component: str, count: int, kind: str = "official_account"
    ) -> list[dict[str, str]]:
        """``count`` new accounts authorized to ``component``, codes already exchanged
        (no pushes): ``[{"authorizer_appid", "refresh_token"}, ...]``."""
        body = {"count": count, "type": kind}
        seeded: list[dict[str, str]] = self._call(
            "POST", f"/components/{component}/authorizers/seed", body
        )["authorizers"]
        return seeded

    def create_account(self, account: Mapping[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = self._call("POST", "/accounts", dict(account))
        return created

    def account(self, appid: str) -> dict[str, Any]:
        found: dict[str, Any] = self._call("GET", f"/accounts/{appid}")
        return found

    def authorize(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The merchant's confirmation, headless (``POST /_mock/authorize``)."""
        result: dict[str, Any] = self._call("POST", "/authorize", dict(request))
        return result

    def unauthorize(self, account: str, component: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", f"/accounts/{account}/unauthorize", {"component_appid": component}
        )
        return result

    def update_authorization(
        self, account: str, component: str, category_ids: list[int]
    ) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST",
            f"/accounts/{account}/update-authorization",
            {"component_appid": component, "category_ids": category_ids},
        )
        return result

    def pushes(self) -> list[dict[str, Any]]:
        pushes: list[dict[str, Any]] = self._call("GET", "/pushes")["pushes"]
        return pushes

    def redeliver(self, index: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/pushes/redeliver", {"index": index})
        return result

    def release_held(self) -> Any:
        return self._call("POST", "/pushes/release")

    def send_message(
        self,
        account: str,
        component: str,
        msg_type: str = "text",
        content: str | None = None,
        event: str | None = None,
        from_user: str | None = None,
        fields: Mapping[str, str | int] | None = None,
        msg_id: str | None = None,
        create_time: int | None = None,
    ) -> dict[str, Any]:
        """A user's message or event to ``account``, delivered to the component's
        message_url as WeChat does; the delivery record once its answer is judged."""
        given = {
            "content": content,
            "event": event,
            "from_user": from_user,
            "fields": dict(fields) if fields else None,
            "msg_id": msg_id,
            "create_time": create_time,
        }
        body = {
            "component_appid": component,
            "msg_type": msg_type,
            **{k: v for k, v in given.items() if v is not None},
        }
        # Three 5 s tries and any fault delays: more than the default timeout.
        record: dict[str, Any] = self._call(
            "POST", f"/authorizers/{account}/messages", body, timeout=120
        )
        return record

    def account_messages(self, account: str) -> list[dict[str, Any]]:
        """The deliveries to ``account``, oldest first."""
        records: list[dict[str, Any]] = self._call("GET", f"/authorizers/{account}/messages")[
            "messages"
        ]
        return records

    def release_check(
        self,
        component: str,
        group: int | None = None,
        all_groups: bool = False,
        send_deadline: float | None = None,
    ) -> dict[str, Any]:
        """Run the 全网发布 check: ``{"component_appid", "groups", "passed", "steps"}``."""
        body: dict[str, Any] = {}
        if group is not None:
            body["group"] = group
        if all_groups:
            body["all_groups"] = True
        if send_deadline is not None:
            body["send_deadline"] = send_deadline
        report: dict[str, Any] = self._call(
            "POST", f"/components/{component}/release-check", body, timeout=3600
        )
        return report
