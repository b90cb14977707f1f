"""What a subscriber gets: the envelope's fields, a stable dedup_key, no credential ever."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import pytest

from service.envelopes import (
    ATTRIBUTES,
    attributes,
    encode,
    message_dedup_key,
    message_envelope,
    notice_envelope,
)
from service.message_dispatch import open_message
from service.store.records import AuthorizerRecord
from service.wechat.accounts import permission_set_name
from service.wechat.crypto import MessageCrypto
from service.wechat.messages import (
    AccountMessage,
    build_xml,
    parse_account_message,
    parse_message,
    parse_xml_tree,
)
from tests.service.push_component import APPID, KEY, NEW_KEY, TOKEN
from tests.service.test_message_url import MERCHANT, MERCHANT_GH, OPENID, sealed

RECEIVED_AT = 1700000000.25
AUTHORIZER = "wx00000000000000a1"
CODE = "queryauthcode@@@SECRET-AUTHORIZATION-CODE"
PRE_AUTH = "preauthcode@@@SECRET-PRE-AUTH"
FAST_AUTH_CODE = "SECRET-FAST-REGISTER-CODE"
ACCESS_TOKEN = "SECRET-ACCESS-TOKEN-0123456789"
REFRESH_TOKEN = "refreshtoken@@@SECRET-REFRESH-0123456789"


def text_xml(msg_id: str = "6427251175451672521", content: str = "hello") -> str:
    return build_xml(
        {
            "ToUserName": MERCHANT_GH,
            "FromUserName": OPENID,
            "CreateTime": 1700000000,
            "MsgType": "text",
            "Content": content,
            "MsgId": msg_id,
        }
    )


def event_xml(
    event: str = "CLICK",
    create_time: int = 1700000000,
    sender: str = OPENID,
    key: str = "V1001_GOOD",
) -> str:
    return build_xml(
        {
            "ToUserName": MERCHANT_GH,
            "FromUserName": sender,
            "CreateTime": create_time,
            "MsgType": "event",
            "Event": event,
            "EventKey": key,
        }
    )


def message(xml: str) -> AccountMessage:
    return parse_account_message(xml)


def dedup(xml: str, component: str = APPID, authorizer: str = MERCHANT) -> str:
    return message_dedup_key(component, authorizer, message(xml))


# ----- messages --------------------------------------------------------------------------


def test_message_envelope_fields() -> None:
    xml = text_xml()
    envelope = message_envelope(APPID, MERCHANT, "official_account", message(xml), xml, RECEIVED_AT)
    assert envelope == {
        "component_appid": APPID,
        "authorizer_appid": MERCHANT,
        "account_type": "official_account",
        "source": "messages",
        "msg_type": "text",
        "event": None,
        "info_type": None,
        "fields": {
            "ToUserName": MERCHANT_GH,
            "FromUserName": OPENID,
            "CreateTime": "1700000000",
            "MsgType": "text",
            "Content": "hello",
            "MsgId": "6427251175451672521",
        },
        "xml": xml,
        "received_at": "2023-11-14T22:13:20.250000+00:00",
        "dedup_key": dedup(xml),
        "result": None,
    }
    assert datetime.fromisoformat(envelope["received_at"]).timestamp() == RECEIVED_AT
    # The envelope is JSON as it stands.
    assert json.loads(encode(envelope)) == envelope


def test_event_envelope_names_its_event_and_keeps_nested_fields() -> None:
    xml = (
        f"<xml><ToUserName>{MERCHANT_GH}</ToUserName><FromUserName>{OPENID}</FromUserName>"
        "<CreateTime>1700000000</CreateTime><MsgType>event</MsgType>"
        "<Event>weapp_audit_fail</Event><Reason><![CDATA[名称不符]]></Reason>"
        "<ScanCodeInfo><ScanType>qrcode</ScanType><ScanResult>1</ScanResult></ScanCodeInfo>"
        "</xml>"
    )
    envelope = message_envelope(APPID, MERCHANT, None, message(xml), xml, RECEIVED_AT)
    assert (envelope["msg_type"], envelope["event"]) == ("event", "weapp_audit_fail")
    assert envelope["account_type"] is None
    assert envelope["fields"]["Reason"] == "名称不符"
    assert envelope["fields"]["ScanCodeInfo"] == {"ScanType": "qrcode", "ScanResult": "1"}
    assert "名称不符" in encode(envelope).decode()  # not \u-escaped


def test_message_dedup_key_is_the_same_for_wechats_resealed_retries() -> None:
    """WeChat's retries carry the same message in a new envelope (timestamp, nonce, IV)."""
    crypto = MessageCrypto(TOKEN, NEW_KEY, APPID, previous_encoding_aes_key=KEY)
    now = int(time.time())
    keys, bodies = [], []
    for attempt, key in enumerate((NEW_KEY, NEW_KEY, KEY)):
        query, body = sealed(text_xml(), key=key, timestamp=now + 5 * attempt)
        opened = open_message(crypto, query, body, MERCHANT, now, 300, 256 * 1024)
        bodies.append(body)
        envelope = message_envelope(
            APPID, MERCHANT, None, opened.message, opened.xml, RECEIVED_AT + attempt
        )
        keys.append(envelope["dedup_key"])
    assert len(set(bodies)) == 3  # three different ciphertexts
    assert len(set(keys)) == 1
    assert keys[0] == dedup(text_xml())


