"""The core behind the internal API's options and clear_quota routes, on the Firestore
emulator with WeChat faked in-process: which API and which token each ``via`` uses, a
rejected authorizer token renewed and the call made once more, the component's secret
sent with clear_quota, and a component's reset ending its 45009 pause (an authorizer's
does not). The routes themselves are proven over HTTP in tests/e2e/test_authorizer_api.py.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from service.authorizer_options import AuthorizerOptions, OptionVia
from service.authorizer_tokens import AuthorizerTokenManager, QuotaBackoffError
from service.config import ComponentConfig
from service.quota_clearing import QuotaClearer
from service.store.firestore import FirestoreStore
from service.wechat.client import AuthorizerOption
from service.wechat.errors import InvalidCredentialError, QuotaExceededError
from tests.service import test_authorizer_tokens as token_tests

COMPONENT, MERCHANT = token_tests.COMPONENT, token_tests.MERCHANT
SECRET = "component-secret"


class OptionsWeChat(token_tests.FakeWeChat):
    """Options and clear_quota, recorded; api_authorizer_token from the token tests' fake."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[Any, ...]] = []
        self.reject_token: str | None = None  # answered 40001 once
        self.options: dict[str, str] = {}

    def api_get_authorizer_option(
        self, component_appid: str, authorizer_appid: str, name: str, component_token: str
    ) -> AuthorizerOption:
        self.seen.append(("api_get", authorizer_appid, name, component_token))
        return AuthorizerOption(name, self.options.get(name, "0"))

    def api_set_authorizer_option(
        self,
        component_appid: str,
        authorizer_appid: str,
        name: str,
        value: str,
        component_token: str,
    ) -> None:
        self.seen.append(("api_set", authorizer_appid, name, value, component_token))
        self.options[name] = value

    def get_authorizer_option(self, name: str, access_token: str) -> AuthorizerOption:
        self._check(access_token)
        self.seen.append(("get", name, access_token))
        return AuthorizerOption(name, self.options.get(name, "0"))

    def set_authorizer_option(self, name: str, value: str, access_token: str) -> None:
        self._check(access_token)
        self.seen.append(("set", name, value, access_token))
        self.options[name] = value

    def clear_quota(
        self, component_appid: str, appsecret: str, authorizer_appid: str | None = None
    ) -> None:
        self.seen.append(("clear_quota", component_appid, appsecret, authorizer_appid))

    def _check(self, access_token: str) -> None:
        if access_token == self.reject_token:
            self.reject_token = None
            raise InvalidCredentialError(40001, "invalid credential", "get_authorizer_option")


def parts(store: FirestoreStore) -> tuple[OptionsWeChat, AuthorizerTokenManager]:
    wechat = OptionsWeChat()
    return wechat, token_tests.manager(store, wechat)


def options(store: FirestoreStore, wechat: OptionsWeChat) -> AuthorizerOptions:
    tokens = token_tests.manager(store, wechat)
    return AuthorizerOptions(wechat, tokens.component_tokens, tokens)  # type: ignore[arg-type]


def test_via_the_component_token_names_the_authorizer(store: FirestoreStore) -> None:
    wechat = OptionsWeChat()
    core = options(store, wechat)
    core.set(COMPONENT, MERCHANT, "voice_recognize", "1", OptionVia.COMPONENT_TOKEN)
    got = core.get(COMPONENT, MERCHANT, "voice_recognize", OptionVia.COMPONENT_TOKEN)
    assert got == AuthorizerOption("voice_recognize", "1")
    assert wechat.seen == [
        ("api_set", MERCHANT, "voice_recognize", "1", "component-token"),
        ("api_get", MERCHANT, "voice_recognize", "component-token"),
    ]
    assert wechat.calls == []  # no authorizer token was needed


def test_via_the_authorizer_token_uses_its_own_and_renews_a_rejected_one(
    store: FirestoreStore,
) -> None:
    token_tests.put(store, access_token="access-old", access_token_expires_at=time.time() + 3600)
    wechat = OptionsWeChat()
    wechat.reject_token = "access-old"  # WeChat says 40001 to the stored token
    core = options(store, wechat)
    core.set(COMPONENT, MERCHANT, "location_report", "2", OptionVia.AUTHORIZER_TOKEN)
    assert wechat.seen == [("set", "location_report", "2", "access-1")]
    assert wechat.calls == ["refreshtoken@@@r0"]  # renewed once, then the call once more
    got = core.get(COMPONENT, MERCHANT, "location_report", OptionVia.AUTHORIZER_TOKEN)
    assert got == AuthorizerOption("location_report", "2")
    assert wechat.seen[-1] == ("get", "location_report", "access-1")


def test_a_component_s_reset_sends_its_secret_and_ends_the_45009_pause(
    store: FirestoreStore,
) -> None:
    token_tests.put(store)
    wechat, tokens = parts(store)
    wechat.fail = QuotaExceededError(45009, "reach max api daily quota limit")
    with pytest.raises(QuotaBackoffError):
        tokens.get(COMPONENT, MERCHANT)
    components = {COMPONENT: ComponentConfig(COMPONENT, SECRET, "tok", "k" * 43)}
    quotas = QuotaClearer(wechat, components, tokens)

    quotas.clear(COMPONENT, MERCHANT)  # an authorizer's quota: the component's pause stays
    assert wechat.seen == [("clear_quota", COMPONENT, SECRET, MERCHANT)]
    assert store.get_component(COMPONENT).authorizer_token_quota_until is not None

    quotas.clear(COMPONENT)
    assert wechat.seen[-1] == ("clear_quota", COMPONENT, SECRET, None)
    assert store.get_component(COMPONENT).authorizer_token_quota_until is None
    wechat.fail = None
    assert tokens.get(COMPONENT, MERCHANT)[0].access_token == "access-2"
