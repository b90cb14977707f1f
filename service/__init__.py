"""The gateway service: ``gunicorn "service:create_app()"``.

Importing ``service`` is cheap: the factory and everything behind it (Flask, the settings,
the runtime, the Firestore client) live in ``service.app`` and load on the first call of
``create_app``. So ``service.wechat`` (the protocol: crypto, XML, tables) can be imported,
by the mock too, without the production wiring.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from service.config import ConfigError, Settings
    from service.runtime import Runtime

__all__ = ["ConfigError", "Settings", "create_app"]


def create_app(
    config: Settings | Mapping[str, str] | None = None, runtime: Runtime | None = None
) -> Flask:
    """The application factory (``service.app.create_app``), imported on first call."""
    from service.app import create_app as factory

    return factory(config, runtime)


def __getattr__(name: str) -> Any:
    """``service.ConfigError`` and ``service.Settings``, loaded when first asked for."""
    if name in ("ConfigError", "Settings"):
        from service import config

        return getattr(config, name)
    raise AttributeError(f"module 'service' has no attribute {name!r}")