def test_message_dedup_key_is_set_by_msg_id_alone() -> None:
    # The same MsgId is the same message, whatever else a retry would differ in.
    assert dedup(text_xml(content="a")) == dedup(text_xml(content="b"))
    assert dedup(text_xml("1")) != dedup(text_xml("2"))


def test_message_dedup_key_differs_between_accounts_and_components() -> None:
    xml = text_xml()
    keys = {
        dedup(xml),
        dedup(xml, authorizer="wx00000000000000a2"),
        dedup(xml, component="wx1111111111111111"),
    }
    assert len(keys) == 3


def test_event_dedup_key_is_sender_create_time_and_event() -> None:
    base = dedup(event_xml())
    assert dedup(event_xml()) == base
    # Other fields do not count: they are equal in WeChat's retries anyway.
    assert dedup(event_xml(key="OTHER_KEY")) == base
    assert dedup(event_xml(event="VIEW")) != base
    assert dedup(event_xml(create_time=1700000001)) != base
    assert dedup(event_xml(sender="o_another_user")) != base


def test_a_message_and_an_event_never_share_a_dedup_key() -> None:
    assert dedup(text_xml()) != dedup(event_xml())


def test_dedup_key_shows_no_openid() -> None:
    for xml in (text_xml(), event_xml()):
        key = dedup(xml)
        assert OPENID not in key and len(key) == 64
        int(key, 16)  # a hex digest


def test_message_attributes_are_the_routing_fields_that_are_set() -> None:
    text = message_envelope(APPID, MERCHANT, "official_account", message(text_xml()), "", 0)
    assert attributes(text) == {
        "component_appid": APPID,
        "authorizer_appid": MERCHANT,
        "source": "messages",
        "msg_type": "text",
    }
    click = message_envelope(APPID, MERCHANT, None, message(event_xml()), "", 0)
    assert attributes(click) == {
        "component_appid": APPID,
        "authorizer_appid": MERCHANT,
        "source": "messages",
        "msg_type": "event",
        "event": "CLICK",
    }


def test_attributes_are_strings_and_only_the_routing_fields() -> None:
    envelope: dict[str, Any] = {
        "component_appid": APPID,
        "authorizer_appid": 12345,
        "source": "events",
        "msg_type": None,
        "event": "",
        "info_type": "authorized",
        "account_type": "official_account",
        "dedup_key": "k",
        "fields": {"a": "b"},
    }
    assert attributes(envelope) == {
        "component_appid": APPID,
        "authorizer_appid": "12345",
        "source": "events",
        "info_type": "authorized",
    }
    assert set(ATTRIBUTES) == {
        "component_appid",
        "authorizer_appid",
        "source",
        "msg_type",
        "event",
        "info_type",
    }


# ----- notices ---------------------------------------------------------------------------


def authorized_xml(info_type: str = "authorized") -> str:
    return build_xml(
        {
            "AppId": APPID,
            "CreateTime": 1700000000,
            "InfoType": info_type,
            "AuthorizerAppid": AUTHORIZER,
            "AuthorizationCode": CODE,
            "AuthorizationCodeExpiredTime": 1700003600,
            "PreAuthCode": PRE_AUTH,
        }
    )


def unauthorized_xml() -> str:
    return build_xml(
        {
            "AppId": APPID,
            "CreateTime": 1700000000,
            "InfoType": "unauthorized",
            "AuthorizerAppid": AUTHORIZER,
        }
    )


def fast_register_xml() -> str:
    """A fast registration's result: its auth_code at the top and nested in <info>."""
    return (
        f"<xml><AppId><![CDATA[{APPID}]]></AppId><CreateTime>1700000000</CreateTime>"
        "<InfoType><![CDATA[notify_third_fasteregister]]></InfoType>"
        "<appid><![CDATA[wx00000000000000f1]]></appid><status>0</status>"
        f"<auth_code><![CDATA[{FAST_AUTH_CODE}]]></auth_code><msg><![CDATA[OK]]></msg>"
        "<info><name><![CDATA[公司名称]]></name><code><![CDATA[91110000]]></code>"
        f"<legal_persona_wechat><![CDATA[wx_legal]]></legal_persona_wechat>"
        f"<AuthorizationCode>{CODE}</AuthorizationCode>"
        f"<deeper><PreAuthCode>{PRE_AUTH}</PreAuthCode><kept>yes</kept></deeper>"
        "</info></xml>"
    )


def authorizer(status: str = "authorized") -> AuthorizerRecord:
    return AuthorizerRecord(
        component_appid=APPID,
        appid=AUTHORIZER,
        status=status,
        account_type="official_account",
        nick_name="商户号",
        func_info=(1, 15),
        access_token=ACCESS_TOKEN,
        access_token_expires_at=1700007200.0,
        refresh_token=REFRESH_TOKEN,
        history=({"at": 1.0, "event": "authorized", "code": CODE},),
    )


