"""The messages WeChat sends to a 消息与事件接收URL, built as WeChat builds them (no state).

A ``UserMessage`` is what the control plane asked for: a user's message or event to one
authorized account. ``build_message`` turns it into the decrypted XML (messages doc §4.3,
§6): ``ToUserName`` (the account's gh_ id), ``FromUserName``, ``CreateTime``, ``MsgType``,
``Event``, then the type's own fields with the defaults below, the caller's ``fields``
over them, and ``MsgId`` last for everything but events.

The defaults are data: realistic values in WeChat's own element names, so a receiver sees
what it would see in production. ``NOW`` marks a field that takes the message's
``CreateTime`` (the audit events' times). Values are the mock's own made-up ones.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from mock_wechat.config import InvalidField
from mock_wechat.wire import to_xml

Value = str | int


class _Now:
    """The marker of a default that takes the message's CreateTime."""

    def __repr__(self) -> str:
        return "NOW"


NOW: Final = _Now()
Default = Value | _Now

_MEDIA_ID = "MvA8pSPc6dTE0cA7xP3r7Qn0ZHTQMqe5Kx2vUj9sLwYbN1oGfRdIh4kC"
_THUMB_MEDIA_ID = "Tq4bZ8nW1xLk3sVy6HdMfR0aPeJ2uCo9iGt5EwNlYrQ7mXjS"

# msg_type -> its fields, in WeChat's order (official account message docs, messages §6).
MESSAGE_DEFAULTS: Mapping[str, Mapping[str, Default]] = {
    "text": {"Content": "你好"},
    "image": {
        "PicUrl": "http://mmbiz.qpic.cn/mmbiz_jpg/9ZbQm1Xb2wQmIc7Kc4Zy8sGx0aPb/0",
        "MediaId": _MEDIA_ID,
    },
    "voice": {"MediaId": _MEDIA_ID, "Format": "amr"},
    "video": {"MediaId": _MEDIA_ID, "ThumbMediaId": _THUMB_MEDIA_ID},
    "shortvideo": {"MediaId": _MEDIA_ID, "ThumbMediaId": _THUMB_MEDIA_ID},
    "location": {
        "Location_X": "23.134521",
        "Location_Y": "113.358803",
        "Scale": 20,
        "Label": "广东省广州市海珠区新港中路397号",
    },
    "link": {
        "Title": "公众平台官网链接",
        "Description": "公众平台官网链接",
        "Url": "https://mp.weixin.qq.com/",
    },
}

# Event -> its fields (messages §6; the audit events from the third-party platform docs).
EVENT_DEFAULTS: Mapping[str, Mapping[str, Default]] = {
    "subscribe": {},
    "unsubscribe": {},
    "SCAN": {
        "EventKey": "123123",
        "Ticket": "gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2taZ2Z3TVRtNzJXV1Brb3ZhYmJJ",
    },
    "LOCATION": {"Latitude": "23.137466", "Longitude": "113.352425", "Precision": "119.385040"},
    "CLICK": {"EventKey": "EVENTKEY"},
    "VIEW": {"EventKey": "https://www.qq.com/"},
    "user_enter_tempsession": {"SessionFrom": "wxapp"},
    "weapp_audit_success": {"SuccTime": NOW},
    "weapp_audit_fail": {
        "Reason": "小程序名称与小程序简介不符",
        "FailTime": NOW,
        "ScreenShot": "xxx|yyy|zzz",
    },
    "weapp_audit_delay": {
        "Reason": "为了更好的服务小程序，您的服务商正在进行提审系统的优化，可能会导致审核时效增长",
        "DelayTime": NOW,
    },
    "wxa_nickname_audit": {"ret": 3, "nickname": "昵称", "reason": ""},
}

# Mini-program audit and name-audit events come from WeChat itself, not from a user: they
# have a system FromUserName and do not open the customer-service window.
SYSTEM_EVENT_PREFIXES = ("weapp_", "wxa_")
SYSTEM_OPENID = "oWeChatSystemNotice000000000"  # the mock's own; 28 characters like any openid

# The header every message starts with; ``fields`` may not replace these.
HEADER = ("ToUserName", "FromUserName", "CreateTime", "MsgType", "Event", "MsgId")

