"""Where the Flask app keeps the mock's state and pushers, and how handlers reach them."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from mock_wechat.event_pusher import EventPusher
from mock_wechat.message_pusher import MessagePusher
from mock_wechat.models import MockWeChat

_KEY = "mock_wechat"


@dataclass(frozen=True)
class Services:
    state: MockWeChat
    events: EventPusher  # to the 授权事件接收URL
    messages: MessagePusher  # to the 消息与事件接收URL


def install(app: Flask, services: Services) -> None:
    app.extensions[_KEY] = services


def services() -> Services:
    found = current_app.extensions[_KEY]
    assert isinstance(found, Services)
    return found
