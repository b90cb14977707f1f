"""Safe XML parsing into typed push messages (protocol §2)."""

from __future__ import annotations

import pytest

from service.wechat.messages import (
    KNOWN_NOTICES,
    Authorized,
    ComponentVerifyTicket,
    MalformedXmlError,
    Notice,
    OversizedXmlError,
    Unauthorized,
    UnknownInfo,
    UnsafeXmlError,
    UpdateAuthorized,
    build_envelope,
    build_reply_envelope,
    build_xml,
    parse_account_message,
    parse_envelope,
    parse_message,
    parse_xml,
    text_reply,
)

TICKET_CDATA = """<xml>
<AppId><![CDATA[wx_component_appid]]></AppId>
<CreateTime>1413192605</CreateTime>
<InfoType><![CDATA[component_verify_ticket]]></InfoType>
<ComponentVerifyTicket><![CDATA[ticket@@@lEHjsBEi_TPDey0IZx]]></ComponentVerifyTicket>
</xml>"""

TICKET_PLAIN = """<xml><AppId>wx_component_appid</AppId><CreateTime>1413192605</CreateTime>
<InfoType>component_verify_ticket</InfoType>
<ComponentVerifyTicket>ticket@@@lEHjsBEi_TPDey0IZx</ComponentVerifyTicket></xml>"""

AUTHORIZED = """<xml>
<AppId><![CDATA[component_appid]]></AppId>
<CreateTime>1562428385</CreateTime>
<InfoType><![CDATA[{info_type}]]></InfoType>
<AuthorizerAppid><![CDATA[wxc736b9251b3c6c41]]></AuthorizerAppid>
<AuthorizationCode><![CDATA[queryauthcode@@@SozCwT_]]></AuthorizationCode>
<AuthorizationCodeExpiredTime>1562431985</AuthorizationCodeExpiredTime>
<PreAuthCode><![CDATA[preauthcode@@@c4Uh5v]]></PreAuthCode>
</xml>"""


@pytest.mark.parametrize("xml", [TICKET_CDATA, TICKET_PLAIN], ids=["cdata", "plain"])
def test_ticket_in_cdata_or_plain_text(xml: str) -> None:
    assert parse_message(xml) == ComponentVerifyTicket(
        app_id="wx_component_appid",
        create_time=1413192605,
        info_type="component_verify_ticket",
        ticket="ticket@@@lEHjsBEi_TPDey0IZx",
    )


@pytest.mark.parametrize(
    ("info_type", "kind"), [("authorized", Authorized), ("updateauthorized", UpdateAuthorized)]
)
def test_authorization_events(info_type: str, kind: type[Authorized]) -> None:
    message = parse_message(AUTHORIZED.format(info_type=info_type))
    assert type(message) is kind
    assert message == kind(
        app_id="component_appid",
        create_time=1562428385,
        info_type=info_type,
        authorizer_appid="wxc736b9251b3c6c41",
        authorization_code="queryauthcode@@@SozCwT_",
        authorization_code_expired_time=1562431985,
        pre_auth_code="preauthcode@@@c4Uh5v",
    )


def test_unauthorized() -> None:
    xml = (
        "<xml><AppId>c</AppId><CreateTime>1562428154</CreateTime><InfoType>unauthorized"
        "</InfoType><AuthorizerAppid>wxc736b9251b3c6c41</AuthorizerAppid></xml>"
    )
    assert parse_message(xml) == Unauthorized("c", 1562428154, "unauthorized", "wxc736b9251b3c6c41")


FASTEREGISTER = """<xml><AppId><![CDATA[c]]></AppId><CreateTime>1</CreateTime>
<InfoType><![CDATA[notify_third_fasteregister]]></InfoType>
<appid><![CDATA[wx1]]></appid><status>0</status><auth_code><![CDATA[code]]></auth_code>
<msg><![CDATA[OK]]></msg>
<info><name><![CDATA[某公司]]></name><code><![CDATA[123]]></code><code_type>1</code_type></info>
</xml>"""


