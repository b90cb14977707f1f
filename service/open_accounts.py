"""Open platform accounts (开放平台帐号) of authorizers: which one an account is bound to,
creating the merchant's own and binding to it (the seeds' scene 1), binding and unbinding.

The four APIs (protocol §8) are called with the authorizer's access token through the
proxy (``service.proxy``): it injects the token, renews it once if WeChat rejects it (a
rejected call did nothing) and never repeats a request that was sent.

``open/create``, ``open/bind`` and ``open/unbind`` change WeChat's side and are not
repeated blindly. When their outcome is unknown (the answer was lost, timed out, was not
JSON, or was ``-1``), WeChat is asked with ``open/get`` what happened before answering:
the truth if it can be found, else "unknown" and nothing else. ``create`` asks first too,
so an account already bound is answered with where it is bound and nothing is created.
A second ``create`` or ``bind`` of a bound account is refused by WeChat (89000), which is
what makes a retry after "nothing happened" safe.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from service.proxy import ProxyAnswer, ProxyCall, UpstreamError

log = logging.getLogger(__name__)

GET, CREATE, BIND, UNBIND = "open/get", "open/create", "open/bind", "open/unbind"

ALREADY_BOUND = 89000
NOT_SAME_PRINCIPAL = 89001
NOT_BOUND = 89002
NOT_CREATED_BY_API = 89003
MEMBER_LIMIT = 89004
PERMISSION_MISSING = 61007
SYSTEM_BUSY = -1


@dataclass(frozen=True)
class Meaning:
    """What an errcode means here: the HTTP status it becomes, in English and Chinese, and
    what the caller can do about it."""

    status: int
    en: str
    zh: str
    todo: str


# The 8900x texts follow the official open/* documents (UNCONFIRMED against WeChat's
# error table, protocol §8).
MEANINGS: dict[int, Meaning] = {
    ALREADY_BOUND: Meaning(
        409,
        "the account is already bound to an open platform account",
        "该公众号/小程序已经绑定了开放平台帐号",
        "open_appid names the one it is bound to; to move it, unbind it there first",
    ),
    NOT_SAME_PRINCIPAL: Meaning(
        409,
        "the account and the open platform account have different principals (主体)",
        "Authorizer 与开放平台帐号主体不相同",
        "an account joins only an open platform account of its own principal: "
        'create one for this principal ({"action": "create"}) instead',
    ),
    NOT_BOUND: Meaning(
        409,
        "the account is not bound to that open platform account",
        "该公众号/小程序未绑定该开放平台帐号",
        "open_appid names the one it is bound to, if any (GET …/open-account)",
    ),
    NOT_CREATED_BY_API: Meaning(
        409,
        "the open platform account was not created through the API, so the API may not "
        "bind or unbind accounts on it",
        "该开放平台帐号并非通过 api 创建，不允许操作",
        "manage it on open.weixin.qq.com (管理中心), or use an open platform account made "
        'with {"action": "create"}',
    ),
    MEMBER_LIMIT: Meaning(
        409,
        "the open platform account already holds its limit of 100 accounts",
        "该开放平台帐号所绑定的公众号/小程序已达上限（100 个）",
        "unbind an account it no longer needs first",
    ),
    PERMISSION_MISSING: Meaning(
        403,
        "the merchant did not grant this third-party platform the permission set for open "
        "platform accounts (开放平台帐号管理: 24 for official accounts, 25 for mini programs)",
        "api 未授权给第三方平台（授权未包含开放平台帐号管理权限集）",
        "have the merchant authorize again with that permission set (an authorization link "
        "with category_ids including it, or none)",
    ),
    40013: Meaning(
        400,
        "WeChat does not know this appid or open_appid",
        "不合法的 AppID",
        "check the open_appid",
    ),
    48001: Meaning(
        403,
        "the API is not authorized for this account",
        "api 功能未授权",
        "the account's type or verification does not allow it",
    ),
    45009: Meaning(
        429,
        "the account's daily quota for this API is spent",
        "接口调用超过限额",
        "wait for the quota to come back (midnight, Beijing time) or clear the "
        "authorizer's quota (POST …/clear_quota)",
    ),
    61003: Meaning(
        409,
        "the account has not authorized this third-party platform (any more)",
        "该帐号未授权给此第三方平台",
        "the merchant must authorize again",
    ),
}


def meaning_of(errcode: int) -> Meaning:
    return MEANINGS.get(errcode) or Meaning(
        502, f"WeChat error {errcode}", "微信返回错误", "see errmsg; retrying may not help"
    )


class OpenAccountRefused(Exception):
    """WeChat refused the call with an errcode; nothing changed.

    ``open_appid``: where the account is bound, when that is part of the answer (89000,
    89002).
    """

    def __init__(self, errcode: int, errmsg: str, api: str, open_appid: str | None = None):
        self.errcode = errcode
        self.errmsg = errmsg
        self.api = api
        self.open_appid = open_appid
        self.meaning = meaning_of(errcode)
        super().__init__(f"{api}: WeChat {errcode}: {self.meaning.en}")


class Outcome(StrEnum):
    UNCHANGED = "unchanged"  # open/get shows the change did not happen: safe to retry
    UNKNOWN = "unknown"  # open/get failed too: nobody knows yet


class OpenAccountUnavailable(Exception):
    """WeChat gave no usable answer (502, or 504 for a timeout).

    ``outcome`` is None for ``open/get`` (a read changes nothing); for a change it says
    what asking WeChat afterwards found out.
    """

    def __init__(self, status: int, reason: str, outcome: Outcome | None = None) -> None:
        self.status = status
        self.reason = reason
        self.outcome = outcome
        super().__init__(reason)


class Result(StrEnum):
    CREATED = "created"
    BOUND = "bound"
    ALREADY_BOUND = "already_bound"
    UNBOUND = "unbound"
    ALREADY_UNBOUND = "already_unbound"


@dataclass(frozen=True)
class Change:
    result: Result
    open_appid: str | None  # the binding now
    previous_open_appid: str | None = None  # unbind: the one it left
    # The answer was lost; what happened was read back with open/get.
    recovered: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "result": self.result.value,
            "open_appid": self.open_appid,
            "previous_open_appid": self.previous_open_appid,
            "recovered": self.recovered,
        }


class Forwarder(Protocol):
    """What ``AuthorizerProxy`` offers: a call as an authorizer, its token injected."""

    def forward(self, component_appid: str, appid: str, call: ProxyCall) -> ProxyAnswer: ...


class _NoAnswer(Exception):
    """No usable answer to a call (see ``OpenAccountUnavailable``)."""

    def __init__(self, status: int, reason: str, reached: bool = True) -> None:
        self.status = status
        self.reason = reason
        self.reached = reached
        super().__init__(reason)


@dataclass(frozen=True)
class OpenAccountPolicy:
    busy_retries: int = 2  # open/get only: -1 (busy) tried again, with backoff
    busy_backoff: float = 0.2


class OpenAccountManager:
    def __init__(
        self,
        proxy: Forwarder,
        policy: OpenAccountPolicy = OpenAccountPolicy(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.proxy = proxy
        self.policy = policy
        self.sleep = sleep

    # ----- the four operations --------------------------------------------------------

    def bound_to(self, component_appid: str, appid: str) -> str | None:
        """The open_appid the account is bound to, or None (89002). Safe to repeat."""
        attempt = 0
        while True:
            try:
                data = self._call(component_appid, appid, GET, {"appid": appid})
            except _NoAnswer as exc:
                raise OpenAccountUnavailable(exc.status, exc.reason) from None
            except OpenAccountRefused as exc:
                if exc.errcode == NOT_BOUND:
                    return None
                if exc.errcode == SYSTEM_BUSY and attempt < self.policy.busy_retries:
                    self.sleep(self.policy.busy_backoff * 2**attempt)
                    attempt += 1
                    continue
                if exc.errcode == SYSTEM_BUSY:
                    raise OpenAccountUnavailable(502, "open/get: WeChat is busy (-1)") from None
                raise
            open_appid = data.get("open_appid")
            if not isinstance(open_appid, str) or not open_appid:
                raise OpenAccountUnavailable(502, "open/get: the answer has no open_appid")
            return open_appid

    def create(self, component_appid: str, appid: str) -> Change:
        """A new open platform account of the account's principal, with the account bound."""
        before = self.bound_to(component_appid, appid)
        if before is not None:
            raise OpenAccountRefused(ALREADY_BOUND, "", CREATE, before)
        try:
            data = self._call(component_appid, appid, CREATE, {"appid": appid})
        except OpenAccountRefused as exc:
            if exc.errcode == ALREADY_BOUND:  # bound since we asked: say where
                raise self._already_bound(component_appid, appid, exc) from None
            if exc.errcode != SYSTEM_BUSY:
                raise
            return self._recover_create(component_appid, appid, _NoAnswer(502, str(exc)))
        except _NoAnswer as exc:
            return self._recover_create(component_appid, appid, exc)
        open_appid = data.get("open_appid")
        if not isinstance(open_appid, str) or not open_appid:
            # It said ok without saying which: read it back.
            return self._recover_create(
                component_appid, appid, _NoAnswer(502, "open/create: the answer has no open_appid")
            )
        self._log(Result.CREATED, component_appid, appid, open_appid)
        return Change(Result.CREATED, open_appid)

    def bind(self, component_appid: str, appid: str, open_appid: str) -> Change:
        """Bind the account to ``open_appid``; already bound there is a success too."""
        body = {"appid": appid, "open_appid": open_appid}
        try:
            self._call(component_appid, appid, BIND, body)
        except OpenAccountRefused as exc:
            if exc.errcode == ALREADY_BOUND:
                known, now = self._where(component_appid, appid)
                if known and now == open_appid:
                    return Change(Result.ALREADY_BOUND, open_appid)
                raise OpenAccountRefused(exc.errcode, exc.errmsg, BIND, now) from None
            if exc.errcode != SYSTEM_BUSY:
                raise
            failure = _NoAnswer(502, str(exc))
        except _NoAnswer as exc:
            failure = exc
        else:
            self._log(Result.BOUND, component_appid, appid, open_appid)
            return Change(Result.BOUND, open_appid)
        now = self._read_back(component_appid, appid, BIND, failure)
        if now == open_appid:
            self._log(Result.BOUND, component_appid, appid, open_appid, recovered=True)
            return Change(Result.BOUND, open_appid, recovered=True)
        if now is not None:  # bound elsewhere before our call, which then failed
            raise OpenAccountRefused(ALREADY_BOUND, "", BIND, now)
        raise _unchanged(failure, "WeChat shows the account is not bound")

    def unbind(self, component_appid: str, appid: str, open_appid: str | None = None) -> Change:
        """Unbind the account from ``open_appid`` (by default, from the one it is bound to).
        Not bound at all is a success (already unbound)."""
        if open_appid is None:
            open_appid = self.bound_to(component_appid, appid)
            if open_appid is None:
                return Change(Result.ALREADY_UNBOUND, None)
        body = {"appid": appid, "open_appid": open_appid}
        try:
            self._call(component_appid, appid, UNBIND, body)
        except OpenAccountRefused as exc:
            if exc.errcode == NOT_BOUND:
                known, now = self._where(component_appid, appid)
                if known and now is None:
                    return Change(Result.ALREADY_UNBOUND, None)
                raise OpenAccountRefused(exc.errcode, exc.errmsg, UNBIND, now) from None
            if exc.errcode != SYSTEM_BUSY:
                raise
            failure = _NoAnswer(502, str(exc))
        except _NoAnswer as exc:
            failure = exc
        else:
            self._log(Result.UNBOUND, component_appid, appid, None, previous=open_appid)
            return Change(Result.UNBOUND, None, previous_open_appid=open_appid)
        now = self._read_back(component_appid, appid, UNBIND, failure)
        if now is None:
            self._log(Result.UNBOUND, component_appid, appid, None, open_appid, recovered=True)
            return Change(Result.UNBOUND, None, previous_open_appid=open_appid, recovered=True)
        if now != open_appid:
            raise OpenAccountRefused(NOT_BOUND, "", UNBIND, now)
        raise _unchanged(failure, f"WeChat shows it still bound to {open_appid}")

    # ----- internals ------------------------------------------------------------------

    def _recover_create(self, component_appid: str, appid: str, failure: _NoAnswer) -> Change:
        now = self._read_back(component_appid, appid, CREATE, failure)
        if now is None:
            raise _unchanged(failure, "WeChat shows no open platform account was created")
        # Unbound just before the call (asked above), bound now: this call created it.
        self._log(Result.CREATED, component_appid, appid, now, recovered=True)
        return Change(Result.CREATED, now, recovered=True)

    def _read_back(
        self, component_appid: str, appid: str, api: str, failure: _NoAnswer
    ) -> str | None:
        """After a change whose outcome is unknown: where the account is bound now."""
        if not failure.reached:
            # Never sent: nothing happened, and nothing needs asking.
            raise _unchanged(failure, "it never reached WeChat")
        log.warning(
            "open platform account change without an answer: asking WeChat",
            extra={
                "component_appid": component_appid,
                "authorizer_appid": appid,
                "api": api,
                "reason": failure.reason,
            },
        )
        try:
            return self.bound_to(component_appid, appid)
        except (OpenAccountUnavailable, OpenAccountRefused) as exc:
            log.error(
                "open platform account change: outcome unknown",
                extra={"component_appid": component_appid, "authorizer_appid": appid, "api": api},
            )
            raise OpenAccountUnavailable(
                failure.status,
                f"{failure.reason}; asking WeChat what happened failed too ({exc}): "
                "the outcome is unknown. GET …/open-account before trying again",
                Outcome.UNKNOWN,
            ) from None

    def _already_bound(
        self, component_appid: str, appid: str, exc: OpenAccountRefused
    ) -> OpenAccountRefused:
        return OpenAccountRefused(
            exc.errcode, exc.errmsg, exc.api, self._where(component_appid, appid)[1]
        )

    def _where(self, component_appid: str, appid: str) -> tuple[bool, str | None]:
        """After a refusal (nothing changed): whether WeChat said where the account is
        bound, and where. Asking may fail; the refusal stands either way."""
        try:
            return True, self.bound_to(component_appid, appid)
        except (OpenAccountUnavailable, OpenAccountRefused):
            return False, None

    def _call(
        self, component_appid: str, appid: str, api: str, body: dict[str, str]
    ) -> dict[str, Any]:
        """One call, never repeated here (the proxy renews a rejected token and repeats
        only then, or a connection that was never made). Raises ``OpenAccountRefused``
        for an errcode (-1 included) and ``_NoAnswer`` without a usable answer."""
        call = ProxyCall(
            method="POST",
            path=f"cgi-bin/{api}",
            body=json.dumps(body).encode(),
            content_type="application/json",
        )
        try:
            answer = self.proxy.forward(component_appid, appid, call)
        except UpstreamError as exc:
            raise _NoAnswer(exc.status, f"{api}: {exc}", exc.reached) from None
        if answer.status != 200:
            raise _NoAnswer(502, f"{api}: WeChat answered HTTP {answer.status}")
        try:
            data = json.loads(answer.body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise _NoAnswer(502, f"{api}: WeChat's answer is not a JSON object")
        errcode = data.get("errcode", 0)
        if errcode in (0, None):
            return data
        if not isinstance(errcode, int) or isinstance(errcode, bool):
            raise _NoAnswer(502, f"{api}: WeChat's answer has no valid errcode")
        raise OpenAccountRefused(errcode, str(data.get("errmsg", "")), api)

    def _log(
        self,
        result: Result,
        component_appid: str,
        appid: str,
        open_appid: str | None,
        previous: str | None = None,
        recovered: bool = False,
    ) -> None:
        log.info(
            "open platform account changed",
            extra={
                "component_appid": component_appid,
                "authorizer_appid": appid,
                "result": result.value,
                "open_appid": open_appid,
                "previous_open_appid": previous,
                "recovered": recovered,
            },
        )


def _unchanged(failure: _NoAnswer, why: str) -> OpenAccountUnavailable:
    return OpenAccountUnavailable(
        failure.status,
        f"{failure.reason}; nothing happened ({why}): safe to try again",
        Outcome.UNCHANGED,
    )
