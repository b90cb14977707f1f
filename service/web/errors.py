"""JSON error bodies for every HTTP error: a reason, never a secret or a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


def error_response(status: int, reason: str) -> tuple[Response, int]:
    return jsonify(error=reason), status


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        return error_response(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error", extra={"error_type": type(exc).__name__})
        return error_response(500, "internal error")
