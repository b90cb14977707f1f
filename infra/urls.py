"""The URLs a provider pastes into the WeChat open platform console, per component."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

import pulumi


def public_base_url(
    public_domain: str | None, deterministic_url: pulumi.Input[str]
) -> pulumi.Output[str]:
    """Where WeChat and merchants' browsers reach the public service."""
    if public_domain is not None:
        return pulumi.Output.from_input(f"https://{public_domain}")
    return pulumi.Output.from_input(deterministic_url)


def event_url(base: str, appid: str) -> str:
    """The 授权事件接收URL (authorization event receive URL)."""
    return f"{base}/wechat/{appid}/events"


def message_url(base: str, appid: str) -> str:
    """The 消息与事件接收URL: WeChat puts each authorized account's appid for ``$APPID$``."""
    return f"{base}/wechat/{appid}/messages/$APPID$"


def entry_url(base: str, appid: str) -> str:
    """Where a merchant starts authorizing (its host is the 授权发起页域名)."""
    return f"{base}/authorize/{appid}"


def callback_url(base: str, appid: str) -> str:
    return f"{base}/authorize/{appid}/callback"


def host(base: str) -> str:
    return urlsplit(base).hostname or ""


class AuthorizationUrls:
    """Per-appid URLs, as stack outputs (plain data, so not a resource)."""

    def __init__(self, base: pulumi.Output[str], appids: Sequence[str]) -> None:
        self.event_urls = base.apply(lambda b: {a: event_url(b, a) for a in appids})
        self.message_urls = base.apply(lambda b: {a: message_url(b, a) for a in appids})
        self.entry_urls = base.apply(lambda b: {a: entry_url(b, a) for a in appids})
        self.callback_urls = base.apply(lambda b: {a: callback_url(b, a) for a in appids})
        self.domain = base.apply(host)
