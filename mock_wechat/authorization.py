"""The merchant's side of authorization: pre-auth codes, page sessions and the confirmation.

The HTML pages and the headless control endpoint both end in ``Authorizations.confirm``
or ``Authorizations.authorize``, which share one implementation of the rules (protocol
§4.2-§4.4): which accounts an admin may pick, which permission sets are offered, and
what a confirmation changes. A confirmation returns the push it caused; the caller
delivers it after the lock is released, because the receiver may call straight back
into the mock's APIs. Pushes of a component with ``auth_push: "hold"`` are queued here.

The stateless rules (parsing, the domain check, messages) are in ``auth_rules``.
"""

from __future__ import annotations

import copy
import logging
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mock_wechat import errcodes as ec
from mock_wechat.auth_rules import (
    AUTHORIZED,
    UNAUTHORIZED,
    UPDATEAUTHORIZED,
    AuthRuleError,
    Refusal,
    check_auth_type,
    check_origin,
    check_redirect_uri,
    chosen_sets,
    granted_message,
    parse_auth_type,
    parse_category_id_list,
    unauthorized_message,
    with_auth_code,
)
from mock_wechat.clock import Clock
from mock_wechat.config import ComponentConfig
from mock_wechat.errcodes import MockApiError
from mock_wechat.grants import AUTH_CODE_TTL, Grant, GrantBook, func_info, random_token
from mock_wechat.merchant_accounts import Account, AccountBook, AccountSpec, authorizer_info
from mock_wechat.protocol import (
    AUTH_TYPE_LISTS,
    DEFAULT_AUTH_TYPE,
    AccountKind,
    PermissionSet,
    sets_of,
)
from mock_wechat.pushlog import PendingPush, PushLog

log = logging.getLogger(__name__)

PRE_AUTH_CODE_TTL = 1800


@dataclass
class PreAuthCode:
    value: str = field(repr=False)
    component: str
    issued_at: float
    expires_at: float
    used: bool = False


@dataclass(frozen=True)
class AuthRequest:
    """What the link to the authorization page asked for (protocol §4.1-§4.2)."""

    component: str
    pre_auth_code: str = field(repr=False)
    redirect_uri: str | None
    auth_type: int | None = None
    biz_appid: str | None = None
    category_filter: frozenset[int] | None = None  # category_id_list; None offers all


@dataclass(frozen=True)
class PageSession:
    id: str = field(repr=False)
    kind: str  # "pc" or "h5"
    request: AuthRequest
    created_at: float
    expires_at: float  # the pre-auth code's


@dataclass(frozen=True)
class Offer:
    account: Account
    sets: list[PermissionSet]


@dataclass(frozen=True)
class Notice:
    """A push an authorization change caused: to deliver now, or already queued."""

    push: PendingPush = field(repr=False)
    held: bool  # queued by auth_push "hold"; the caller delivers it only when False


@dataclass(frozen=True)
class Confirmation:
    """What a confirmed (or merchant-updated) authorization produced."""

    auth_code: str = field(repr=False)
    expires_in: int
    info_type: str
    redirect_url: str | None = field(repr=False)
    notice: Notice


ComponentLookup = Callable[[str], ComponentConfig | None]


