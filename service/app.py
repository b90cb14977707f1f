"""The application factory: ``create_app`` builds the gateway's Flask app.

It lives apart from ``service/__init__.py`` so that importing ``service`` (as
``service.wechat.crypto`` or any other protocol module does) loads neither Flask nor the
configuration, the runtime and the Firestore client behind them. ``service.create_app``
imports this module on its first call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from flask import Flask

from service.config import Settings
from service.jsonlog import configure_logging
from service.runtime import Runtime


def create_app(
    config: Settings | Mapping[str, str] | None = None, runtime: Runtime | None = None
) -> Flask:
    """The application factory.

    ``config`` is either ready ``Settings`` or a mapping of environment-style overrides on
    top of ``os.environ``. Nothing connects here: the store and the WeChat client are made
    on first use, inside the serving process.
    """
    if isinstance(config, Settings):
        settings = config
    else:
        settings = Settings.from_env({**os.environ, **(config or {})})
    configure_logging(settings.log_level)
    app = Flask("service")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.extensions["gateway"] = runtime or Runtime(settings)

    from service.web import register_blueprints

    register_blueprints(app)
    if settings.serves("internal"):
        from service.web.token_hits import TokenHits

        # The token API's cache hit is answered before Flask (service.web.token_hits).
        app.wsgi_app = TokenHits(app)  # type: ignore[method-assign]
    return app
