"""Reading and setting an authorizer's options (protocol §3.8), through either token.

WeChat offers both: the component's API names the authorizer and takes the component
token (``api_get_authorizer_option``); the newer one takes the authorizer's own token
(``get_authorizer_option``). The caller picks one (``via``); which token, its renewal and
the one retry after WeChat rejects a token are this module's business, not the caller's.
"""

from __future__ import annotations

from enum import StrEnum

from service.authorizer_tokens import AuthorizerTokenManager
from service.component_token import ComponentTokenManager
from service.wechat.client import AuthorizerOption, ComponentClient


class OptionVia(StrEnum):
    COMPONENT_TOKEN = "component_token"
    AUTHORIZER_TOKEN = "authorizer_token"


class AuthorizerOptions:
    def __init__(
        self,
        client: ComponentClient,
        component_tokens: ComponentTokenManager,
        authorizer_tokens: AuthorizerTokenManager,
    ) -> None:
        self.client = client
        self.component_tokens = component_tokens
        self.authorizer_tokens = authorizer_tokens

    def get(
        self, component_appid: str, authorizer_appid: str, name: str, via: OptionVia
    ) -> AuthorizerOption:
        client = self.client
        if via is OptionVia.COMPONENT_TOKEN:
            return self.component_tokens.call_with_token(
                component_appid,
                lambda t: client.api_get_authorizer_option(
                    component_appid, authorizer_appid, name, t
                ),
            )
        return self.authorizer_tokens.call_with_token(
            component_appid, authorizer_appid, lambda t: client.get_authorizer_option(name, t)
        )

    def set(
        self, component_appid: str, authorizer_appid: str, name: str, value: str, via: OptionVia
    ) -> None:
        client = self.client
        if via is OptionVia.COMPONENT_TOKEN:
            self.component_tokens.call_with_token(
                component_appid,
                lambda t: client.api_set_authorizer_option(
                    component_appid, authorizer_appid, name, value, t
                ),
            )
        else:
            self.authorizer_tokens.call_with_token(
                component_appid,
                authorizer_appid,
                lambda t: client.set_authorizer_option(name, value, t),
            )
