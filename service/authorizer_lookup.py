"""Which account a code exchange authorized, when its answer was lost and the code named none.

The browser's callback carries only the code. If ``api_query_auth`` reached WeChat and its
answer was lost, the code is spent and the tokens exist only at WeChat. The
``authorized`` push names the account and settles it, but it may come late or not at all.
Until then, ``api_get_authorizer_list`` tells: it lists every authorization with its
refresh token and ``auth_time``. The account authorized by this code was authorized at
most a code's lifetime (3600 s) before the exchange began; if exactly one listed account
fits, and it is not one we already hold as it is listed, it is the one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from service.component_token import ComponentTokenManager
from service.store.records import AuthorizationStore, AuthorizerStatus
from service.wechat.client import AuthorizerPage, ComponentClient, ListedAuthorizer

log = logging.getLogger(__name__)

CODE_LIFETIME = 3600  # an authorization code lives an hour (protocol §3.4)
PAGE_SIZE = 500
MAX_PAGES = 20  # 10,000 authorizations: past that, wait for the push or a sync instead


def recently_authorized(
    store: AuthorizationStore,
    client: ComponentClient,
    tokens: ComponentTokenManager,
    component_appid: str,
    exchange_started_at: float,
) -> str | None:
    """The appid the lost exchange must have authorized, or None if it cannot be told."""

    def page(offset: int) -> AuthorizerPage:
        return tokens.call_with_token(
            component_appid,
            lambda token: client.api_get_authorizer_list(component_appid, offset, PAGE_SIZE, token),
        )

    since = exchange_started_at - CODE_LIFETIME
    candidates = [e for e in _walk(page) if e.refresh_token and (e.auth_time or 0) >= since]
    new = [e.appid for e in candidates if not _held_as_listed(store, component_appid, e)]
    log.info(
        "lost code exchange: looked for the account it authorized",
        extra={
            "component_appid": component_appid,
            "recent": len(candidates),
            "not_held": len(new),
        },
    )
    return new[0] if len(new) == 1 else None


def _walk(page: Callable[[int], AuthorizerPage]) -> list[ListedAuthorizer]:
    listed: list[ListedAuthorizer] = []
    for _ in range(MAX_PAGES):
        answer = page(len(listed))
        listed.extend(answer.authorizers)
        if not answer.authorizers or len(listed) >= answer.total_count:
            return listed
    return listed


def _held_as_listed(store: AuthorizationStore, component_appid: str, e: ListedAuthorizer) -> bool:
    held = store.get_authorizer(component_appid, e.appid)
    return (
        held is not None
        and held.status == AuthorizerStatus.AUTHORIZED
        and held.refresh_token == e.refresh_token
    )