_MSG_TYPE = re.compile(r"[a-z][a-z_]*")
_EVENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_OPENID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ELEMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_DIGITS = re.compile(r"0|[1-9][0-9]{0,19}")  # no leading zeros: MsgId is a number


def is_system_event(event: str | None) -> bool:
    return event is not None and event.startswith(SYSTEM_EVENT_PREFIXES)


def default_openid(authorizer_appid: str) -> str:
    """A made-up openid, stable per account: "o" and 27 URL-safe characters, like WeChat's."""
    digest = hashlib.sha256(f"mock-user:{authorizer_appid}".encode()).digest()
    return "o" + base64.urlsafe_b64encode(digest).decode("ascii")[:27]


def random_msg_id() -> str:
    """A 64-bit message id as WeChat writes it: 19 decimal digits (kept as a string)."""
    return str(10**18 + secrets.randbelow(8 * 10**18))


@dataclass(frozen=True)
class UserMessage:
    """A validated ``POST /_mock/authorizers/<appid>/messages``."""

    component_appid: str
    msg_type: str
    content: str | None = None
    event: str | None = None
    from_user: str | None = None
    fields: Mapping[str, Value] = field(default_factory=dict)
    msg_id: str | None = None
    create_time: int | None = None

    def __post_init__(self) -> None:
        if not self.component_appid:
            raise InvalidField("component_appid", "must be a non-empty string")
        if not _MSG_TYPE.fullmatch(self.msg_type):
            raise InvalidField("msg_type", "must be a lowercase word such as text or event")
        if self.msg_type == "event":
            if self.event is None or not _EVENT.fullmatch(self.event):
                raise InvalidField("event", "is required for msg_type event (e.g. CLICK)")
            if self.msg_id is not None:
                raise InvalidField("msg_id", "events carry no MsgId")
        elif self.event is not None:
            raise InvalidField("event", "is only for msg_type event")
        if self.content is not None and self.msg_type != "text":
            raise InvalidField("content", "is only for msg_type text (use fields for others)")
        if self.from_user is not None and not _OPENID.fullmatch(self.from_user):
            raise InvalidField("from_user", "must be an openid (letters, digits, - and _)")
        if self.msg_id is not None and not _DIGITS.fullmatch(self.msg_id):
            raise InvalidField("msg_id", "must be decimal digits without leading zeros")
        if self.create_time is not None and self.create_time < 0:
            raise InvalidField("create_time", "must be Unix seconds >= 0")
        for name, value in self.fields.items():
            where = f"fields.{name}"
            if not _ELEMENT.fullmatch(name):
                raise InvalidField(where, "is not an XML element name")
            if name in HEADER or name == "Content":
                raise InvalidField(where, "is set by its own argument, not by fields")
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise InvalidField(where, "must be a string or an integer")

    @property
    def user_originated(self) -> bool:
        """Whether a user sent it (and so opened the customer-service window)."""
        return not is_system_event(self.event)


@dataclass(frozen=True)
class BuiltMessage:
    xml: str
    openid: str
    msg_id: str | None
    create_time: int


def _defaults(message: UserMessage) -> Mapping[str, Default]:
    if message.event is not None:
        return EVENT_DEFAULTS.get(message.event, {})
    return MESSAGE_DEFAULTS.get(message.msg_type, {})


def build_message(
    message: UserMessage, authorizer_appid: str, user_name: str, now: float
) -> BuiltMessage:
    """The decrypted XML WeChat would send to ``user_name``'s account for ``message``."""
    create_time = message.create_time if message.create_time is not None else int(now)
    openid = message.from_user or (
        SYSTEM_OPENID if not message.user_originated else default_openid(authorizer_appid)
    )
    xml: dict[str, Value] = {
        "ToUserName": user_name,
        "FromUserName": openid,
        "CreateTime": create_time,
        "MsgType": message.msg_type,
    }
    if message.event is not None:
        xml["Event"] = message.event
    for name, default in _defaults(message).items():
        xml[name] = create_time if isinstance(default, _Now) else default
    if message.content is not None:
        xml["Content"] = message.content
    xml.update(message.fields)
    msg_id = None
    if message.event is None:
        msg_id = message.msg_id or random_msg_id()
        xml["MsgId"] = int(msg_id)  # a number, as WeChat writes it
    return BuiltMessage(to_xml(xml), openid, msg_id, create_time)
