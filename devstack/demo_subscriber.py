"""A demo of the provider's business service: a Pub/Sub push endpoint and a reply route.

``make dev`` runs it behind a push subscription on the Pub/Sub emulator and a ``reply``
route, and the delivery tests use it as their subscriber. What a real subscriber does, in
little:

- ``POST /push``: a Pub/Sub push (``{"message": {"data": <base64 envelope>, "attributes":
  {…}, "messageId": …}, "subscription": …}``). Pub/Sub delivers at least once, so it dedupes
  by the envelope's ``dedup_key`` and answers 204 (acknowledged) either way; any other
  answer makes Pub/Sub push it again later.
- ``POST /reply``: the envelope itself, from a ``reply`` route; a text message is answered
  ``{"msgtype": "text", "content": "你说：…"}``, anything else 204 (no reply). ``?delay=S``
  sleeps first, to watch what a late reply does (the user sees nothing wrong).
- ``GET /received``: what came in, newest last (``?via=push`` or ``reply``), for tests.

Run: ``python -m devstack.demo_subscriber --port 8082``. Logs JSON lines to stderr.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import logging
import threading
import time
from collections import OrderedDict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from service.jsonlog import configure_logging

log = logging.getLogger("demo_subscriber")

KEEP = 10_000  # received entries kept for GET /received
SEEN = 100_000  # dedup keys remembered; a real service keeps them in its database


class Inbox:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received: deque[dict[str, Any]] = deque(maxlen=KEEP)
        self._seen: OrderedDict[str, None] = OrderedDict()

    def add(self, via: str, envelope: dict[str, Any], **extra: Any) -> bool:
        """Record an envelope; True if its dedup_key was seen before."""
        key = str(envelope.get("dedup_key"))
        with self._lock:
            duplicate = key in self._seen
            self._seen[key] = None
            self._seen.move_to_end(key)
            while len(self._seen) > SEEN:
                self._seen.popitem(last=False)
            self.received.append(
                {"via": via, "envelope": envelope, "duplicate": duplicate, **extra}
            )
        log.info(
            "received",
            extra={
                "via": via,
                "duplicate": duplicate,
                "source": envelope.get("source"),
                "authorizer_appid": envelope.get("authorizer_appid"),
                "msg_type": envelope.get("msg_type"),
                "event": envelope.get("event"),
                "info_type": envelope.get("info_type"),
                "content": (envelope.get("fields") or {}).get("Content"),
                "dedup_key": key,
            },
        )
        return duplicate

    def listing(self, via: str | None) -> list[dict[str, Any]]:
        with self._lock:
            return [entry for entry in self.received if via is None or entry["via"] == via]


class BadRequest(ValueError):
    pass


def push_envelope(body: bytes) -> tuple[dict[str, Any], dict[str, str], str]:
    """The envelope, attributes and message id of a Pub/Sub push body."""
    try:
        push = json.loads(body)
        message = push["message"]
        envelope = json.loads(base64.b64decode(message["data"], validate=True))
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise BadRequest(f"not a Pub/Sub push of an envelope: {type(exc).__name__}") from None
    if not isinstance(envelope, dict):
        raise BadRequest("the message's data is not a JSON object")
    return envelope, dict(message.get("attributes") or {}), str(message.get("messageId"))


def reply_for(envelope: dict[str, Any]) -> dict[str, str] | None:
    content = (envelope.get("fields") or {}).get("Content")
    if envelope.get("msg_type") == "text" and isinstance(content, str):
        return {"msgtype": "text", "content": f"你说：{content}"}
    return None


def make_handler(inbox: Inbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/healthz":
                self._send(200, {"status": "ok"})
            elif url.path == "/received":
                via = parse_qs(url.query).get("via", [None])[0]
                self._send(200, {"received": inbox.listing(via)})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                if url.path == "/push":
                    envelope, attributes, message_id = push_envelope(body)
                    inbox.add("push", envelope, attributes=attributes, message_id=message_id)
                    self._send(204, None)
                elif url.path == "/reply":
                    self._reply(body, parse_qs(url.query))
                else:
                    self._send(404, {"error": "not found"})
            except BadRequest as exc:
                log.warning("bad request", extra={"path": url.path, "error": str(exc)})
                self._send(400, {"error": str(exc)})

        def _reply(self, body: bytes, query: dict[str, list[str]]) -> None:
            try:
                envelope = json.loads(body)
                delay = float(query.get("delay", ["0"])[0])
            except ValueError as exc:
                raise BadRequest(f"not an envelope: {type(exc).__name__}") from None
            if not isinstance(envelope, dict):
                raise BadRequest("the envelope is not a JSON object")
            inbox.add("reply", envelope)
            time.sleep(max(0.0, min(delay, 30.0)))
            answer = reply_for(envelope)
            self._send(200, answer) if answer else self._send(204, None)

        def _send(self, status: int, payload: Any) -> None:
            data = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one JSON line per envelope instead

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo_subscriber", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    configure_logging()
    server = ThreadingHTTPServer((args.host, args.port), make_handler(Inbox()))
    server.daemon_threads = True
    log.info("demo subscriber listening", extra={"port": args.port})
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
