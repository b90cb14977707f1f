"""Passive replies: the XML an account answers a user's message with (messages doc §4.3, §6).

A ``reply`` route's service answers JSON, in the shape of the customer-service API's
messages (``msgtype`` and its fields); ``passive_reply`` turns it into the reply XML, To and
From swapped, which the web layer encrypts. The types are the ones WeChat allows as a
passive reply: text, image, voice, video, music, news, and ``transfer_customer_service``
(hand the conversation to the customer-service staff).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from service.wechat.messages import AccountMessage, xml_elements

MAX_ARTICLES = 8  # WeChat shows at most 8 news items (1 since 2018 for new accounts)
# Characters outside XML 1.0's Char production: WeChat could not parse the reply, and a lone
# surrogate (JSON's "\ud800") could not even be encoded to be encrypted.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class ReplyError(ValueError):
    """The route's answer is not a reply WeChat would take; the text says why."""


def _text(value: Any, name: str, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise ReplyError(f"'{name}' must be a non-empty string")
    if _NOT_XML_CHAR.search(value):
        raise ReplyError(f"'{name}' holds a character XML does not allow")
    return value


def _element(tag: str, inner: Mapping[str, str]) -> str:
    return f"<{tag}>{xml_elements(inner)}</{tag}>"


def _media(tag: str) -> Callable[[Mapping[str, Any]], str]:
    return lambda body: _element(tag, {"MediaId": _text(body.get("media_id"), "media_id")})


def _video(body: Mapping[str, Any]) -> str:
    return _element(
        "Video",
        {
            "MediaId": _text(body.get("media_id"), "media_id"),
            "Title": _text(body.get("title"), "title", required=False),
            "Description": _text(body.get("description"), "description", required=False),
        },
    )


def _music(body: Mapping[str, Any]) -> str:
    return _element(
        "Music",
        {
            "Title": _text(body.get("title"), "title", required=False),
            "Description": _text(body.get("description"), "description", required=False),
            "MusicUrl": _text(body.get("music_url"), "music_url", required=False),
            "HQMusicUrl": _text(body.get("hq_music_url"), "hq_music_url", required=False),
            "ThumbMediaId": _text(body.get("thumb_media_id"), "thumb_media_id"),
        },
    )


def _news(body: Mapping[str, Any]) -> str:
    articles = body.get("articles")
    if not isinstance(articles, list) or not 1 <= len(articles) <= MAX_ARTICLES:
        raise ReplyError(f"'articles' must be a list of 1 to {MAX_ARTICLES} articles")
    items = []
    for article in articles:
        if not isinstance(article, dict):
            raise ReplyError("each article must be a JSON object")
        fields = {
            "Title": _text(article.get("title"), "title"),
            "Description": _text(article.get("description"), "description", required=False),
            "PicUrl": _text(article.get("pic_url"), "pic_url", required=False),
            "Url": _text(article.get("url"), "url", required=False),
        }
        items.append(_element("item", fields))
    return f"<ArticleCount>{len(items)}</ArticleCount><Articles>{''.join(items)}</Articles>"


def _transfer(body: Mapping[str, Any]) -> str:
    account = body.get("kf_account")
    if account is None:
        return ""
    return _element("TransInfo", {"KfAccount": _text(account, "kf_account")})


def _content(body: Mapping[str, Any]) -> str:
    return xml_elements({"Content": _text(body.get("content"), "content")})


_TYPES: Mapping[str, Callable[[Mapping[str, Any]], str]] = {
    "text": _content,
    "image": _media("Image"),
    "voice": _media("Voice"),
    "video": _video,
    "music": _music,
    "news": _news,
    "transfer_customer_service": _transfer,
}
REPLY_TYPES = tuple(_TYPES)


def passive_reply(message: AccountMessage, body: Any, create_time: int) -> str:
    """The reply XML for a route's JSON answer ``body`` (ReplyError if it is not one)."""
    if not isinstance(body, dict):
        raise ReplyError("the answer must be a JSON object")
    msgtype = body.get("msgtype")
    if not isinstance(msgtype, str) or msgtype not in _TYPES:
        raise ReplyError(f"'msgtype' must be one of {', '.join(REPLY_TYPES)}")
    head = xml_elements(
        {
            "ToUserName": message.from_user_name,
            "FromUserName": message.to_user_name,
            "CreateTime": create_time,
            "MsgType": msgtype,
        }
    )
    return f"<xml>{head}{_TYPES[msgtype](body)}</xml>"