def test_a_known_notice_is_recognised_and_kept_whole_with_its_nesting() -> None:
    message = parse_message(FASTEREGISTER)
    assert isinstance(message, Notice)
    assert message.info_type == "notify_third_fasteregister"
    assert "fast-registered" in message.description
    assert message.fields["auth_code"] == "code"
    assert message.fields["status"] == "0"
    assert message.fields["info"] == {"name": "某公司", "code": "123", "code_type": "1"}


@pytest.mark.parametrize("info_type", sorted(KNOWN_NOTICES))
def test_every_known_notice_parses_as_a_notice(info_type: str) -> None:
    xml = build_xml({"AppId": "c", "CreateTime": 1, "InfoType": info_type})
    assert type(parse_message(xml)) is Notice


def test_unknown_info_type_is_kept_whole() -> None:
    xml = build_xml({"AppId": "c", "CreateTime": 1, "InfoType": "notify_brand_new", "x": 2})
    message = parse_message(xml)
    assert isinstance(message, UnknownInfo)
    assert message.info_type == "notify_brand_new"
    assert message.fields["x"] == "2"


TEXT_MESSAGE = """<xml><ToUserName><![CDATA[gh_3c884a361561]]></ToUserName>
<FromUserName><![CDATA[OPENID]]></FromUserName><CreateTime>1496461028</CreateTime>
<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[TESTCOMPONENT_MSG_TYPE_TEXT]]></Content>
<MsgId>6427251175451672521</MsgId></xml>"""

LOCATION_EVENT = """<xml><ToUserName><![CDATA[gh_3c884a361561]]></ToUserName>
<FromUserName><![CDATA[OPENID]]></FromUserName><CreateTime>123456789</CreateTime>
<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[LOCATION]]></Event>
<Latitude>23.137466</Latitude><Longitude>113.352425</Longitude><Precision>119.385040</Precision>
</xml>"""

SCAN_EVENT = """<xml><ToUserName>gh_a</ToUserName><FromUserName>o1</FromUserName>
<CreateTime>1</CreateTime><MsgType>event</MsgType><Event>pic_photo_or_album</Event>
<SendPicsInfo><Count>2</Count><PicList><item><PicMd5Sum>a</PicMd5Sum></item>
<item><PicMd5Sum>b</PicMd5Sum></item></PicList></SendPicsInfo></xml>"""


def test_an_account_message_reads_the_doc_example() -> None:
    message = parse_account_message(TEXT_MESSAGE)
    assert (message.to_user_name, message.from_user_name) == ("gh_3c884a361561", "OPENID")
    assert (message.create_time, message.msg_type) == (1496461028, "text")
    assert message.content == "TESTCOMPONENT_MSG_TYPE_TEXT"
    assert message.msg_id == "6427251175451672521"  # 64-bit: kept as a string
    assert message.event is None
    assert message.dedup_key == "msg:6427251175451672521"


def test_an_event_is_deduplicated_by_sender_time_and_event() -> None:
    message = parse_account_message(LOCATION_EVENT)
    assert message.event == "LOCATION"
    assert message.fields["Latitude"] == "23.137466"
    assert message.dedup_key == "event:OPENID:123456789:LOCATION"
    other = parse_account_message(LOCATION_EVENT.replace("LOCATION", "CLICK"))
    assert other.dedup_key != message.dedup_key


def test_nested_event_fields_keep_their_structure() -> None:
    fields = parse_account_message(SCAN_EVENT).fields
    assert fields["SendPicsInfo"] == {
        "Count": "2",
        "PicList": {"item": [{"PicMd5Sum": "a"}, {"PicMd5Sum": "b"}]},
    }


@pytest.mark.parametrize(
    ("xml", "missing"),
    [
        (TEXT_MESSAGE.replace("<ToUserName><![CDATA[gh_3c884a361561]]></ToUserName>", ""), "To"),
        (TEXT_MESSAGE.replace("1496461028", "soon"), "CreateTime"),
        (LOCATION_EVENT.replace("<Event><![CDATA[LOCATION]]></Event>", ""), "Event"),
    ],
)
def test_an_account_message_without_its_required_fields_is_refused(xml: str, missing: str) -> None:
    with pytest.raises(MalformedXmlError, match=missing):
        parse_account_message(xml)


