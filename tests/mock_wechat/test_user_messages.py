"""Users' messages and events as WeChat builds them, and their control-plane input."""

from __future__ import annotations

import re
from typing import Any

import pytest

from mock_wechat.config import InvalidField
from mock_wechat.control_inputs import parse_user_message
from mock_wechat.user_messages import (
    EVENT_DEFAULTS,
    MESSAGE_DEFAULTS,
    SYSTEM_OPENID,
    UserMessage,
    build_message,
    default_openid,
)
from service.wechat.messages import parse_xml
from tests.mock_wechat.helpers import APPID, T0

ACCOUNT = "wx570bc396a51b8ff8"
GH = "gh_3c884a361561"


def built(**request: Any) -> tuple[dict[str, str], str]:
    """The message's fields and its raw XML."""
    message = build_message(
        parse_user_message({"component_appid": APPID, **request}), ACCOUNT, GH, T0
    )
    return parse_xml(message.xml), message.xml


def tags(xml: str) -> list[str]:
    return re.findall(r"<([A-Za-z_][^>/ ]*)>", xml)[1:]  # without <xml>


def test_a_text_message_is_the_documented_one() -> None:
    request = {"msg_type": "text", "content": "TESTCOMPONENT_MSG_TYPE_TEXT", "from_user": "oU1"}
    fields, xml = built(**request, msg_id="6427251175451672521")
    assert tags(xml) == ["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId"]
    assert fields == {
        "ToUserName": GH,
        "FromUserName": "oU1",
        "CreateTime": str(int(T0)),
        "MsgType": "text",
        "Content": "TESTCOMPONENT_MSG_TYPE_TEXT",
        "MsgId": "6427251175451672521",
    }
    # Numbers plain, strings in CDATA, as WeChat writes them (doc §4.3).
    assert f"<CreateTime>{int(T0)}</CreateTime>" in xml and "<MsgId>6427251175451672521<" in xml
    assert "<Content><![CDATA[TESTCOMPONENT_MSG_TYPE_TEXT]]></Content>" in xml


@pytest.mark.parametrize(
    ("msg_type", "expected"),
    [
        ("text", ["Content"]),
        ("image", ["PicUrl", "MediaId"]),
        ("voice", ["MediaId", "Format"]),
        ("video", ["MediaId", "ThumbMediaId"]),
        ("shortvideo", ["MediaId", "ThumbMediaId"]),
        ("location", ["Location_X", "Location_Y", "Scale", "Label"]),
        ("link", ["Title", "Description", "Url"]),
        ("miniprogrampage", []),  # another lowercase word: no defaults, still a MsgId
    ],
)
def test_every_message_type_has_its_fields_and_a_msg_id(msg_type: str, expected: list[str]) -> None:
    fields, xml = built(msg_type=msg_type)
    assert tags(xml) == ["ToUserName", "FromUserName", "CreateTime", "MsgType", *expected, "MsgId"]
    assert all(fields[name] for name in expected)
    assert re.fullmatch(r"[1-9][0-9]{18}", fields["MsgId"])


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ("subscribe", []),
        ("unsubscribe", []),
        ("SCAN", ["EventKey", "Ticket"]),
        ("LOCATION", ["Latitude", "Longitude", "Precision"]),
        ("CLICK", ["EventKey"]),
        ("VIEW", ["EventKey"]),
        ("user_enter_tempsession", ["SessionFrom"]),
        ("weapp_audit_success", ["SuccTime"]),
        ("weapp_audit_fail", ["Reason", "FailTime", "ScreenShot"]),
        ("weapp_audit_delay", ["Reason", "DelayTime"]),
        ("wxa_nickname_audit", ["ret", "nickname", "reason"]),
        ("kf_create_session", []),
    ],
)
def test_every_event_has_its_fields_and_no_msg_id(event: str, expected: list[str]) -> None:
    fields, xml = built(msg_type="event", event=event)
    header = ["ToUserName", "FromUserName", "CreateTime", "MsgType", "Event"]
    assert tags(xml) == [*header, *expected]
    assert (fields["MsgType"], fields["Event"]) == ("event", event)


def test_defaults_are_data_for_the_documented_types() -> None:
    assert set(MESSAGE_DEFAULTS) == {
        "text",
        "image",
        "voice",
        "video",
        "shortvideo",
        "location",
        "link",
    }
    assert {"LOCATION", "CLICK", "weapp_audit_fail", "wxa_nickname_audit"} <= set(EVENT_DEFAULTS)


