"""A small stand-in for a service's two URLs, answering mock WeChat's release check.

It checks every push as a real receiver must (signature, msg_signature, decryption with
the component's key and appid) and answers as the release check asks, or, with ``mode``,
breaks one rule:

- ``correct``: passive encrypted replies; ``QUERY_AUTH_CODE:`` answered empty at once,
  then api_query_auth and the custom message from a background thread; retries of a
  MsgId already handled are answered the same way without calling anything again;
- ``plain``: passive replies in plaintext XML (not encrypted);
- ``no_callback``: the text probe's reply drops ``_callback``;
- ``send_first``: the code is exchanged and the custom message sent before answering;
- ``exchange_twice``: api_query_auth is called twice with the code (the second is 61010);
- ``json``: every message is answered with JSON (the API calls still happen);
- ``slow``: the text probe is answered after ``slow`` seconds, every time.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from flask import Flask
from werkzeug.serving import make_server

from devstack.processes import free_port
from service.wechat.crypto import MessageCrypto
from service.wechat.messages import build_xml, parse_envelope, parse_xml
from service.wechat.release_accounts import (
    API_REPLY_SUFFIX,
    EVENT_REPLY_SUFFIX,
    QUERY_AUTH_CODE_PREFIX,
    TEXT_PROBE,
    TEXT_REPLY,
)
from tests.mock_wechat.helpers import AES_KEY, APPID, SECRET, TOKEN, serve_in_thread

MODES = ("correct", "plain", "no_callback", "send_first", "exchange_twice", "json", "slow")


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """The mock's app on a free port in this process (threaded, like the real server)."""
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


class Responder:
    def __init__(self, mock_base: str, mode: str = "correct", slow: float = 0.0) -> None:
        if mode not in MODES:
            raise ValueError(mode)
        self.mock_base = mock_base
        self.mode = mode
        self.slow = slow
        self.crypto = MessageCrypto(TOKEN, AES_KEY, APPID)
        self.errors: list[str] = []  # anything a check here refused, for the test to assert on
        self._ticket: str | None = None
        self._handled: set[str] = set()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        responder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                try:
                    if parts.path == "/events":
                        status, reply = 200, responder.on_event(query, body)
                    else:
                        appid = parts.path.rsplit("/", 1)[-1]
                        status, reply = 200, responder.on_message(appid, query, body)
                except Exception as exc:  # a refused push: answer 400 and remember why
                    responder.errors.append(f"{type(exc).__name__}: {exc}")
                    status, reply = 400, b"refused"
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = serve_in_thread(Handler)
        self.port = self._server.server_address[1]

    @property
    def event_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    @property
    def message_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/wechat/messages/$APPID$"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        for worker in self._workers:
            worker.join(10)

    # ----- receiving ----------------------------------------------------------------

    def _open(self, query: dict[str, str], body: bytes) -> tuple[dict[str, str], dict[str, str]]:
        """The envelope's and the decrypted message's fields, checked as a receiver must."""
        assert query["encrypt_type"] == "aes"
        self.crypto.verify_signature(query["signature"], query["timestamp"], query["nonce"])
        envelope = parse_envelope(body)
        plain = self.crypto.verify_and_decrypt(
            query["msg_signature"], query["timestamp"], query["nonce"], envelope.encrypt
        )
        return parse_xml(body), parse_xml(plain.message)

    def on_event(self, query: dict[str, str], body: bytes) -> bytes:
        _, message = self._open(query, body)
        if message["InfoType"] == "component_verify_ticket":
            with self._lock:
                self._ticket = message["ComponentVerifyTicket"]
        return b"success"

    def on_message(self, appid: str, query: dict[str, str], body: bytes) -> bytes:
        envelope, message = self._open(query, body)
        assert envelope["ToUserName"] == message["ToUserName"]
        assert query["openid"] == message["FromUserName"]
        key = message.get("MsgId") or message["FromUserName"] + message["CreateTime"]
        with self._lock:
            retry = key in self._handled
            self._handled.add(key)
        if self.mode == "json":
            if not retry:
                self._maybe_api(message, background=True)
            return b'{"errcode":0,"errmsg":"ok"}'
        content = message.get("Content", "")
        if message["MsgType"] == "event":
            return self._reply(message, message["Event"] + EVENT_REPLY_SUFFIX)
        if content == TEXT_PROBE:
            if self.mode == "slow":
                time.sleep(self.slow)
            return self._reply(message, TEXT_PROBE if self.mode == "no_callback" else TEXT_REPLY)
        if content.startswith(QUERY_AUTH_CODE_PREFIX) and not retry:
            self._maybe_api(message, background=self.mode != "send_first")
        return b""

    # ----- answering ----------------------------------------------------------------

    def _reply(self, message: dict[str, str], content: str) -> bytes:
        reply = build_xml(
            {
                "ToUserName": message["FromUserName"],
                "FromUserName": message["ToUserName"],
                "CreateTime": int(time.time()),
                "MsgType": "text",
                "Content": content,
            }
        )
        if self.mode == "plain":
            return reply.encode()
        timestamp, nonce = str(int(time.time())), "1320562132"
        sealed = self.crypto.seal(reply, timestamp, nonce)
        envelope = {
            "Encrypt": sealed.encrypt,
            "MsgSignature": sealed.msg_signature,
            "TimeStamp": int(timestamp),
            "Nonce": nonce,
        }
        return build_xml(envelope).encode()

    def _maybe_api(self, message: dict[str, str], background: bool) -> None:
        content = message.get("Content", "")
        if not content.startswith(QUERY_AUTH_CODE_PREFIX):
            return
        code = content[len(QUERY_AUTH_CODE_PREFIX) :]
        openid = message["FromUserName"]
        if not background:
            self._exchange_and_send(code, openid)
            return
        worker = threading.Thread(target=self._exchange_and_send, args=(code, openid))
        self._workers.append(worker)
        worker.start()

    def _exchange_and_send(self, code: str, openid: str) -> None:
        try:
            token = self._query_auth(code)
            if self.mode == "exchange_twice":
                self._query_auth(code, expect_ok=False)
            message = {
                "touser": openid,
                "msgtype": "text",
                "text": {"content": code + API_REPLY_SUFFIX},
            }
            sent = requests.post(
                f"{self.mock_base}/cgi-bin/message/custom/send",
                params={"access_token": token},
                data=json.dumps(message),
                timeout=10,
            ).json()
            assert sent["errcode"] == 0, sent
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def _query_auth(self, code: str, expect_ok: bool = True) -> str:
        body = {"component_appid": APPID, "authorization_code": code}
        answer = requests.post(
            f"{self.mock_base}/cgi-bin/component/api_query_auth",
            params={"component_access_token": self._component_token()},
            data=json.dumps(body),
            timeout=10,
        ).json()
        if not expect_ok:
            return ""
        token: str = answer["authorization_info"]["authorizer_access_token"]
        return token

    def _component_token(self) -> str:
        with self._lock:
            ticket = self._ticket
        assert ticket is not None, "no ticket pushed yet"
        body = {
            "component_appid": APPID,
            "component_appsecret": SECRET,
            "component_verify_ticket": ticket,
        }
        answer = requests.post(
            f"{self.mock_base}/cgi-bin/component/api_component_token",
            data=json.dumps(body),
            timeout=10,
        ).json()
        token: str = answer["component_access_token"]
        return token
