"""Open platform accounts (开放平台帐号) and which merchant accounts are bound to them.

An account (official account or mini program) is bound to at most one open platform
account. Through the API (protocol §8) a component creates one for an authorizer (same
principal, bound at once), binds and unbinds authorizers of the same principal, and asks
which one an authorizer is bound to. An open platform account registered on
open.weixin.qq.com ("on the website", made here by the control plane) may not be touched
through the API: 89003. ``OpenAccounts`` takes the state's one lock.

A binding is the account's, not an authorization's: every component the account
authorized sees it, and it outlives a cancelled authorization. One created through the API
may be operated by any component holding set 24 or 25 (89003 names "not created by API"
only; the mock's reading). Before any of this, the caller checks the authorizer token and
the permission set (61007 without 24 or 25: ``authorizer_apis``).

Error order (UNCONFIRMED, the mock's own): 40013 unknown open_appid, 89000 already bound,
89003 not created through the API, 89001 different principal, 89004 full (100 accounts).
Unbinding an account that is not bound to that open_appid is 89002, and so is asking
which one an unbound account has.
"""

from __future__ import annotations

import copy
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mock_wechat import errcodes as ec
from mock_wechat.errcodes import MockApiError
from mock_wechat.merchant_accounts import Account
from mock_wechat.state_part import StatePart

log = logging.getLogger(__name__)

MAX_MEMBERS = 100


class OpenAccountConflict(ValueError):
    """A control-plane request that contradicts the bindings (answered 409)."""


@dataclass
class OpenAccount:
    open_appid: str
    principal_name: str
    created_via_api: bool
    created_at: float
    members: list[str] = field(default_factory=list)  # bound appids, in binding order

    def public(self) -> dict[str, Any]:
        return {
            "open_appid": self.open_appid,
            "principal_name": self.principal_name,
            "created_via_api": self.created_via_api,
            "created_at": self.created_at,
            "appids": list(self.members),
        }


class OpenAccounts(StatePart):
    """Open platform accounts and bindings; every method is thread-safe."""

    def clear(self) -> None:
        with self._lock:
            self._accounts: dict[str, OpenAccount] = {}
            self._bound: dict[str, str] = {}  # account appid -> open_appid

    # ----- API operations (protocol §8); the caller checked token and permission -----

    def create(self, account: Account) -> str:
        """/cgi-bin/open/create: a new open account of the same principal, bound to it."""
        with self._lock:
            if account.appid in self._bound:
                raise MockApiError(ec.OPEN_ALREADY_BOUND)
            opened = self._new(account.principal_name, created_via_api=True)
            self._attach(opened, account.appid)
        log.info("open account created", extra={"open_appid": opened.open_appid})
        return opened.open_appid

    def bind(self, account: Account, open_appid: str | None) -> None:
        with self._lock:
            opened = self._known(open_appid)
            if account.appid in self._bound:
                raise MockApiError(ec.OPEN_ALREADY_BOUND)
            if not opened.created_via_api:
                raise MockApiError(ec.OPEN_NOT_CREATED_BY_API)
            if opened.principal_name != account.principal_name:
                raise MockApiError(ec.OPEN_NOT_SAME_CONTRACTOR)
            if len(opened.members) >= MAX_MEMBERS:
                raise MockApiError(ec.OPEN_MEMBER_LIMIT)
            self._attach(opened, account.appid)

    def unbind(self, account: Account, open_appid: str | None) -> None:
        with self._lock:
            opened = self._known(open_appid)
            if not opened.created_via_api:
                raise MockApiError(ec.OPEN_NOT_CREATED_BY_API)
            if self._bound.get(account.appid) != opened.open_appid:
                raise MockApiError(ec.OPEN_NOT_BOUND)
            del self._bound[account.appid]
            opened.members.remove(account.appid)

    def bound_to(self, account: Account) -> str:
        """/cgi-bin/open/get: the open_appid the account is bound to, or 89002."""
        with self._lock:
            open_appid = self._bound.get(account.appid)
            if open_appid is None:
                raise MockApiError(ec.OPEN_NOT_BOUND)
            return open_appid

    # ----- control plane ----------------------------------------------------------------

    def register_on_website(self, principal_name: str, accounts: Sequence[Account]) -> OpenAccount:
        """An open account made on open.weixin.qq.com, with these accounts bound to it."""
        with self._lock:
            taken = [a.appid for a in accounts if a.appid in self._bound]
            if taken:
                raise OpenAccountConflict(f"appids: {taken[0]} is already bound")
            if len({a.appid for a in accounts}) != len(accounts):
                raise OpenAccountConflict("appids: an account is listed twice")
            opened = self._new(principal_name, created_via_api=False)
            for account in accounts:
                self._attach(opened, account.appid)
            return copy.deepcopy(opened)

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return [a.public() for a in self._accounts.values()]

    # ----- helpers ----------------------------------------------------------------------

    def _known(self, open_appid: str | None) -> OpenAccount:
        opened = self._accounts.get(open_appid or "")
        if opened is None:
            raise MockApiError(ec.INVALID_APPID)  # "appid或open_appid无效"
        return opened

    def _new(self, principal_name: str, created_via_api: bool) -> OpenAccount:
        open_appid = "wx" + secrets.token_hex(8)
        while open_appid in self._accounts:
            open_appid = "wx" + secrets.token_hex(8)
        opened = OpenAccount(open_appid, principal_name, created_via_api, self._clock.now())
        self._accounts[open_appid] = opened
        return opened

    def _attach(self, opened: OpenAccount, appid: str) -> None:
        opened.members.append(appid)
        self._bound[appid] = opened.open_appid
