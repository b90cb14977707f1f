"""Passive replies: each type WeChat allows, as XML it parses, and the answers refused."""

from __future__ import annotations

from typing import Any

import pytest

from service.wechat.messages import AccountMessage, parse_xml_tree
from service.wechat.replies import MAX_ARTICLES, REPLY_TYPES, ReplyError, passive_reply

ACCOUNT = "gh_00000000000a"
OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
NOW = 1700000123

MESSAGE = AccountMessage(
    to_user_name=ACCOUNT,
    from_user_name=OPENID,
    create_time=1700000000,
    msg_type="text",
    fields={"Content": "hello", "MsgId": "6427251175451672521"},
)


def reply(body: Any, message: AccountMessage = MESSAGE) -> dict[str, Any]:
    """The reply's fields, parsed as the gateway parses pushes (safe, nesting kept)."""
    xml = passive_reply(message, body, NOW)
    assert xml.startswith("<xml>") and xml.endswith("</xml>")
    return parse_xml_tree(xml)


def head(msgtype: str) -> dict[str, str]:
    return {
        "ToUserName": OPENID,
        "FromUserName": ACCOUNT,
        "CreateTime": str(NOW),
        "MsgType": msgtype,
    }


def test_the_types_are_the_ones_wechat_allows_as_a_passive_reply() -> None:
    assert set(REPLY_TYPES) == {
        "text",
        "image",
        "voice",
        "video",
        "music",
        "news",
        "transfer_customer_service",
    }


def test_text() -> None:
    assert reply({"msgtype": "text", "content": "你好, world"}) == {
        **head("text"),
        "Content": "你好, world",
    }


def test_to_and_from_are_swapped_from_the_message() -> None:
    other = AccountMessage("gh_other", "o_someone_else", 1, "image", {})
    fields = reply({"msgtype": "text", "content": "x"}, other)
    assert (fields["ToUserName"], fields["FromUserName"]) == ("o_someone_else", "gh_other")


def test_create_time_is_the_one_given_not_the_message_s() -> None:
    xml = passive_reply(MESSAGE, {"msgtype": "text", "content": "x"}, 1800000000)
    assert parse_xml_tree(xml)["CreateTime"] == "1800000000"
    assert "<CreateTime>1800000000</CreateTime>" in xml  # an integer, not CDATA


@pytest.mark.parametrize(("msgtype", "tag"), [("image", "Image"), ("voice", "Voice")])
def test_image_and_voice(msgtype: str, tag: str) -> None:
    assert reply({"msgtype": msgtype, "media_id": "MEDIA_1"}) == {
        **head(msgtype),
        tag: {"MediaId": "MEDIA_1"},
    }


def test_video_with_and_without_its_title() -> None:
    full = {"msgtype": "video", "media_id": "M", "title": "T", "description": "D"}
    assert reply(full) == {
        **head("video"),
        "Video": {"MediaId": "M", "Title": "T", "Description": "D"},
    }
    bare = reply({"msgtype": "video", "media_id": "M"})
    assert bare["Video"] == {"MediaId": "M", "Title": "", "Description": ""}


def test_music() -> None:
    body = {
        "msgtype": "music",
        "title": "Song",
        "description": "Desc",
        "music_url": "https://m.example.com/a.mp3",
        "hq_music_url": "https://m.example.com/a-hq.mp3",
        "thumb_media_id": "THUMB",
    }
    assert reply(body) == {
        **head("music"),
        "Music": {
            "Title": "Song",
            "Description": "Desc",
            "MusicUrl": "https://m.example.com/a.mp3",
            "HQMusicUrl": "https://m.example.com/a-hq.mp3",
            "ThumbMediaId": "THUMB",
        },
    }
    assert reply({"msgtype": "music", "thumb_media_id": "THUMB"})["Music"]["ThumbMediaId"] == (
        "THUMB"
    )


def article(i: int) -> dict[str, str]:
    return {
        "title": f"Title {i}",
        "description": f"Desc {i}",
        "pic_url": f"https://p.example.com/{i}.jpg",
        "url": f"https://a.example.com/{i}?a=1&b=2",
    }


def item(i: int) -> dict[str, str]:
    return {
        "Title": f"Title {i}",
        "Description": f"Desc {i}",
        "PicUrl": f"https://p.example.com/{i}.jpg",
        "Url": f"https://a.example.com/{i}?a=1&b=2",
    }


def test_news_with_one_article() -> None:
    assert reply({"msgtype": "news", "articles": [article(1)]}) == {
        **head("news"),
        "ArticleCount": "1",
        "Articles": {"item": item(1)},
    }


@pytest.mark.parametrize("count", range(2, MAX_ARTICLES + 1))
def test_news_with_several_articles_in_order(count: int) -> None:
    fields = reply({"msgtype": "news", "articles": [article(i) for i in range(count)]})
    assert fields["ArticleCount"] == str(count)
    assert fields["Articles"]["item"] == [item(i) for i in range(count)]


def test_news_article_needs_only_a_title() -> None:
    fields = reply({"msgtype": "news", "articles": [{"title": "Only"}]})
    assert fields["Articles"]["item"] == {
        "Title": "Only",
        "Description": "",
        "PicUrl": "",
        "Url": "",
    }


def test_transfer_customer_service() -> None:
    assert reply({"msgtype": "transfer_customer_service"}) == head("transfer_customer_service")


