"""The internal API's guard: a bearer key from SERVICE_API_KEYS, or in the cloud
(INTERNAL_AUTH=cloud_run_iam, the internal service only) the caller's Google ID token,
checked by Cloud Run's IAM and verified again here (service.web.id_tokens)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec

from flask import current_app, request
from flask.typing import ResponseReturnValue

from service.config import Settings
from service.web import runtime
from service.web.errors import error_response
from service.web.id_tokens import SERVERLESS_AUTH, GoogleCerts, IdTokenRefusal, Verifier

__all__ = ["SERVERLESS_AUTH", "api_key_refusal", "require_api_key"]

log = logging.getLogger(__name__)
P = ParamSpec("P")
# The per-app verifier (its certificate cache lives as long as the worker).
VERIFIER = "id_token_verifier"
# Cloud Scheduler can send its token only in Authorization, which Cloud Run checks and
# passes on without its signature: these blueprints accept such a token (claims checked).
CLOUD_RUN_CHECKED_OK = frozenset({"tasks"})


def api_key_refusal() -> ResponseReturnValue | None:
    """The error response for a request without an accepted key, or None if it has one."""
    settings = runtime().settings
    if settings.internal_auth == "cloud_run_iam":
        return _identity_refusal(settings)
    refusal = key_refusal(settings.service_api_keys, request.headers.get("Authorization", ""))
    return None if refusal is None else error_response(*refusal)


def key_refusal(keys: tuple[str, ...], authorization: str) -> tuple[int, str] | None:
    """Status and reason for refusing the ``Authorization`` header's key; None: accepted."""
    if not keys:
        return 503, "internal API is disabled: set SERVICE_API_KEYS"
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return 401, "missing 'Authorization: Bearer <key>' header"
    offered = given.strip().encode()
    if not any(hmac.compare_digest(offered, key.encode()) for key in keys):
        return 403, "API key not accepted"
    return None


def caller_accepted(
    settings: Settings, extensions: dict[str, Any], header: Callable[[str], str | None]
) -> bool:
    """Whether the guard lets this caller in (``header(name)``: the request's header), for
    a path answered before Flask (service.web.token_hits). Says nothing of a refusal: the
    guard itself answers and logs those."""
    if settings.internal_auth == "cloud_run_iam":
        try:
            id_token_verifier(settings, extensions).caller(header, cloud_run_checked_ok=False)
        except IdTokenRefusal:
            return False
        return True
    return key_refusal(settings.service_api_keys, header("Authorization") or "") is None


def id_token_verifier(settings: Settings, extensions: dict[str, Any] | None = None) -> Verifier:
    """This app's verifier (``extensions``: the app's, by default the current app's), made
    on first use (tests may put their own in first)."""
    if extensions is None:
        extensions = current_app.extensions
    verifier: Verifier | None = extensions.get(VERIFIER)
    if verifier is None:
        made = Verifier(
            settings.internal_audiences,
            settings.internal_invokers,
            GoogleCerts(settings.id_token_certs_url),
        )
        verifier = extensions.setdefault(VERIFIER, made)
    return verifier


def _identity_refusal(settings: Settings) -> ResponseReturnValue | None:
    try:
        id_token_verifier(settings).caller(
            request.headers.get, cloud_run_checked_ok=request.blueprint in CLOUD_RUN_CHECKED_OK
        )
    except IdTokenRefusal as refusal:
        log.warning(
            "internal call refused",
            extra={"path": request.path, "status": refusal.status, "reason": refusal.reason},
        )
        return error_response(refusal.status, refusal.reason)
    return None


def require_api_key(view: Callable[P, ResponseReturnValue]) -> Callable[P, ResponseReturnValue]:
    @wraps(view)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
        return api_key_refusal() or view(*args, **kwargs)

    return guarded