class Authorizations:
    """Pre-auth codes, page sessions and authorizations; every method is thread-safe."""

    def __init__(
        self,
        lock: threading.RLock,
        clock: Clock,
        accounts: AccountBook,
        push_log: PushLog,
        component: ComponentLookup,
    ) -> None:
        self._lock = lock
        self._clock = clock
        self._accounts = accounts
        self._push_log = push_log
        self._component_config = component
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self._pre_auth_codes: dict[str, PreAuthCode] = {}
            self._sessions: dict[str, PageSession] = {}
            self._grants = GrantBook()

    @property
    def grants(self) -> GrantBook:
        """The authorizations themselves, for the state's other API modules.

        Use it with the state's lock held (as every API call is): the book is replaced
        on reset, and its records are live.
        """
        return self._grants

    # ----- pre-auth codes -----------------------------------------------------------

    def create_pre_auth_code(self, component: str) -> PreAuthCode:
        with self._lock:
            now = self._clock.now()
            code = PreAuthCode(
                value="preauthcode@@@" + random_token(86),
                component=component,
                issued_at=now,
                expires_at=now + PRE_AUTH_CODE_TTL,
            )
            self._pre_auth_codes[code.value] = code
            return copy.copy(code)

    def pre_auth_code(self, value: str) -> PreAuthCode | None:
        with self._lock:
            code = self._pre_auth_codes.get(value)
            return copy.copy(code) if code else None

    # ----- the pages ----------------------------------------------------------------

    def open_session(
        self,
        kind: str,
        query: Mapping[str, str],
        referer: str | None,
    ) -> PageSession:
        """Check a componentloginpage / bindcomponent link, in the pages' order, and
        start a page session that lives as long as its pre-auth code."""
        with self._lock:
            component = query.get("component_appid") or ""
            config = self._config(component)
            redirect_uri = query.get("redirect_uri") or None
            check_origin(config.auth_domain, referer, redirect_uri)
            code = self._live_pre_auth_code(component, query.get("pre_auth_code") or "")
            request = AuthRequest(
                component=component,
                pre_auth_code=code.value,
                redirect_uri=redirect_uri,
                auth_type=parse_auth_type(query.get("auth_type")),
                biz_appid=self._known_biz_appid(query.get("biz_appid") or None),
                category_filter=parse_category_id_list(query.get("category_id_list")),
            )
            session = PageSession(
                id=secrets.token_urlsafe(18),
                kind=kind,
                request=request,
                created_at=self._clock.now(),
                expires_at=code.expires_at,
            )
            self._sessions[session.id] = session
        log.info("authorization page opened", extra={"component": component, "kind": kind})
        return session

    def session(self, session_id: str | None) -> PageSession:
        """A page session whose pre-auth code is still unexpired and unused."""
        with self._lock:
            session = self._sessions.get(session_id or "")
            if session is None:
                raise AuthRuleError(
                    "session", "页面已失效，请重新发起授权 (unknown session)", Refusal.UNKNOWN
                )
            self._validate(session.request)
            return session

    def listing(self, session_id: str | None, admin: str) -> list[Account]:
        """The accounts the admin may pick on this session's page."""
        with self._lock:
            request = self.session(session_id).request
            accounts = self._listable(request, admin)
            if not accounts:
                raise AuthRuleError(
                    "no_accounts",
                    "该微信号没有可授权的帐号 (no account this admin can authorize)",
                    Refusal.CONFLICT,
                )
            return accounts

    def offer(self, session_id: str | None, admin: str, authorizer_appid: str) -> Offer:
        with self._lock:
            request = self.session(session_id).request
            account = self._allowed_account(request, admin, authorizer_appid)
            return Offer(account, self._offered(request, account))

    def confirm(
        self, session_id: str | None, admin: str, authorizer_appid: str, category_ids: Sequence[int]
    ) -> Confirmation:
        with self._lock:
            request = self.session(session_id).request
            return self._confirm(request, admin, authorizer_appid, category_ids)

    def deny(self, session_id: str | None, admin: str, authorizer_appid: str) -> str | None:
        """The admin refused: nothing changes; the browser goes back to redirect_uri."""
        with self._lock:
            request = self.session(session_id).request
            self._allowed_account(request, admin, authorizer_appid)
        log.info("authorization denied", extra={"component": request.component})
        return request.redirect_uri

    # ----- headless (control plane) -------------------------------------------------

    def authorize(
        self,
        request: AuthRequest,
        authorizer_appid: str,
        admin: str | None = None,
        category_ids: Sequence[int] | None = None,
    ) -> Confirmation:
        """The page flow without a browser: the same rules, then the same confirmation."""
        with self._lock:
            config = self._config(request.component)
            if request.redirect_uri is not None:
                check_redirect_uri(config.auth_domain, request.redirect_uri)
            self._validate(request)
            account = self._account(authorizer_appid)
            return self._confirm(request, admin or account.admin, authorizer_appid, category_ids)

    def seed(self, component: str, kind: AccountKind, count: int) -> list[Grant]:
        """``count`` new accounts of ``kind``, each authorized to ``component`` with every
        permission set of its type and its code already exchanged, as if the pages and the
        component's api_query_auth had run (one lock for the batch; no push is sent).

        Returns copies of the grants, in creation order.
        """
        sets = [s.id for s in sets_of(kind)]
        with self._lock:
            self._config(component)
            now = self._clock.now()
            admin = "seed_" + secrets.token_hex(4)  # one admin per batch, for the pages
            seeded = []
            for number in range(1, count + 1):
                account = self._accounts.add(
                    AccountSpec(
                        type=kind,
                        nick_name=f"seeded {kind.value} {number}",
                        principal_name="seeded merchant",
                        admin=admin,
                    )
                )
                grant, _ = self._grants.grant(component, account.appid, sets, now)
                code = self._grants.issue_code(grant, now)
                self._grants.query_auth(component, code.value, now)
                seeded.append(copy.copy(grant))
        log.info(
            "authorizers seeded",
            extra={"component": component, "count": count, "type": kind.value},
        )
        return seeded

    def pre_authorize(self, component: str, spec: AccountSpec) -> Confirmation:
        """What WeChat does to a test account before a release check (messages doc §4.2):
        the account (created from ``spec`` if missing) is authorized with every permission
        set of its type (a live authorization is granted again) and a fresh code is made.

        The ``authorized`` push is never held: the caller delivers it directly.
        """
        if spec.appid is None:
            raise ValueError("a pre-authorized account needs its fixed appid")
        with self._lock:
            self._config(component)
            account = self._accounts.find(spec.appid) or self._accounts.add(spec)
            sets = [s.id for s in sets_of(account.type)]
            now = self._clock.now()
            grant, _ = self._grants.grant(component, account.appid, sets, now)
            code = self._grants.issue_code(grant, now)
            message = granted_message(AUTHORIZED, component, now, account.appid, code.value, "")
            push = PendingPush(component, AUTHORIZED, message, now)
        log.info(
            "test account pre-authorized",
            extra={"component": component, "authorizer": account.appid},
        )
        return Confirmation(code.value, AUTH_CODE_TTL, AUTHORIZED, None, Notice(push, held=False))

    def code_queries(self, value: str) -> int:
        """How many api_query_auth calls named the code ``value``, refused ones too."""
        with self._lock:
            return self._grants.code_queries(value)

    def unauthorize(self, component: str, authorizer_appid: str) -> Notice:
        """The merchant cancels on mp.weixin.qq.com: tokens die, ``unauthorized`` is pushed."""
        with self._lock:
            self._config(component)
            self._account(authorizer_appid)
            grant = self._live_grant(component, authorizer_appid)
            self._grants.revoke(grant)
            now = self._clock.now()
            message = unauthorized_message(component, now, authorizer_appid)
            notice = self._notice(PendingPush(component, UNAUTHORIZED, message, now))
        log.info(
            "authorization revoked", extra={"component": component, "authorizer": authorizer_appid}
        )
        return notice

    def update_authorization(
        self, component: str, authorizer_appid: str, category_ids: Sequence[int]
    ) -> Confirmation:
        """The merchant changes the granted sets on mp.weixin.qq.com (更新授权)."""
        with self._lock:
            self._config(component)
            account = self._account(authorizer_appid)
            self._live_grant(component, authorizer_appid)
            offered = [s.id for s in sets_of(account.type)]
            chosen = chosen_sets(offered, category_ids)
            now = self._clock.now()
            grant, _ = self._grants.grant(component, authorizer_appid, chosen, now)
            code = self._grants.issue_code(grant, now)
            # No page was involved, so there is no pre-auth code to echo.
            message = granted_message(
                UPDATEAUTHORIZED, component, now, authorizer_appid, code.value, ""
            )
            notice = self._notice(PendingPush(component, UPDATEAUTHORIZED, message, now))
        log.info(
            "authorization updated", extra={"component": component, "authorizer": authorizer_appid}
        )
        return Confirmation(code.value, AUTH_CODE_TTL, UPDATEAUTHORIZED, None, notice)

    def issued(self) -> dict[str, list[str]]:
        """Every pre-auth code, authorization code and authorizer token issued so far."""
        with self._lock:
            return {"pre_auth_codes": list(self._pre_auth_codes), **self._grants.issued()}

    def account_view(self, appid: str) -> dict[str, Any]:
        """An account and its authorization by each component, for the control plane."""
        with self._lock:
            view = self._accounts.get(appid).public()
            view["authorizations"] = [
                {
                    "component_appid": g.component,
                    "status": g.status,
                    "func_info": list(g.func_ids),
                    "auth_time": g.auth_time,
                    "code_exchanged": self._grants.code_exchanged(g),
                }
                for g in self._grants.of_authorizer(appid)
            ]
            return view

    # ----- WeChat APIs (the component token was checked by the caller) --------------

    def exchange_code(self, component: str, code: str | None) -> dict[str, Any]:
        """api_query_auth's answer: a single-use authorization code for the tokens."""
        with self._lock:
            return self._grants.query_auth(component, code, self._clock.now())

    def refresh_authorizer_token(
        self, component: str, authorizer_appid: str | None, refresh_token: str | None
    ) -> dict[str, Any]:
        """api_authorizer_token's answer: a new access token for a refresh token."""
        with self._lock:
            config = self._component_config(component)
            return self._grants.authorizer_token(
                component,
                authorizer_appid,
                refresh_token,
                rotate=config is not None and config.rotate_refresh_tokens,
                now=self._clock.now(),
            )

    def authorizer_info(self, component: str, authorizer_appid: str | None) -> dict[str, Any]:
        """api_get_authorizer_info's answer: the account and its authorization (61003)."""
        with self._lock:
            grant = self._grants.active(component, authorizer_appid)
            account = self._accounts.find(grant.authorizer_appid)
            if account is None:  # cannot happen while accounts and grants reset together
                raise MockApiError(ec.NOT_AUTHORIZED)
            return {
                "authorizer_info": authorizer_info(account),
                "authorization_info": {
                    "authorizer_appid": grant.authorizer_appid,
                    "authorizer_refresh_token": grant.refresh_token,
                    "func_info": func_info(grant.func_ids),
                },
            }

    def check_authorizer_token(self, value: str | None) -> str:
        """The authorizer appid an authorizer access token acts for.

        Raises ``MockApiError`` 41001 (missing), 40001 (unknown, revoked, or superseded
        more than 300 s ago) or 42001 (expired).
        """
        with self._lock:
            return self._grants.check_token(value, self._clock.now()).authorizer_appid

    def acting(self, token: str | None) -> tuple[Grant, Account]:
        """The live authorization an authorizer access token acts for, and its account
        (41001/40001/42001 as ``check_authorizer_token``; a revoked authorization's tokens
        are gone: 40001). The grant is the live record: use it with the state held."""
        with self._lock:
            owner = self._grants.check_token(token, self._clock.now())
            grant = self._grants.active(owner.component, owner.authorizer_appid)
            account = self._accounts.find(grant.authorizer_appid)
            if account is None:  # cannot happen while accounts and grants reset together
                raise MockApiError(ec.NOT_AUTHORIZED)
            return grant, account

    def set_option(self, component: str, authorizer_appid: str, name: str, value: int) -> None:
        """Store an authorizer option (§3.8) on the live authorization (61003)."""
        with self._lock:
            self._grants.active(component, authorizer_appid).options[name] = value

    # ----- rules --------------------------------------------------------------------

    def _config(self, component: str) -> ComponentConfig:
        config = self._component_config(component) if component else None
        if config is None:
            raise AuthRuleError(
                "component",
                f"component_appid 无效 (unknown component: {component})",
                Refusal.UNKNOWN,
            )
        return config

    def _live_pre_auth_code(self, component: str, value: str) -> PreAuthCode:
        code = self._pre_auth_codes.get(value)
        if code is None or code.component != component:
            raise AuthRuleError(
                "pre_auth_code_invalid", "pre_auth_code 无效 (invalid)", Refusal.UNKNOWN
            )
        if self._clock.now() >= code.expires_at:
            raise AuthRuleError(
                "pre_auth_code_expired", "pre_auth_code 已过期 (expired)", Refusal.CONFLICT
            )
        if code.used:
            raise AuthRuleError(
                "pre_auth_code_used", "pre_auth_code 已使用 (already used)", Refusal.CONFLICT
            )
        return code

    def _known_biz_appid(self, biz_appid: str | None) -> str | None:
        if biz_appid is not None and self._accounts.find(biz_appid) is None:
            raise AuthRuleError(
                "biz_appid", f"biz_appid 无效 (unknown account: {biz_appid})", Refusal.UNKNOWN
            )
        return biz_appid

    def _validate(self, request: AuthRequest) -> None:
        """Everything about the request itself that can change after the page opened."""
        self._config(request.component)
        self._live_pre_auth_code(request.component, request.pre_auth_code)
        check_auth_type(request.auth_type)
        self._known_biz_appid(request.biz_appid)

    def _live_grant(self, component: str, authorizer_appid: str) -> Grant:
        grant = self._grants.find(component, authorizer_appid)
        if grant is None or not grant.active:
            raise AuthRuleError(
                "authorization",
                f"authorizer_appid: {authorizer_appid} has not authorized {component}",
                Refusal.CONFLICT,
            )
        return grant

    def _account(self, appid: str) -> Account:
        account = self._accounts.find(appid)
        if account is None:
            raise AuthRuleError(
                "account", f"authorizer_appid: unknown account {appid}", Refusal.UNKNOWN
            )
        return account

    def _listable(self, request: AuthRequest, admin: str) -> list[Account]:
        if request.biz_appid is not None:  # biz_appid wins over auth_type (§4.2)
            biz = self._account(request.biz_appid)
            if biz.admin != admin:
                # Not WeChat's verbatim text (that one is not documented).
                raise AuthRuleError(
                    "biz_appid_admin",
                    "你不是该帐号的管理员，无法授权 (only the admin of biz_appid may authorize)",
                    Refusal.CONFLICT,
                )
            return [biz] if biz.listable else []
        shows = AUTH_TYPE_LISTS[request.auth_type or DEFAULT_AUTH_TYPE]
        return [
            a for a in self._accounts.all() if a.admin == admin and a.listable and a.type in shows
        ]

    def _allowed_account(self, request: AuthRequest, admin: str, appid: str) -> Account:
        account = self._account(appid)
        if appid not in {a.appid for a in self._listable(request, admin)}:
            raise AuthRuleError(
                "account",
                f"该帐号不可授权 (account {appid} is not listed for this admin and link)",
                Refusal.CONFLICT,
            )
        return account

    def _offered(self, request: AuthRequest, account: Account) -> list[PermissionSet]:
        wanted = request.category_filter
        return [s for s in sets_of(account.type) if wanted is None or s.id in wanted]

    def _confirm(
        self,
        request: AuthRequest,
        admin: str,
        authorizer_appid: str,
        category_ids: Sequence[int] | None,
    ) -> Confirmation:
        """The one confirmation: checks, then code, authorization and push (§6)."""
        account = self._allowed_account(request, admin, authorizer_appid)
        offered = [s.id for s in self._offered(request, account)]
        chosen = chosen_sets(offered, offered if category_ids is None else category_ids)
        now = self._clock.now()
        self._pre_auth_codes[request.pre_auth_code].used = True
        grant, before = self._grants.grant(request.component, account.appid, chosen, now)
        changed = before is not None and set(before) != set(chosen)
        info_type = UPDATEAUTHORIZED if changed else AUTHORIZED
        code = self._grants.issue_code(grant, now)
        message = granted_message(
            info_type, request.component, now, account.appid, code.value, request.pre_auth_code
        )
        notice = self._notice(PendingPush(request.component, info_type, message, now))
        log.info(
            "authorization confirmed",
            extra={
                "component": request.component,
                "authorizer": account.appid,
                "info_type": info_type,
            },
        )
        redirect = request.redirect_uri
        return Confirmation(
            auth_code=code.value,
            expires_in=AUTH_CODE_TTL,
            info_type=info_type,
            redirect_url=with_auth_code(redirect, code.value) if redirect else None,
            notice=notice,
        )

    def _notice(self, push: PendingPush) -> Notice:
        """Queue the push if the component holds them; else the caller delivers it."""
        if self._config(push.appid).auth_push != "hold":
            return Notice(push, held=False)
        self._push_log.hold(push)
        return Notice(push, held=True)