def test_transfer_to_one_customer_service_account() -> None:
    body = {"msgtype": "transfer_customer_service", "kf_account": "test1@test"}
    assert reply(body) == {
        **head("transfer_customer_service"),
        "TransInfo": {"KfAccount": "test1@test"},
    }


@pytest.mark.parametrize(
    "content",
    [
        "a]]>b",
        "]]>",
        "]]]]>",
        "<![CDATA[x]]>",
        "</Content></xml><xml><Content>injected",
        "<b>&amp; & < > \" '</b>",
    ],
)
def test_text_that_would_end_cdata_stays_text(content: str) -> None:
    fields = reply({"msgtype": "text", "content": content})
    assert fields == {**head("text"), "Content": content}


def test_titles_and_urls_are_escaped_too() -> None:
    body = {"msgtype": "news", "articles": [{"title": "a]]>b", "url": "https://x/?q=]]>&z"}]}
    assert reply(body)["Articles"]["item"]["Title"] == "a]]>b"
    assert reply(body)["Articles"]["item"]["Url"] == "https://x/?q=]]>&z"


@pytest.mark.parametrize(
    "content",
    ["tab\there", "line\nbreak", "emoji 😀", "\ud7ff\ue000\ufffd\U0010ffff"],
)
def test_every_character_xml_allows_is_kept(content: str) -> None:
    assert reply({"msgtype": "text", "content": content})["Content"] == content


# ----- refused ---------------------------------------------------------------------------

REFUSED: dict[str, tuple[Any, str]] = {
    "a list": ([{"msgtype": "text", "content": "x"}], "must be a JSON object"),
    "a string": ("hello", "must be a JSON object"),
    "null": (None, "must be a JSON object"),
    "no msgtype": ({"content": "x"}, "'msgtype' must be one of text, image"),
    "unknown msgtype": ({"msgtype": "mpnews", "media_id": "M"}, "'msgtype' must be one of"),
    "msgtype in capitals": ({"msgtype": "TEXT", "content": "x"}, "'msgtype' must be one of"),
    "msgtype not a string": ({"msgtype": 1, "content": "x"}, "'msgtype' must be one of"),
    "msgtype a list": ({"msgtype": ["text"], "content": "x"}, "'msgtype' must be one of"),
    "text without content": ({"msgtype": "text"}, "'content' must be a non-empty string"),
    "text with empty content": ({"msgtype": "text", "content": ""}, "'content'"),
    "text with a number": ({"msgtype": "text", "content": 42}, "'content'"),
    "text with a list": ({"msgtype": "text", "content": ["a"]}, "'content'"),
    "image without media_id": ({"msgtype": "image"}, "'media_id' must be a non-empty string"),
    "voice with a number": ({"msgtype": "voice", "media_id": 1}, "'media_id'"),
    "video without media_id": ({"msgtype": "video", "title": "T"}, "'media_id'"),
    "video with a number title": (
        {"msgtype": "video", "media_id": "M", "title": 3},
        "'title' must be a non-empty string",
    ),
    "music without thumb": ({"msgtype": "music", "title": "T"}, "'thumb_media_id'"),
    "music with a bad url": (
        {"msgtype": "music", "thumb_media_id": "T", "music_url": {"a": 1}},
        "'music_url'",
    ),
    "news without articles": ({"msgtype": "news"}, "'articles' must be a list of 1 to 8"),
    "news with no article": ({"msgtype": "news", "articles": []}, "'articles'"),
    "news with nine articles": (
        {"msgtype": "news", "articles": [article(i) for i in range(9)]},
        "'articles' must be a list of 1 to 8",
    ),
    "news with an object": ({"msgtype": "news", "articles": article(1)}, "'articles'"),
    "news with a string article": (
        {"msgtype": "news", "articles": ["title"]},
        "each article must be a JSON object",
    ),
    "article without title": (
        {"msgtype": "news", "articles": [article(1), {"url": "https://x"}]},
        "'title' must be a non-empty string",
    ),
    "article with a number url": (
        {"msgtype": "news", "articles": [{"title": "T", "url": 5}]},
        "'url'",
    ),
    "transfer to an empty account": (
        {"msgtype": "transfer_customer_service", "kf_account": ""},
        "'kf_account'",
    ),
    "transfer to a number": (
        {"msgtype": "transfer_customer_service", "kf_account": 7},
        "'kf_account'",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_answers_that_are_not_replies_are_refused_saying_why(case: str) -> None:
    body, reason = REFUSED[case]
    with pytest.raises(ReplyError) as refused:
        passive_reply(MESSAGE, body, NOW)
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    "content",
    ["bell \x07", "nul \x00", "vertical tab \x0b", "escape \x1b[0m", "\ufffe", "\uffff"],
)
def test_characters_xml_does_not_allow_are_refused(content: str) -> None:
    """WeChat could not parse such a reply, and the user would see its error text."""
    with pytest.raises(ReplyError, match="'content'.*XML"):
        passive_reply(MESSAGE, {"msgtype": "text", "content": content}, NOW)


def test_a_lone_surrogate_from_json_is_refused() -> None:
    """JSON's ``"\\ud800"`` decodes to a str that cannot even be encoded for encryption."""
    body = {"msgtype": "news", "articles": [{"title": "ok", "description": "x\ud800"}]}
    with pytest.raises(ReplyError, match="'description'"):
        passive_reply(MESSAGE, body, NOW)


def test_reply_error_is_a_value_error() -> None:
    assert issubclass(ReplyError, ValueError)
