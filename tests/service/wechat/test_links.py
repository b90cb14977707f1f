"""Authorization links: formats of protocol §4.1 and the parameter checks."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from service.wechat.accounts import AUTH_TYPES
from service.wechat.links import (
    LinkParamError,
    LinkRequest,
    build_links,
    parse_link_request,
)

COMPONENT = "wx0123456789abcdef"
CODE = "preauthcode@@@abc+/="
REDIRECT = "https://gw.example.com/authorize/wx0123456789abcdef/callback?from=a&x=1"
MP, OPEN = "http://127.0.0.1:8081", "http://127.0.0.1:8081/"


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_pc_and_h5_links_carry_every_parameter_encoded() -> None:
    request = LinkRequest(3, REDIRECT, "wx00000000000000aa", (1, 18, 99))
    links = build_links(COMPONENT, CODE, request, mp_base=MP, open_base=OPEN)

    assert links.pc_url.startswith("http://127.0.0.1:8081/cgi-bin/componentloginpage?")
    assert links.h5_url.startswith("http://127.0.0.1:8081/wxaopen/safe/bindcomponent?")
    assert links.h5_legacy_url.startswith("http://127.0.0.1:8081/safe/bindcomponent?")
    for url in (links.h5_url, links.h5_legacy_url):
        assert url.endswith("#wechat_redirect")
        assert "action=bindcomponent&no_scan=1&" in url
    for url in (links.pc_url, links.h5_url, links.h5_legacy_url):
        q = query_of(url)
        assert q["component_appid"] == [COMPONENT]
        assert q["pre_auth_code"] == [CODE]
        assert q["redirect_uri"] == [REDIRECT]
        assert q["auth_type"] == ["3"]
        assert q["biz_appid"] == ["wx00000000000000aa"]
        assert q["category_id_list"] == ["1|18|99"]
        # The redirect URI is encoded whole: its own ? & = / : never show through.
        assert "redirect_uri=https%3A%2F%2Fgw.example.com%2Fauthorize%2F" in url
        assert "category_id_list=1|18|99" in url


def test_plugin_parameters_and_optional_biz_appid() -> None:
    links = build_links(COMPONENT, CODE, LinkRequest(2, REDIRECT))
    assert links.plugin == {"platformAppID": COMPONENT, "preAuthCode": CODE, "authType": 2}
    assert links.pc_url.startswith("https://mp.weixin.qq.com/cgi-bin/componentloginpage?")
    assert links.h5_url.startswith("https://open.weixin.qq.com/wxaopen/safe/bindcomponent?")
    assert "biz_appid" not in links.pc_url and "category_id_list" not in links.pc_url
    with_biz = build_links(COMPONENT, CODE, LinkRequest(2, REDIRECT, "wx00000000000000aa"))
    assert with_biz.plugin["bizAppid"] == "wx00000000000000aa"


@pytest.mark.parametrize("auth_type", sorted(AUTH_TYPES))
def test_every_documented_auth_type_is_accepted(auth_type: int) -> None:
    parsed = parse_link_request({"auth_type": auth_type}, REDIRECT)
    assert parsed == LinkRequest(auth_type, REDIRECT)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "auth_type"),
        ({"auth_type": 7}, "auth_type"),
        ({"auth_type": 0}, "auth_type"),
        ({"auth_type": True}, "auth_type"),
        ({"auth_type": "x"}, "auth_type"),
        ({"auth_type": 1, "biz_appid": "wxZZ"}, "biz_appid"),
        ({"auth_type": 1, "biz_appid": 5}, "biz_appid"),
        ({"auth_type": 1, "category_ids": "1|2"}, "category_ids"),
        ({"auth_type": 1, "category_ids": []}, "category_ids"),
        ({"auth_type": 1, "category_ids": [1, -2]}, "category_ids"),
        ({"auth_type": 1, "category_ids": [1.5]}, "category_ids"),
        ({"auth_type": 1, "redirect_uri": "ftp://x/y"}, "redirect_uri"),
        ({"auth_type": 1, "redirect_uri": "/relative"}, "redirect_uri"),
        ({"auth_type": 1, "redirect_uri": "https://a.example/cb#frag"}, "redirect_uri"),
        ({"auth_type": 1, "redirect_uri": "https://a.example/" + "x" * 1100}, "redirect_uri"),
        ({"auth_type": 1, "state": "x"}, "state"),
    ],
)
def test_bad_parameters_name_the_parameter(body: dict[str, Any], param: str) -> None:
    with pytest.raises(LinkParamError) as caught:
        parse_link_request(body, REDIRECT)
    assert caught.value.param == param
    assert str(caught.value).startswith(f"{param}: ")


def test_redirect_uri_is_required_when_there_is_no_default() -> None:
    with pytest.raises(LinkParamError, match="PUBLIC_BASE_URL"):
        parse_link_request({"auth_type": 1}, None)
    given = parse_link_request({"auth_type": 1, "redirect_uri": REDIRECT}, None)
    assert given.redirect_uri == REDIRECT


def test_category_ids_are_deduplicated_in_order() -> None:
    parsed = parse_link_request({"auth_type": 1, "category_ids": [7, 1, 7]}, REDIRECT)
    assert parsed.category_ids == (7, 1)
