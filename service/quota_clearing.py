"""Resetting WeChat's API quotas with clear_quota (protocol §3.9): a component's, or one
authorizer's.

WeChat allows 10 resets a month and a reset is not safe to repeat, so the client sends it
once and never retries it blindly. Resetting the component's quota also ends the pause of
its ``api_authorizer_token`` calls after a 45009 (``service.authorizer_tokens``), so tokens
are renewed again at once. The component's secret is read here, never by the web layer.
"""

from __future__ import annotations

from collections.abc import Mapping

from service.authorizer_tokens import AuthorizerTokenManager
from service.config import ComponentConfig
from service.wechat.client import ComponentClient


class QuotaClearer:
    def __init__(
        self,
        client: ComponentClient,
        components: Mapping[str, ComponentConfig],
        authorizer_tokens: AuthorizerTokenManager,
    ) -> None:
        self.client = client
        self.components = components
        self.authorizer_tokens = authorizer_tokens

    def clear(self, component_appid: str, authorizer_appid: str | None = None) -> None:
        """The component's quotas, or with ``authorizer_appid`` that authorizer's."""
        secret = self.components[component_appid].secret
        self.client.clear_quota(component_appid, secret, authorizer_appid)
        if authorizer_appid is None:
            self.authorizer_tokens.end_quota_pause(component_appid)
