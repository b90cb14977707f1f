"""Test helpers: a push receiver, a mock client, shared state-test values, an HTML reader."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from devstack import stack
from devstack.processes import ManagedProcess, free_port
from mock_wechat import merchant_client
from mock_wechat.config import ComponentConfig
from mock_wechat.errcodes import MockApiError

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID = "wx0123456789abcdef"
SECRET = "component-secret-value-7f3a"
TOKEN = "push-token-value-91c2"
T0 = 1_700_000_000.0  # the fixed wall time of the in-process state tests
OTHER = "wxfedcba9876543210"  # a second appid


def config(appid: str = APPID, **overrides: Any) -> ComponentConfig:
    """A component's registration for the in-process state, with ``overrides`` applied."""
    fields: dict[str, Any] = {
        "appid": appid,
        "secret": SECRET,
        "token": TOKEN,
        "encoding_aes_key": AES_KEY,
        "event_url": "http://127.0.0.1:9/events",
        "auth_domain": "provider.example.com",
    }
    fields.update(overrides)
    return ComponentConfig(**fields)


def serve_in_thread(
    handler: type[http.server.BaseHTTPRequestHandler],
) -> http.server.ThreadingHTTPServer:
    """A threaded HTTP server on a free loopback port, serving in a daemon thread."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server


def errcode_of(call: Callable[[], object]) -> int:
    """The errcode of the ``MockApiError`` that ``call()`` raises."""
    with pytest.raises(MockApiError) as info:
        call()
    return info.value.errcode


def start_mock(log_path: Path) -> tuple[ManagedProcess, str]:
    """``python -m mock_wechat serve`` on a free port, in its own process group, ready."""
    port = free_port()
    return stack.start_mock(port, log_path), f"http://127.0.0.1:{port}"


def wait_until(check: Callable[[], bool], timeout: float = 5.0, every: float = 0.02) -> bool:
    """Poll ``check`` until it is true or ``timeout`` passes; returns the last result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return check()


@dataclass(frozen=True)
class ReceivedPush:
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    received_at: float  # real time.time()


class Receiver:
    """A 授权事件接收URL on 127.0.0.1 that records pushes and answers ``reply``.

    ``on_push``, if set, runs in the handler before the reply, as a real push handler
    that calls back into the mock would.
    """

    def __init__(self) -> None:
        self.reply = b"success"
        self.status = 200
        self.on_push: Callable[[ReceivedPush], None] | None = None
        self._pushes: list[ReceivedPush] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                push = ReceivedPush(query, dict(self.headers.items()), body, time.time())
                with receiver._lock:
                    receiver._pushes.append(push)
                    status, reply = receiver.status, receiver.reply
                if receiver.on_push is not None:
                    receiver.on_push(push)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = serve_in_thread(Handler)
        self.port = self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/wechat/events"

    def pushes(self) -> list[ReceivedPush]:
        with self._lock:
            return list(self._pushes)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedPush]:
        wait_until(lambda: len(self.pushes()) >= count, timeout)
        pushes = self.pushes()
        assert len(pushes) >= count, f"expected {count} pushes, got {len(pushes)}"
        return pushes

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class MockClient:
    """Thin JSON client for a running mock (control plane and WeChat APIs)."""

    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str) -> Any:
        response = requests.get(self.base + path, timeout=10)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any = None) -> Any:
        response = requests.post(self.base + path, json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def register(self, event_url: str, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "appid": APPID,
            "secret": SECRET,
            "token": TOKEN,
            "encoding_aes_key": AES_KEY,
            "event_url": event_url,
            "auth_domain": "provider.example.com",
            "auto_push": False,
        }
        body.update(overrides)
        response = requests.post(self.base + "/_mock/components", json=body, timeout=10)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def api(
        self, name: str, body: Any, params: dict[str, str] | None = None, **kwargs: Any
    ) -> requests.Response:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return requests.post(
            f"{self.base}/cgi-bin/component/{name}",
            params=params,
            data=data,
            timeout=kwargs.pop("timeout", 10),
            **kwargs,
        )

    def ticket(self, appid: str = APPID) -> str:
        result = self.post(f"/_mock/components/{appid}/push-ticket")
        ticket: str = result["ticket"]
        return ticket

    def component_token(self, appid: str = APPID, secret: str = SECRET) -> str:
        body = {
            "component_appid": appid,
            "component_appsecret": secret,
            "component_verify_ticket": self.ticket(appid),
        }
        answer = self.api("api_component_token", body).json()
        assert "component_access_token" in answer, answer
        token: str = answer["component_access_token"]
        return token


def html_page(text: str) -> merchant_client.Page:
    """An HTML page's elements, parsed as the headless merchant parses them."""
    return merchant_client.parse_page("", 200, text)