def notice(xml: str, record: AuthorizerRecord | None, key: str = "k" * 64) -> dict[str, Any]:
    return notice_envelope(parse_message(xml), xml, RECEIVED_AT, key, record)


@pytest.mark.parametrize("info_type", ["authorized", "updateauthorized"])
def test_authorization_notice_has_the_result_and_no_code(info_type: str) -> None:
    xml = authorized_xml(info_type)
    envelope = notice(xml, authorizer(), key="abc")
    assert envelope["component_appid"] == APPID
    assert envelope["authorizer_appid"] == AUTHORIZER
    assert envelope["account_type"] == "official_account"
    assert (envelope["source"], envelope["msg_type"], envelope["event"]) == ("events", None, None)
    assert envelope["info_type"] == info_type
    assert envelope["dedup_key"] == "abc"
    assert envelope["received_at"] == "2023-11-14T22:13:20.250000+00:00"
    assert envelope["fields"] == {
        "AppId": APPID,
        "CreateTime": "1700000000",
        "InfoType": info_type,
        "AuthorizerAppid": AUTHORIZER,
        "AuthorizationCodeExpiredTime": "1700003600",
    }
    assert parse_xml_tree(envelope["xml"]) == envelope["fields"]
    assert envelope["result"] == {
        "status": "authorized",
        "account_type": "official_account",
        "nick_name": "商户号",
        "func_info": [1, 15],
        "permission_sets": [
            {"id": 1, "name": permission_set_name(1)},
            {"id": 15, "name": permission_set_name(15)},
        ],
    }
    assert permission_set_name(1) != "权限集 1"  # a name of ours, not the id
    text = encode(envelope).decode()
    for secret in (CODE, PRE_AUTH, ACCESS_TOKEN, REFRESH_TOKEN, "SECRET"):
        assert secret not in text


def test_unauthorized_notice_has_the_revoked_result_and_no_token() -> None:
    record = authorizer("revoked")
    envelope = notice(unauthorized_xml(), record)
    assert envelope["result"]["status"] == "revoked"
    assert envelope["authorizer_appid"] == AUTHORIZER
    text = encode(envelope).decode()
    assert ACCESS_TOKEN not in text and REFRESH_TOKEN not in text and CODE not in text


def test_authorization_notice_without_a_record_has_no_result() -> None:
    envelope = notice(authorized_xml(), None)
    assert envelope["result"] is None and envelope["account_type"] is None
    assert envelope["authorizer_appid"] == AUTHORIZER
    assert CODE not in encode(envelope).decode()


def test_other_notices_never_have_a_result() -> None:
    envelope = notice(fast_register_xml(), authorizer())
    assert envelope["result"] is None
    assert envelope["account_type"] == "official_account"
    text = encode(envelope).decode()
    assert ACCESS_TOKEN not in text and REFRESH_TOKEN not in text


def test_credentials_are_stripped_from_fields_and_xml_even_nested() -> None:
    envelope = notice(fast_register_xml(), None)
    expected = {
        "AppId": APPID,
        "CreateTime": "1700000000",
        "InfoType": "notify_third_fasteregister",
        "appid": "wx00000000000000f1",
        "status": "0",
        "msg": "OK",
        "info": {
            "name": "公司名称",
            "code": "91110000",
            "legal_persona_wechat": "wx_legal",
            "deeper": {"kept": "yes"},
        },
    }
    assert envelope["fields"] == expected
    assert parse_xml_tree(envelope["xml"]) == expected
    text = encode(envelope).decode()
    for secret in (FAST_AUTH_CODE, CODE, PRE_AUTH, "auth_code", "AuthorizationCode>"):
        assert secret not in text
    # The notice names its mini program in its own words.
    assert envelope["authorizer_appid"] == "wx00000000000000f1"
    assert attributes(envelope)["authorizer_appid"] == "wx00000000000000f1"


def test_a_ticket_in_a_notice_is_stripped() -> None:
    xml = build_xml(
        {
            "AppId": APPID,
            "CreateTime": 1,
            "InfoType": "something_new",
            "ComponentVerifyTicket": "ticket@@@SECRET",
            "Other": "kept",
        }
    )
    envelope = notice(xml, None)
    assert envelope["fields"] == {
        "AppId": APPID,
        "CreateTime": "1",
        "InfoType": "something_new",
        "Other": "kept",
    }
    assert "ticket@@@SECRET" not in encode(envelope).decode()
    assert envelope["authorizer_appid"] is None


def test_notice_attributes() -> None:
    envelope = notice(authorized_xml(), authorizer())
    assert attributes(envelope) == {
        "component_appid": APPID,
        "authorizer_appid": AUTHORIZER,
        "source": "events",
        "info_type": "authorized",
    }
    assert all(isinstance(v, str) for v in attributes(envelope).values())
