"""JSON error bodies for every HTTP error: a reason, never a secret or a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, jsonify
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

log = logging.getLogger(__name__)


def error_response(status: int, reason: str) -> tuple[Response, int]:
    return jsonify(error=reason), status


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        return error_response(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> tuple[Response, int]:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        return error_response(413, f"request body is larger than the {limit}-byte limit")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error", extra={"error_type": type(exc).__name__})
        return error_response(500, "internal error")
