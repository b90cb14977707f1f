"""The token API's commonest answer, given before Flask: a stored token still good.

``POST /api/v1/components/<c>/authorizers/<a>/token`` is the internal API's hottest path
(the cost model's load is 10 a second per 10,000 authorizers), and almost every call is
a "cache hit": one Firestore read of three fields. Flask's request machinery around it
(request context, routing, the before-request guard, jsonify, after-request hooks) cost
about 0.6 ms of its 1.8 ms of service CPU (bench/README.md). So this WSGI wrapper answers
that case itself, and only that case:

- the caller is one the guard lets in (``service.web.auth.caller_accepted``), the
  component is configured and the appid looks like one (the guard's other checks);
- the body is empty or a JSON object without ``invalid_token``;
- the stored token is good for ``min_ttl`` and the authorizer authorized
  (``AuthorizerTokenManager.stored``, the first step of ``get``).

Everything else goes on to Flask untouched (the body put back as it came), which answers
as it always has: a refusal with its reason, a bad body with 400, a token to renew, a
store error with 503. A token to renew is passed on marked ``GLANCED``: the route does not
read the stored token a second time.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.wsgi import ClosingIterator

from service.authorizer_tokens import AuthorizerToken, Outcome
from service.runtime import Runtime
from service.store.records import StoreError
from service.web.auth import caller_accepted
from service.web.console_log import flush_when_due
from service.web.internal_blueprints import path_refusal

# Set in the environ of a request passed on after the stored token was read and found
# wanting: the route does not read it again (``AuthorizerTokenManager.get(glanced=True)``).
GLANCED = "gateway.token_glanced"
TOKEN_PATH = re.compile(r"/api/v1/components/([^/]+)/authorizers/([^/]+)/token")
# A body longer than this is not the plain "{}" of a token request: Flask reads it.
_PLAIN_BODY_BYTES = 1024
_HEADERS = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class TokenHits:
    """``app.wsgi_app`` with the token API's cache hit answered first."""

    def __init__(self, app: Flask) -> None:
        self._flask: WsgiApp = app.wsgi_app
        self._extensions = app.extensions
        self._runtime: Runtime = app.extensions["gateway"]

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        body = self._hit(environ)
        if body is None:
            return self._flask(environ, start_response)
        start_response("200 OK", [*_HEADERS, ("Content-Length", str(len(body)))])
        flush = flush_when_due(self._extensions)  # what Flask's after-request hook does
        return [body] if flush is None else ClosingIterator([body], flush)

    def _hit(self, environ: Environ) -> bytes | None:
        """The answer's body, or None for Flask to answer."""
        if environ.get("REQUEST_METHOD") != "POST":
            return None
        match = TOKEN_PATH.fullmatch(environ.get("PATH_INFO", ""))
        if match is None:
            return None
        component_appid, appid = match.groups()
        settings = self._runtime.settings
        if path_refusal(settings, component_appid, appid) is not None:
            return None
        if not _plain_body(environ):
            return None
        header = _headers(environ)
        if not caller_accepted(settings, self._extensions, header):
            return None
        try:
            token = self._runtime.authorizer_tokens.stored(component_appid, appid)
        except StoreError:
            return None  # Flask tries again and answers 503 if the store still fails
        if token is None:
            environ[GLANCED] = True  # the route goes on from here, without a second glance
            return None
        answer = token_answer(token, Outcome.FRESH)
        return json.dumps(answer, separators=(",", ":")).encode() + b"\n"  # as jsonify


def token_answer(token: AuthorizerToken, outcome: Outcome) -> dict[str, Any]:
    """The token API's answer (here, and the route's)."""
    return {
        "access_token": token.access_token,
        "expires_at": int(token.expires_at),
        "outcome": outcome.value,
    }


def _plain_body(environ: Environ) -> bool:
    """Whether the body is empty or a JSON object without ``invalid_token``; what was read
    is put back for Flask."""
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return False
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    if length == 0:
        return True
    if length > _PLAIN_BODY_BYTES:
        return False
    raw = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(raw)
    try:
        data = json.loads(raw)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("invalid_token") is None


def _headers(environ: Environ) -> Callable[[str], str | None]:
    def header(name: str) -> str | None:
        value: str | None = environ.get("HTTP_" + name.upper().replace("-", "_"))
        return value

    return header
