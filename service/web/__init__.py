"""HTTP layer: thin blueprints over the core."""

from __future__ import annotations

from flask import Flask, Response, current_app, request

from service.runtime import Runtime
from service.web.errors import error_response


def runtime() -> Runtime:
    rt: Runtime = current_app.extensions["gateway"]
    return rt


# Where each role's routes live, so the other role can say where to go instead of a bare 404.
ROLE_PREFIXES = {
    "public": ("/wechat/", "/authorize/"),
    "internal": ("/api/", "/tasks/", "/console"),
}


def register_blueprints(app: Flask) -> None:
    from service.web import (
        authorization_events_url,
        authorize,
        console,
        console_log,
        errors,
        health,
        internal_api,
        message_url,
        tasks,
    )

    rt: Runtime = app.extensions["gateway"]
    errors.register(app)
    app.register_blueprint(health.bp)
    console_log.install(app)  # the push log's messages are written after an answer
    if rt.settings.serves("public"):
        app.register_blueprint(authorization_events_url.bp)
        app.register_blueprint(message_url.bp)
        app.register_blueprint(authorize.bp)
    if rt.settings.serves("internal"):
        app.register_blueprint(tasks.bp)
        app.register_blueprint(internal_api.bp)
        app.register_blueprint(console.bp)
        from service.web import open_account_api

        app.register_blueprint(open_account_api.bp)
    if rt.settings.service_role != "all":
        app.register_error_handler(404, _other_role_refusal)


def _other_role_refusal(exc: Exception) -> tuple[Response, int]:
    role = runtime().settings.service_role
    for other, prefixes in ROLE_PREFIXES.items():
        if other != role and request.path.startswith(prefixes):
            return error_response(
                404,
                f"{request.path} is served by the {other} service; this is the {role} "
                f"service (SERVICE_ROLE={role})",
            )
    return error_response(404, "not found")
