"""Authorizations (授权) and their credentials: authorization codes, refresh and access tokens.

One ``Grant`` per (component, authorizer) pair holds the granted permission sets, the
refresh token and the current authorizer access token. Lifetimes follow protocol §5:
codes live 3600 s and are single use, access tokens 7200 s with a 300 s overlap after a
newer one is issued, refresh tokens never expire while the authorization lasts (with a
300 s overlap when the component rotates them). An authorization also keeps its authorizer
options (protocol §3.8) and whether any of its codes was exchanged (§3.7: until then the
authorizer list shows an empty refresh token). ``GrantBook`` has no lock of its own:
its owner calls it with the state's one lock held and passes mock time in.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from mock_wechat import errcodes as ec
from mock_wechat.errcodes import MockApiError

AUTH_CODE_TTL = 3600
AUTHORIZER_TOKEN_TTL = 7200
SUPERSEDED_GRACE = 300  # an old access or refresh token keeps working this long

ACTIVE = "active"
REVOKED = "revoked"
DEFAULT_OPTION_VALUE = 0  # an authorizer option never set (UNCONFIRMED, the mock's own)


def random_token(length: int) -> str:
    # token_urlsafe gives 4 characters per 3 bytes; draw enough, then cut to length.
    return secrets.token_urlsafe(length)[:length]


def new_access_token() -> str:
    """Shaped like WeChat's: two digits, an underscore, ~120 URL-safe characters."""
    return f"{secrets.randbelow(90) + 10}_{random_token(120)}"


def _new_refresh_token() -> str:
    return "refreshtoken@@@" + random_token(43)


class _Expiring(Protocol):
    @property
    def superseded_at(self) -> float | None: ...

    @property
    def expires_at(self) -> float: ...


_Token = TypeVar("_Token", bound=_Expiring)


def live_token(
    value: str | None, tokens: Mapping[str, _Token], now: float, grace: float = SUPERSEDED_GRACE
) -> _Token:
    """The stored token named ``value``, if it may still be used: 41001 missing, 40001
    unknown or superseded more than ``grace`` seconds ago, 42001 expired."""
    if not value:
        raise MockApiError(ec.ACCESS_TOKEN_MISSING)
    token = tokens.get(value)
    if token is None:
        raise MockApiError(ec.INVALID_CREDENTIAL)
    if token.superseded_at is not None and now - token.superseded_at > grace:
        raise MockApiError(ec.INVALID_CREDENTIAL)
    if now >= token.expires_at:
        raise MockApiError(ec.ACCESS_TOKEN_EXPIRED)
    return token


def func_info(func_ids: Sequence[int]) -> list[dict[str, Any]]:
    return [{"funcscope_category": {"id": i}} for i in func_ids]


@dataclass
class AuthorizationCode:
    value: str = field(repr=False)
    component: str
    authorizer_appid: str
    issued_at: float
    expires_at: float
    used: bool = False
    queries: int = 0  # api_query_auth calls that named it, refused ones too


@dataclass
class AuthorizerToken:
    value: str = field(repr=False)
    component: str
    authorizer_appid: str
    issued_at: float
    expires_at: float
    superseded_at: float | None = None


@dataclass
class Grant:
    component: str
    authorizer_appid: str
    status: str
    func_ids: tuple[int, ...]
    auth_time: float
    refresh_token: str = field(repr=False)
    previous_refresh_token: str | None = field(default=None, repr=False)
    refresh_superseded_at: float | None = None
    current_token: str | None = field(default=None, repr=False)
    last_code: str | None = field(default=None, repr=False)
    exchanged: bool = False  # some code of this authorization went through api_query_auth
    options: dict[str, int] = field(default_factory=dict)  # authorizer options set (§3.8)

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    def option(self, name: str) -> int:
        """An authorizer option's value (protocol §3.8), 0 when never set."""
        return self.options.get(name, DEFAULT_OPTION_VALUE)

    def accepts_refresh_token(self, value: str, now: float) -> bool:
        if secrets.compare_digest(value.encode(), self.refresh_token.encode()):
            return True
        previous, since = self.previous_refresh_token, self.refresh_superseded_at
        return (
            previous is not None
            and since is not None
            and now - since <= SUPERSEDED_GRACE
            and secrets.compare_digest(value.encode(), previous.encode())
        )