def test_audit_times_are_the_create_time_and_the_sender_is_the_system() -> None:
    fields, _ = built(msg_type="event", event="weapp_audit_fail", create_time=1_600_000_000)
    assert fields["FailTime"] == fields["CreateTime"] == "1600000000"
    assert fields["FromUserName"] == SYSTEM_OPENID
    assert len(SYSTEM_OPENID) == 28 and SYSTEM_OPENID.startswith("o")
    success, _ = built(msg_type="event", event="weapp_audit_success")
    assert success["SuccTime"] == str(int(T0))


def test_default_openid_is_stable_per_account_and_shaped_like_one() -> None:
    fields, _ = built(msg_type="event", event="CLICK")
    openid = fields["FromUserName"]
    assert openid == default_openid(ACCOUNT) != default_openid("wx0000000000000001")
    assert re.fullmatch(r"o[A-Za-z0-9_-]{27}", openid)


def test_fields_override_defaults_and_add_elements() -> None:
    fields, xml = built(
        msg_type="event",
        event="CLICK",
        fields={"EventKey": "MENU_1", "MenuId": 208},
    )
    assert fields["EventKey"] == "MENU_1" and fields["MenuId"] == "208"
    assert "<MenuId>208</MenuId>" in xml
    assert tags(xml)[-2:] == ["EventKey", "MenuId"]


def test_msg_ids_are_random_unless_given() -> None:
    first, _ = built(msg_type="text")
    second, _ = built(msg_type="text")
    assert first["MsgId"] != second["MsgId"]
    given, _ = built(msg_type="text", msg_id=42)
    assert given["MsgId"] == "42"


def test_only_users_open_the_customer_service_window() -> None:
    def request(**fields: Any) -> UserMessage:
        return UserMessage(component_appid=APPID, **fields)

    assert request(msg_type="text").user_originated
    assert request(msg_type="event", event="user_enter_tempsession").user_originated
    assert not request(msg_type="event", event="weapp_audit_success").user_originated
    assert not request(msg_type="event", event="wxa_nickname_audit").user_originated


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"msg_type": "text"}, "component_appid"),
        ({"component_appid": APPID}, "msg_type"),
        ({"component_appid": APPID, "msg_type": "Text"}, "msg_type"),
        ({"component_appid": APPID, "msg_type": "event"}, "event"),
        ({"component_appid": APPID, "msg_type": "event", "event": "a b"}, "event"),
        ({"component_appid": APPID, "msg_type": "text", "event": "CLICK"}, "event"),
        ({"component_appid": APPID, "msg_type": "image", "content": "x"}, "content"),
        ({"component_appid": APPID, "msg_type": "text", "from_user": "o 1"}, "from_user"),
        ({"component_appid": APPID, "msg_type": "text", "msg_id": "12a"}, "msg_id"),
        ({"component_appid": APPID, "msg_type": "text", "msg_id": "0012"}, "msg_id"),
        ({"component_appid": APPID, "msg_type": "text", "msg_id": -1}, "msg_id"),
        ({"component_appid": APPID, "msg_type": "event", "event": "CLICK", "msg_id": 1}, "msg_id"),
        ({"component_appid": APPID, "msg_type": "text", "create_time": "1"}, "create_time"),
        ({"component_appid": APPID, "msg_type": "text", "create_time": -1}, "create_time"),
        ({"component_appid": APPID, "msg_type": "text", "fields": []}, "fields"),
        ({"component_appid": APPID, "msg_type": "text", "fields": {"a b": "x"}}, "fields.a b"),
        ({"component_appid": APPID, "msg_type": "text", "fields": {"X": 1.5}}, "fields.X"),
        ({"component_appid": APPID, "msg_type": "text", "fields": {"X": True}}, "fields.X"),
        ({"component_appid": APPID, "msg_type": "text", "fields": {"MsgId": "1"}}, "fields.MsgId"),
        (
            {"component_appid": APPID, "msg_type": "text", "fields": {"Content": "x"}},
            "fields.Content",
        ),
        ({"component_appid": APPID, "msg_type": "text", "colour": "red"}, "colour"),
    ],
)
def test_bad_message_input_names_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidField) as info:
        parse_user_message(body)
    assert info.value.field == field
