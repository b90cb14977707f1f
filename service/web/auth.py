"""The internal API's guard: a bearer key from SERVICE_API_KEYS, or Cloud Run IAM in the cloud
(INTERNAL_AUTH=cloud_run_iam, allowed on the internal service only)."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec

from flask import request
from flask.typing import ResponseReturnValue

from service.web import runtime
from service.web.errors import error_response

P = ParamSpec("P")
# Cloud Run also takes the identity token here, leaving Authorization to the application.
SERVERLESS_AUTH = "X-Serverless-Authorization"


def api_key_refusal() -> ResponseReturnValue | None:
    """The error response for a request without an accepted key, or None if it has one."""
    settings = runtime().settings
    if settings.internal_auth == "cloud_run_iam":
        # Cloud Run has checked the caller's identity token and its run.invoker role before
        # the request got here; a request without one means the service was exposed.
        if not (request.headers.get("Authorization") or request.headers.get(SERVERLESS_AUTH)):
            return error_response(401, "missing identity token (Cloud Run IAM)")
        return None
    keys = settings.service_api_keys
    if not keys:
        return error_response(503, "internal API is disabled: set SERVICE_API_KEYS")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return error_response(401, "missing 'Authorization: Bearer <key>' header")
    offered = given.strip().encode()
    if not any(hmac.compare_digest(offered, key.encode()) for key in keys):
        return error_response(403, "API key not accepted")
    return None


def require_api_key(view: Callable[P, ResponseReturnValue]) -> Callable[P, ResponseReturnValue]:
    @wraps(view)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
        return api_key_refusal() or view(*args, **kwargs)

    return guarded
