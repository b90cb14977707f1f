"""The token API benchmark's baseline: a WSGI app that answers a fixed small JSON body.

Served by gunicorn with the service's own settings, it shows what the server, the
loopback network and the load generator cost before the service does any work.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

# Shaped like the token API's answer (an access token is ~123 characters).
BODY = json.dumps({"access_token": "00_" + "x" * 120, "expires_at": 1_900_000_000}).encode()
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    environ["wsgi.input"].read()  # a keep-alive connection needs the body consumed
    start_response("200 OK", HEADERS)
    return [BODY]
