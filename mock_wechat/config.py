"""Validated settings the control plane hands to the model: a component and its updates.

Validation lives in the values themselves, so the model and the HTTP layer share one set
of rules and a bad value is refused before it touches any state.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from mock_wechat.crypto import IllegalAesKeyError, decode_aes_key

DEFAULT_TICKET_INTERVAL = 600.0
MAX_LATENCY = 30.0  # seconds an api_authorizer_token answer may be held back
AUTH_PUSH_MODES = ("sync", "hold")  # deliver authorization pushes at once, or queue them
APPID_PLACEHOLDER = "$APPID$"  # in a message_url: the authorized account's appid
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


class InvalidField(ValueError):
    """One input field is wrong; ``str()`` says which and why (never its value)."""

    def __init__(self, name: str, reason: str) -> None:
        self.field = name
        self.reason = reason
        super().__init__(f"{name}: {reason}")


def check_event_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidField("event_url", "must be an absolute http(s) URL")


def check_message_url(url: str) -> None:
    """The 消息与事件接收URL: WeChat's console requires ``$APPID$`` in it, which WeChat
    replaces with the authorized account's appid on every message (messages doc §1)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidField("message_url", "must be an absolute http(s) URL")
    if APPID_PLACEHOLDER not in url:
        raise InvalidField("message_url", f"must contain {APPID_PLACEHOLDER} (WeChat requires it)")


def check_ticket_interval(seconds: float) -> None:
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidField("ticket_interval", "must be a number of seconds > 0")


def check_push_retries(retries: int) -> None:
    if retries < 0:
        raise InvalidField("push_retries", "must be an integer >= 0")


def check_latency(seconds: float) -> None:
    if not (math.isfinite(seconds) and 0 <= seconds <= MAX_LATENCY):
        raise InvalidField("authorizer_token_latency", f"must be seconds from 0 to {MAX_LATENCY:g}")


def check_auth_push(mode: str) -> None:
    if mode not in AUTH_PUSH_MODES:
        raise InvalidField("auth_push", f"must be one of {', '.join(AUTH_PUSH_MODES)}")


def check_auth_domain(domain: str) -> None:
    """The 授权发起页域名 is a bare host name: no scheme, port or path (protocol §4.3)."""
    if not _HOSTNAME.fullmatch(domain):
        raise InvalidField("auth_domain", "must be a host name such as gw.example.com")


@dataclass(frozen=True)
class ComponentConfig:
    """A 第三方平台 as registered on the mock (protocol §6, State)."""

    appid: str
    secret: str = field(repr=False)
    token: str = field(repr=False)
    encoding_aes_key: str = field(repr=False)
    event_url: str
    auth_domain: str
    ticket_interval: float = DEFAULT_TICKET_INTERVAL
    auto_push: bool = True
    push_retries: int = 0
    auth_push: str = "sync"
    rotate_refresh_tokens: bool = False
    # Every api_authorizer_token answer waits this long first (a benchmark's network).
    authorizer_token_latency: float = 0.0
    message_url: str | None = None  # 消息与事件接收URL, with $APPID$ in it

    def __post_init__(self) -> None:
        for name in ("appid", "secret", "token", "auth_domain"):
            if not getattr(self, name):
                raise InvalidField(name, "must be a non-empty string")
        check_auth_domain(self.auth_domain)
        try:
            decode_aes_key(self.encoding_aes_key)
        except IllegalAesKeyError:
            raise InvalidField(
                "encoding_aes_key", "must be 43 base64 characters that decode to 32 bytes"
            ) from None
        check_event_url(self.event_url)
        check_ticket_interval(self.ticket_interval)
        check_push_retries(self.push_retries)
        check_auth_push(self.auth_push)
        check_latency(self.authorizer_token_latency)
        if self.message_url is not None:
            check_message_url(self.message_url)

    def message_url_for(self, authorizer_appid: str) -> str | None:
        """Where a message to ``authorizer_appid`` goes: ``$APPID$`` replaced."""
        if self.message_url is None:
            return None
        return self.message_url.replace(APPID_PLACEHOLDER, authorizer_appid)


@dataclass(frozen=True)
class ComponentPatch:
    """The settings a running component may change; ``None`` leaves one as it is."""

    ticket_interval: float | None = None
    auto_push: bool | None = None
    push_retries: int | None = None
    event_url: str | None = None
    auth_push: str | None = None
    rotate_refresh_tokens: bool | None = None
    authorizer_token_latency: float | None = None
    message_url: str | None = None

    def __post_init__(self) -> None:
        if self.message_url is not None:
            check_message_url(self.message_url)
        if self.ticket_interval is not None:
            check_ticket_interval(self.ticket_interval)
        if self.push_retries is not None:
            check_push_retries(self.push_retries)
        if self.event_url is not None:
            check_event_url(self.event_url)
        if self.auth_push is not None:
            check_auth_push(self.auth_push)
        if self.authorizer_token_latency is not None:
            check_latency(self.authorizer_token_latency)
