"""HTTP layer: thin blueprints over the core."""

from __future__ import annotations

from flask import Flask, current_app

from service.runtime import Runtime


def runtime() -> Runtime:
    rt: Runtime = current_app.extensions["gateway"]
    return rt


def register_blueprints(app: Flask) -> None:
    from service.web import (
        authorize,
        errors,
        events,
        health,
        internal_api,
        tasks,
    )

    errors.register(app)
    app.register_blueprint(events.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(tasks.bp)
    app.register_blueprint(internal_api.bp)
    app.register_blueprint(authorize.bp)