def test_a_text_reply_swaps_to_and_from() -> None:
    message = parse_account_message(TEXT_MESSAGE)
    reply = parse_xml(text_reply(message, "TESTCOMPONENT_MSG_TYPE_TEXT_callback", 1700000000))
    assert reply == {
        "ToUserName": "OPENID",
        "FromUserName": "gh_3c884a361561",
        "CreateTime": "1700000000",
        "MsgType": "text",
        "Content": "TESTCOMPONENT_MSG_TYPE_TEXT_callback",
    }


def test_the_reply_envelope_has_the_four_elements_of_the_official_samples() -> None:
    envelope = parse_xml(build_reply_envelope("ENC", "SIG", "1700000000", "42"))
    assert envelope == {
        "Encrypt": "ENC",
        "MsgSignature": "SIG",
        "TimeStamp": "1700000000",
        "Nonce": "42",
    }


def test_build_xml_round_trips_awkward_text() -> None:
    tricky = "a]]>b<c>&d 中文"
    fields = parse_message(
        build_xml(
            {"AppId": "c", "CreateTime": 5, "InfoType": "x", "Note": tricky},
        )
    )
    assert isinstance(fields, UnknownInfo) and fields.fields["Note"] == tricky


def test_envelope_from_a_platform_push() -> None:
    envelope = parse_envelope(build_envelope("wx1", "ENC+/="))
    assert (envelope.app_id, envelope.encrypt, envelope.to_user_name) == ("wx1", "ENC+/=", None)


XXE = """<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><AppId>&xxe;</AppId><Encrypt>x</Encrypt></xml>"""

BOMB = """<?xml version="1.0"?>
<!DOCTYPE xml [
<!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
]>
<xml><Encrypt>&d;</Encrypt></xml>"""

DTD = """<?xml version="1.0"?>
<!DOCTYPE xml SYSTEM "http://example.invalid/x.dtd">
<xml><Encrypt>x</Encrypt></xml>"""


@pytest.mark.parametrize("body", [XXE, BOMB, DTD], ids=["xxe", "entity-bomb", "dtd"])
def test_hostile_xml_is_refused(body: str) -> None:
    with pytest.raises(UnsafeXmlError, match="not allowed"):
        parse_envelope(body)
    with pytest.raises(UnsafeXmlError):
        parse_message(body)


def test_oversized_body_is_refused_before_parsing() -> None:
    body = "<xml><Encrypt>" + "A" * 2000 + "</Encrypt></xml>"
    with pytest.raises(OversizedXmlError, match="limit is 1000"):
        parse_envelope(body, max_bytes=1000)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("<xml><Encrypt>x</Encrypt>", "not well-formed"),
        ("", "not well-formed"),
        ("<root><Encrypt>x</Encrypt></root>", "expected <xml>"),
        ("<xml><AppId>wx</AppId></xml>", "no <Encrypt>"),
        ("<xml><Encrypt>   </Encrypt></xml>", "no <Encrypt>"),
    ],
)
def test_malformed_envelopes(body: str, reason: str) -> None:
    with pytest.raises(MalformedXmlError, match=reason):
        parse_envelope(body)


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        ("<xml><CreateTime>1</CreateTime><InfoType>x</InfoType></xml>", "AppId"),
        ("<xml><AppId>c</AppId><InfoType>x</InfoType></xml>", "CreateTime"),
        (
            "<xml><AppId>c</AppId><CreateTime>soon</CreateTime><InfoType>x</InfoType></xml>",
            "integer",
        ),
        ("<xml><AppId>c</AppId><CreateTime>1</CreateTime></xml>", "InfoType"),
        (
            "<xml><AppId>c</AppId><CreateTime>1</CreateTime>"
            "<InfoType>component_verify_ticket</InfoType></xml>",
            "ComponentVerifyTicket",
        ),
        (
            "<xml><AppId>c</AppId><CreateTime>1</CreateTime><InfoType>authorized</InfoType>"
            "<AuthorizerAppid>wx</AuthorizerAppid></xml>",
            "AuthorizationCode",
        ),
        (
            "<xml><AppId>c</AppId><CreateTime>1</CreateTime><InfoType>unauthorized</InfoType></xml>",
            "AuthorizerAppid",
        ),
    ],
)
def test_messages_missing_fields(xml: str, reason: str) -> None:
    with pytest.raises(MalformedXmlError, match=reason):
        parse_message(xml)
