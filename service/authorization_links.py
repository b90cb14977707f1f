"""Issuing authorization links: a fresh pre_auth_code each time (protocol §3.3, §2.2).

A pre_auth_code is single use, so every link (the PC page, both H5 forms, the plugin's
parameters) is built on a new one, and nothing is stored: the code that comes back on the
callback is what counts (``service.code_exchange``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from service.component_token import ComponentTokenManager
from service.config import Settings
from service.wechat.client import ComponentClient
from service.wechat.links import AuthorizeLinks, LinkRequest, build_links

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuedLinks:
    links: AuthorizeLinks
    pre_auth_code: str
    expires_at: float
    request: LinkRequest


class LinkIssuer:
    def __init__(
        self,
        client: ComponentClient,
        tokens: ComponentTokenManager,
        settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.tokens = tokens
        self.settings = settings
        self.clock = clock

    def issue(self, component_appid: str, request: LinkRequest) -> IssuedLinks:
        """A fresh pre_auth_code (single use) and every link form built on it."""
        asked_at = self.clock()
        pre = self.tokens.call_with_token(
            component_appid,
            lambda token: self.client.api_create_preauthcode(component_appid, token),
        )
        links = build_links(
            component_appid,
            pre.code,
            request,
            mp_base=self.settings.wechat_mp_base,
            open_base=self.settings.wechat_open_base,
        )
        log.info(
            "authorization links issued",
            extra={
                "component_appid": component_appid,
                "auth_type": request.auth_type,
                "biz_appid": request.biz_appid,
            },
        )
        return IssuedLinks(links, pre.code, asked_at + pre.expires_in, request)
