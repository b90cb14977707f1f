"""One open platform account for a whole group (the seeds' scene 2, GROUP_OPEN_APPID).

A group with several third-party platforms keeps every account it authorized to any of
them bound to one open platform account. The report reads every authorizer of every
component of the deployment from the store (paged), one account once however many
components it authorized, and asks WeChat where each is bound (``open/get``, with bounded
concurrency, through the first component whose authorization lets it ask). WeChat's own
全网发布 test accounts are not the group's and are left out. Bindings change outside the
gateway (on open.weixin.qq.com, or by another platform), so nothing is cached: every
report asks again.

Cost of a report over N accounts: the listing reads each authorizer record once, each
``open/get`` reads it once more for the token (2N Firestore reads), and N calls to WeChat
(each on the account's own daily quota), plus a token renewal for any token due.

``bind_unbound`` binds the unbound accounts to the group, one at a time (a full open
platform account, 89004, stops the rest), and never touches an account bound elsewhere:
those are listed for a person to decide about.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from service.authorizer_tokens import AuthorizerTokenError
from service.component_token import TokenUnavailableError
from service.open_accounts import (
    MEMBER_LIMIT,
    NOT_CREATED_BY_API,
    OpenAccountManager,
    OpenAccountRefused,
    OpenAccountUnavailable,
)
from service.store.records import AuthorizationStore, AuthorizerRecord, AuthorizerStatus, StoreError

log = logging.getLogger(__name__)

# WeChat refusals about the group's open platform account itself, not about one account:
# every further bind would be refused the same way.
GROUP_REFUSALS = frozenset({NOT_CREATED_BY_API, MEMBER_LIMIT, 40013})


class State(StrEnum):
    BOUND = "bound"  # to the group's open platform account
    BOUND_ELSEWHERE = "bound_elsewhere"
    UNBOUND = "unbound"
    UNCHECKED = "unchecked"  # WeChat could not be asked (the reason says why)


@dataclass
class GroupAccount:
    appid: str
    components: list[str]  # where it is authorized (or needs to authorize again)
    account_type: str | None = None
    nick_name: str | None = None
    principal_name: str | None = None
    state: State = State.UNCHECKED
    open_appid: str | None = None
    checked_via: str | None = None  # the component whose token asked WeChat
    errcode: int | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "appid": self.appid,
            "components": list(self.components),
            "account_type": self.account_type,
            "nick_name": self.nick_name,
            "principal_name": self.principal_name,
        }
        if self.state == State.BOUND_ELSEWHERE:
            shown["open_appid"] = self.open_appid
        if self.state == State.UNCHECKED:
            shown["errcode"] = self.errcode
            shown["reason"] = self.reason
        return shown


@dataclass
class GroupReport:
    group_open_appid: str
    accounts: dict[str, GroupAccount] = field(default_factory=dict)
    asked: int = 0  # open/get calls made (a retry after -1, busy, not counted)
    seconds: float = 0.0

    def of_state(self, state: State) -> list[GroupAccount]:
        return sorted(
            (a for a in self.accounts.values() if a.state == state), key=lambda a: a.appid
        )

    @property
    def clean(self) -> bool:
        return all(a.state == State.BOUND for a in self.accounts.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "group_open_appid": self.group_open_appid,
            "clean": self.clean,
            "counts": {
                "accounts": len(self.accounts),
                **{state.value: len(self.of_state(state)) for state in State},
            },
            "bound_elsewhere": [a.to_json() for a in self.of_state(State.BOUND_ELSEWHERE)],
            "unbound": [a.to_json() for a in self.of_state(State.UNBOUND)],
            "unchecked": [a.to_json() for a in self.of_state(State.UNCHECKED)],
            "bound": [a.appid for a in self.of_state(State.BOUND)],
            "asked": self.asked,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class BindFailure:
    appid: str
    component_appid: str | None
    errcode: int | None
    error: str
    meaning_zh: str | None = None
    what_to_do: str | None = None
    open_appid: str | None = None  # where it turned out to be bound
    tried: bool = True  # False: not called, after a refusal about the group's account

    def to_json(self) -> dict[str, Any]:
        return {
            "appid": self.appid,
            "component_appid": self.component_appid,
            "errcode": self.errcode,
            "error": self.error,
            "meaning_zh": self.meaning_zh,
            "what_to_do": self.what_to_do,
            "open_appid": self.open_appid,
            "tried": self.tried,
        }


@dataclass
class GroupBinding:
    report: GroupReport  # the scan the binding started from
    bound: list[dict[str, Any]] = field(default_factory=list)
    failed: list[BindFailure] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        scanned = self.report.to_json()
        return {
            "group_open_appid": self.report.group_open_appid,
            "bound": self.bound,
            "failed": [f.to_json() for f in self.failed],
            # Listed, never touched: a person decides about these.
            "bound_elsewhere": scanned["bound_elsewhere"],
            "unchecked": scanned["unchecked"],
            "counts_before": scanned["counts"],
        }


@dataclass(frozen=True)
class GroupPolicy:
    concurrency: int = 8  # open/get calls at a time
    page_size: int = 100  # authorizers read from the store at a time


class OpenAccountGroup:
    def __init__(
        self,
        store: AuthorizationStore,
        accounts: OpenAccountManager,
        components: Sequence[str],
        group_open_appid: str,
        policy: GroupPolicy = GroupPolicy(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.components = tuple(components)
        self.group_open_appid = group_open_appid
        self.policy = policy
        self.clock = clock

    # ----- the report -----------------------------------------------------------------

    def report(self) -> GroupReport:
        started = self.clock()
        report = GroupReport(self.group_open_appid)
        with ThreadPoolExecutor(
            max_workers=self.policy.concurrency, thread_name_prefix="open-group"
        ) as pool:
            for component in self.components:
                for page in self._pages(component, AuthorizerStatus.AUTHORIZED):
                    todo = [self._entry(report, r) for r in page if not r.release_test]
                    # Ask again only where no other component could ask yet.
                    todo = [a for a in todo if a.state == State.UNCHECKED]
                    checks = list(pool.map(self._check, todo, [component] * len(todo)))
                    report.asked += sum(checks)
            for component in self.components:
                for page in self._pages(component, AuthorizerStatus.NEEDS_REAUTHORIZATION):
                    for record in (r for r in page if not r.release_test):
                        account = self._entry(report, record)
                        if account.checked_via is None and account.reason is None:
                            account.reason = "must authorize again: no token to ask WeChat with"
        report.seconds = self.clock() - started
        log.info(
            "open platform account group report",
            extra={
                "group_open_appid": self.group_open_appid,
                "accounts": len(report.accounts),
                "clean": report.clean,
                "asked": report.asked,
                "seconds": round(report.seconds, 3),
            },
        )
        return report

    def _pages(self, component: str, status: AuthorizerStatus) -> Iterable[list[AuthorizerRecord]]:
        after: str | None = None
        while True:
            page = self.store.list_authorizers(
                component, status=status.value, after=after, limit=self.policy.page_size
            )
            if page:
                yield page
            if len(page) < self.policy.page_size:
                return
            after = page[-1].appid

    @staticmethod
    def _entry(report: GroupReport, record: AuthorizerRecord) -> GroupAccount:
        account = report.accounts.get(record.appid)
        if account is None:
            account = report.accounts[record.appid] = GroupAccount(record.appid, [])
        if record.component_appid not in account.components:
            account.components.append(record.component_appid)
        account.account_type = account.account_type or record.account_type
        account.nick_name = account.nick_name or record.nick_name
        account.principal_name = account.principal_name or record.principal_name
        return account

    def _check(self, account: GroupAccount, component: str) -> bool:
        """Ask WeChat where ``account`` is bound, as ``component``; False if no call was
        made (no token). A failure leaves it unchecked, for another component to try."""
        try:
            open_appid = self.accounts.bound_to(component, account.appid)
        except OpenAccountRefused as exc:
            account.errcode, account.reason = exc.errcode, f"{component}: {exc.meaning.en}"
            return True
        except OpenAccountUnavailable as exc:
            account.errcode, account.reason = None, f"{component}: {exc.reason}"
            return True
        except (AuthorizerTokenError, TokenUnavailableError, StoreError) as exc:
            account.errcode, account.reason = None, f"{component}: no token: {exc}"
            return False
        account.checked_via, account.errcode, account.reason = component, None, None
        account.open_appid = open_appid
        if open_appid is None:
            account.state = State.UNBOUND
        elif open_appid == self.group_open_appid:
            account.state = State.BOUND
        else:
            account.state = State.BOUND_ELSEWHERE
        return True

    # ----- the action -----------------------------------------------------------------

    def bind_unbound(self) -> GroupBinding:
        """Bind every unbound account to the group's open platform account; nothing bound
        elsewhere is touched. Sequential: binds are few, and a refusal about the group's
        own account (89003, 89004, 40013) stops the rest without calling WeChat."""
        binding = GroupBinding(self.report())
        stop: OpenAccountRefused | None = None
        for account in binding.report.of_state(State.UNBOUND):
            component = account.checked_via
            assert component is not None  # checked: it could be asked
            if stop is not None:
                binding.failed.append(_failure(account.appid, None, stop, tried=False))
                continue
            try:
                change = self.accounts.bind(component, account.appid, self.group_open_appid)
            except OpenAccountRefused as exc:
                binding.failed.append(_failure(account.appid, component, exc))
                if exc.errcode in GROUP_REFUSALS:
                    stop = exc
                continue
            except OpenAccountUnavailable as exc:
                binding.failed.append(
                    BindFailure(
                        account.appid,
                        component,
                        None,
                        exc.reason,
                        what_to_do="run the report again, then bind-unbound again",
                    )
                )
                continue
            except (AuthorizerTokenError, TokenUnavailableError, StoreError) as exc:
                binding.failed.append(
                    BindFailure(account.appid, component, None, f"no token: {exc}")
                )
                continue
            binding.bound.append(
                {
                    "appid": account.appid,
                    "component_appid": component,
                    "result": change.result.value,  # bound, or already_bound meanwhile
                    "recovered": change.recovered,
                }
            )
        log.info(
            "open platform account group: unbound accounts bound",
            extra={
                "group_open_appid": self.group_open_appid,
                "bound": len(binding.bound),
                "failed": len(binding.failed),
            },
        )
        return binding


def _failure(
    appid: str, component: str | None, exc: OpenAccountRefused, tried: bool = True
) -> BindFailure:
    return BindFailure(
        appid,
        component,
        exc.errcode,
        exc.meaning.en if tried else f"not tried: {exc.meaning.en}",
        exc.meaning.zh,
        exc.meaning.todo,
        exc.open_appid,
        tried,
    )