class GrantBook:
    def __init__(self) -> None:
        self._issued: dict[str, list[str]] = {
            "authorization_codes": [],
            "authorizer_access_tokens": [],
            "authorizer_refresh_tokens": [],
        }
        self._grants: dict[tuple[str, str], Grant] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._tokens: dict[str, AuthorizerToken] = {}

    # ----- records ------------------------------------------------------------------

    def find(self, component: str, authorizer_appid: str) -> Grant | None:
        return self._grants.get((component, authorizer_appid))

    def active(self, component: str, authorizer_appid: str | None) -> Grant:
        """The live authorization, or 61003 (never authorized, revoked or unknown appid)."""
        grant = self._grants.get((component, authorizer_appid or ""))
        if grant is None or not grant.active:
            raise MockApiError(ec.NOT_AUTHORIZED)
        return grant

    def of_authorizer(self, authorizer_appid: str) -> list[Grant]:
        return [
            copy.copy(g) for g in self._grants.values() if g.authorizer_appid == authorizer_appid
        ]

    def of_component(self, component: str) -> list[Grant]:
        """The component's live authorizations (copies), in no particular order."""
        return [
            copy.copy(g) for g in self._grants.values() if g.component == component and g.active
        ]

    def code_queries(self, value: str) -> int:
        """How many api_query_auth calls named this code (0 for an unknown code)."""
        code = self._codes.get(value)
        return code.queries if code is not None else 0

    def code_exchanged(self, grant: Grant) -> bool:
        code = self._codes.get(grant.last_code or "")
        return code is not None and code.used

    def grant(
        self, component: str, authorizer_appid: str, func_ids: Sequence[int], now: float
    ) -> tuple[Grant, tuple[int, ...] | None]:
        """Create or update the authorization; returns it and the sets it had while active.

        A new or revoked authorization gets a new refresh token; a live one keeps its own.
        """
        grant = self._grants.get((component, authorizer_appid))
        before = grant.func_ids if grant is not None and grant.active else None
        if grant is None or not grant.active:
            grant = Grant(
                component=component,
                authorizer_appid=authorizer_appid,
                status=ACTIVE,
                func_ids=tuple(func_ids),
                auth_time=now,
                refresh_token=self._record("authorizer_refresh_tokens", _new_refresh_token()),
            )
            self._grants[(component, authorizer_appid)] = grant
        else:
            grant.func_ids = tuple(func_ids)
            grant.auth_time = now
        return grant, before

    def revoke(self, grant: Grant) -> None:
        """The merchant cancelled: every code and token of this authorization dies."""
        grant.status = REVOKED
        grant.previous_refresh_token = grant.refresh_superseded_at = None
        grant.current_token = None
        pair = (grant.component, grant.authorizer_appid)
        for store in (self._codes, self._tokens):
            dead = [k for k, v in store.items() if (v.component, v.authorizer_appid) == pair]
            for key in dead:
                del store[key]

    def _record(self, kind: str, value: str) -> str:
        self._issued[kind].append(value)
        return value

    def issued(self) -> dict[str, list[str]]:
        """Every code, access token and refresh token this book issued, revoked ones too."""
        return {kind: list(values) for kind, values in self._issued.items()}

    # ----- codes and tokens ---------------------------------------------------------

    def issue_code(self, grant: Grant, now: float) -> AuthorizationCode:
        code = AuthorizationCode(
            value="queryauthcode@@@" + random_token(84),
            component=grant.component,
            authorizer_appid=grant.authorizer_appid,
            issued_at=now,
            expires_at=now + AUTH_CODE_TTL,
        )
        self._codes[self._record("authorization_codes", code.value)] = code
        grant.last_code = code.value
        return code

    def _issue_access_token(self, grant: Grant, now: float) -> AuthorizerToken:
        previous = self._tokens.get(grant.current_token or "")
        if previous is not None and previous.superseded_at is None:
            previous.superseded_at = now
        token = AuthorizerToken(
            value=new_access_token(),
            component=grant.component,
            authorizer_appid=grant.authorizer_appid,
            issued_at=now,
            expires_at=now + AUTHORIZER_TOKEN_TTL,
        )
        self._tokens[self._record("authorizer_access_tokens", token.value)] = token
        grant.current_token = token.value
        return token

    def check_token(self, value: str | None, now: float) -> AuthorizerToken:
        """An authorizer access token's owner: 41001 missing, 40001 unknown, revoked or
        superseded past its grace, 42001 expired."""
        return copy.copy(live_token(value, self._tokens, now))

    # ----- API answers --------------------------------------------------------------

    def query_auth(self, component: str, value: str | None, now: float) -> dict[str, Any]:
        """api_query_auth (protocol §3.4): exchange a single-use code for the tokens."""
        code = self._codes.get(value or "")
        if code is not None:
            code.queries += 1
        if code is None or code.component != component:
            raise MockApiError(ec.CODE_INVALID)
        if code.used or now >= code.expires_at:
            raise MockApiError(ec.CODE_EXPIRED)
        grant = self.active(component, code.authorizer_appid)
        code.used = True
        grant.exchanged = True
        token = self._issue_access_token(grant, now)
        return {
            "authorization_info": {
                "authorizer_appid": grant.authorizer_appid,
                "authorizer_access_token": token.value,
                "expires_in": AUTHORIZER_TOKEN_TTL,
                "authorizer_refresh_token": grant.refresh_token,
                "func_info": func_info(grant.func_ids),
            }
        }

    def authorizer_token(
        self,
        component: str,
        authorizer_appid: str | None,
        refresh_token: str | None,
        rotate: bool,
        now: float,
    ) -> dict[str, Any]:
        """api_authorizer_token (protocol §3.5): a new access token for a refresh token."""
        grant = self.active(component, authorizer_appid)
        if refresh_token is None or not grant.accepts_refresh_token(refresh_token, now):
            raise MockApiError(ec.REFRESH_TOKEN_INVALID)
        if rotate:
            grant.previous_refresh_token = grant.refresh_token
            grant.refresh_superseded_at = now
            grant.refresh_token = self._record("authorizer_refresh_tokens", _new_refresh_token())
        token = self._issue_access_token(grant, now)
        return {
            "authorizer_access_token": token.value,
            "expires_in": AUTHORIZER_TOKEN_TTL,
            "authorizer_refresh_token": grant.refresh_token,
        }
