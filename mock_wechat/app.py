"""The Flask application factory: the WeChat API routes, the pages and the control plane.

It serves ``api`` (WeChat's APIs), ``authorization_pages`` (the merchant's pages) and
``control_plane`` (``/_mock/``). Creating the app starts nothing: the ticket scheduler
belongs to the server (``__main__``).
"""

from __future__ import annotations

from flask import Flask

from mock_wechat import api, authorization_pages, control_plane
from mock_wechat.app_services import Services, install
from mock_wechat.event_pusher import EventPusher
from mock_wechat.message_pusher import MessagePusher
from mock_wechat.models import MockWeChat


def create_app(
    state: MockWeChat | None = None,
    events: EventPusher | None = None,
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
            events=events or EventPusher(state),
            messages=messages or MessagePusher(state),
        ),
    )
    app.register_blueprint(api.bp)
    app.register_blueprint(authorization_pages.bp)
    app.register_blueprint(control_plane.bp)
    return app
