"""The Flask application factory: WeChat API routes, the merchant's authorization pages,
and the ``/_mock/`` control plane.

Creating the app starts nothing: the ticket scheduler belongs to the server (``__main__``).
"""

from __future__ import annotations

from flask import Flask

from mock_wechat import api, control, pages
from mock_wechat.ext import Services, install
from mock_wechat.message_pusher import MessagePusher
from mock_wechat.models import MockWeChat
from mock_wechat.pusher import Pusher


def create_app(
    state: MockWeChat | None = None,
    pusher: Pusher | None = None,
    messages: MessagePusher | None = None,
) -> Flask:
    state = state or MockWeChat()
    app = Flask(__name__)
    # Keep answers in insertion order, like WeChat's, instead of Flask's sorted keys.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    install(
        app,
        Services(
            state=state,
            pusher=pusher or Pusher(state),
            messages=messages or MessagePusher(state),
        ),
    )
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(control.bp)
    return app
