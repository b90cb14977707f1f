"""Safe XML parsing into typed push messages (protocol §2)."""

from __future__ import annotations

import pytest

from service.wechat.messages import (
    Authorized,
    ComponentVerifyTicket,
    MalformedXmlError,
    OversizedXmlError,
    Unauthorized,
    UnknownInfo,
    UnsafeXmlError,
    UpdateAuthorized,
    build_envelope,
    build_xml,
    parse_envelope,
    parse_message,
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


def test_unknown_info_type_is_kept_whole() -> None:
    xml = build_xml(
        {
            "AppId": "c",
            "CreateTime": 1,
            "InfoType": "notify_third_fasteregister",
            "appid": "wx1",
            "status": 0,
            "auth_code": "code",
        }
    )
    message = parse_message(xml)
    assert isinstance(message, UnknownInfo)
    assert message.info_type == "notify_third_fasteregister"
    assert message.fields["auth_code"] == "code"
    assert message.fields["status"] == "0"


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
