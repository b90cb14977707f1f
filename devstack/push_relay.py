"""A stand-in for Cloud Run's front door in front of several service processes.

A push subscription has one endpoint; in the cloud, Cloud Run spreads its pushes over the
instances and checks the push's OIDC token. Locally this relay does both: round robin over
``targets`` (a list read at each push, so the fleet can change meanwhile), with the
internal API's bearer key added. A target that cannot be reached answers 502 (Pub/Sub
redelivers) and is skipped from then on, as Cloud Run stops routing to a dead instance.
"""

from __future__ import annotations

import http.server
import itertools
import threading
from typing import Any

import requests

from devstack.processes import free_port


class PushRelay:
    def __init__(self, targets: list[str], authorization: str, timeout: float) -> None:
        self.targets = targets
        self.down: set[str] = set()
        turns = itertools.count()
        lock = threading.Lock()
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    up = [t for t in relay.targets if t not in relay.down] or relay.targets
                    target = up[next(turns) % len(up)]
                try:
                    answer = requests.post(
                        target + self.path,
                        data=body,
                        headers={
                            "Content-Type": "application/json",
                            "Authorization": authorization,
                        },
                        timeout=timeout,
                    )
                    status, text = answer.status_code, answer.content
                except requests.RequestException:
                    with lock:
                        relay.down.add(target)
                    status, text = 502, b"instance unreachable"
                self.send_response(status)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
