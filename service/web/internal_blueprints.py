"""What every internal API blueprint shares: the guard before each request (the caller's
key or identity, a configured component, an authorizer appid that looks like one) and the
answers to the core's token and store errors."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from service.authorizer_tokens import (
    AuthorizerNotFoundError,
    AuthorizerTokenError,
    AuthorizerUnavailableError,
    QuotaBackoffError,
)
from service.component_token import TokenUnavailableError
from service.config import Settings
from service.store.records import StoreError
from service.web import runtime
from service.web.auth import api_key_refusal
from service.web.errors import error_response
from service.wechat.accounts import APPID_PATTERN


def guard() -> ResponseReturnValue | None:
    refusal = api_key_refusal()
    if refusal is not None:
        return refusal
    args = request.view_args or {}
    wrong = path_refusal(
        runtime().settings, args.get("component_appid"), args.get("authorizer_appid")
    )
    return None if wrong is None else error_response(*wrong)


def path_refusal(
    settings: Settings, component_appid: str | None, appid: str | None
) -> tuple[int, str] | None:
    """Status and reason for refusing the path's component or authorizer appid (each
    checked if the path has one); None: both fine."""
    if component_appid is not None and component_appid not in settings.components:
        return 404, f"unknown component {component_appid}"
    if appid is not None and not APPID_PATTERN.match(appid):
        return 400, "authorizer appid must be 'wx' followed by 16 hex digits"
    return None


def token_error(exc: AuthorizerTokenError) -> ResponseReturnValue:
    if isinstance(exc, AuthorizerNotFoundError):
        return error_response(404, str(exc))
    if isinstance(exc, AuthorizerUnavailableError):
        return jsonify(error=str(exc), status=exc.status), 409
    if isinstance(exc, QuotaBackoffError):
        response = jsonify(error=str(exc), errcode=45009)
        response.headers["Retry-After"] = str(int(exc.retry_after))
        return response, 429
    return error_response(503, str(exc))


def component_token_error(exc: TokenUnavailableError) -> ResponseReturnValue:
    return error_response(503, f"component token unavailable: {exc}")


def store_error(exc: StoreError) -> ResponseReturnValue:
    return error_response(503, f"store unavailable: {exc}")


def make_internal(bp: Blueprint) -> Blueprint:
    """Guard ``bp`` and answer the core's errors on it, as the internal API does."""
    bp.before_request(guard)
    bp.register_error_handler(AuthorizerTokenError, token_error)
    bp.register_error_handler(TokenUnavailableError, component_token_error)
    bp.register_error_handler(StoreError, store_error)
    return bp
