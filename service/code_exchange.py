"""Exchanging an authorization code, exactly once across every process (protocol §3.4).

Whichever of the browser's callback, the ``authorized`` push and the release check comes
first claims a lease on the code's record and calls ``api_query_auth``; the others wait for
(or read) its result. WeChat spends the code on the first call, so the call is never
repeated blindly: a refusal is remembered, a failure that never reached WeChat gives the
lease back, and a lost answer is recovered from WeChat (the account, or the list of recent
authorizations) instead of guessed. The authorization WeChat gave is handed to
``service.authorizer_status`` and stored before anything else can fail.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from service import leases
from service.authorizer_lookup import recently_authorized
from service.authorizer_status import AuthorizerStatusKeeper
from service.component_token import ComponentTokenManager, TokenUnavailableError
from service.leases import new_lease_owner
from service.persist import write_after_answer
from service.store.records import (
    AuthorizationStore,
    AuthorizerRecord,
    CodeExchange,
    ExchangeStatus,
)
from service.wechat.client import AuthorizationInfo, ComponentClient
from service.wechat.errors import (
    AuthorizationCodeExpiredError,
    AuthorizationCodeInvalidError,
    NotAuthorizedError,
    TransportError,
    WeChatError,
    error_for,
)
from service.wechat.messages import AuthorizationGranted

log = logging.getLogger(__name__)

# WeChat's answers that will not change if the same code is tried again.
CODE_REFUSED = (AuthorizationCodeInvalidError, AuthorizationCodeExpiredError, NotAuthorizedError)
MAX_CODE_LENGTH = 512


class Outcome(StrEnum):
    EXCHANGED = "exchanged"  # this call exchanged the code
    ALREADY = "already_exchanged"  # someone exchanged it before: nothing called
    REFUSED = "refused"  # WeChat refused the code (invalid, expired, used, not authorized)
    IN_PROGRESS = "in_progress"  # another process holds the exchange and has not finished
    RECOVERED = "recovered"  # the exchange's answer was lost; WeChat gave the authorization
    CONFIRMING = "confirming"  # the answer was lost and WeChat cannot say what it gave yet
    ERROR = "error"  # WeChat or the component token failed transiently; try again
    # The authorization pushes' own (service.authorization_pushes):
    STALE = "stale"  # an older push than the newest one applied: ignored
    REVOKED = "revoked"
    ALREADY_REVOKED = "already_revoked"


@dataclass(frozen=True)
class ExchangeResult:
    outcome: Outcome
    authorizer: AuthorizerRecord | None = None
    errcode: int | None = None
    reason: str | None = None  # for REFUSED and ERROR: says why, without secrets


@dataclass(frozen=True)
class ExchangePolicy:
    lease_seconds: float = 30.0
    callback_wait: float = 30.0  # a browser may wait for the other exchanger this long
    push_wait: float = 3.0  # WeChat wants its answer within 5 s
    poll_interval: float = 0.1
    code_record_ttl: float = 7 * 86400


@dataclass(frozen=True)
class _Attempt:
    """One caller's turn at a code's exchange, holding (or having held) its lease."""

    state: CodeExchange  # the record as the lease was taken
    owner: str
    source: str  # callback, push or release_check
    account: str | None  # the authorizer, when the caller knows it (to recover by)
    push: AuthorizationGranted | None

    @property
    def component_appid(self) -> str:
        return self.state.component_appid

    @property
    def where(self) -> dict[str, str]:
        return {"component_appid": self.component_appid, "source": self.source}


def code_key(component_appid: str, code: str) -> str:
    """The record key of an authorization code: a hash, so the code itself is not stored."""
    return hashlib.sha256(f"{component_appid}\n{code}".encode()).hexdigest()


class CodeExchanger:
    def __init__(
        self,
        store: AuthorizationStore,
        client: ComponentClient,
        tokens: ComponentTokenManager,
        policy: ExchangePolicy = ExchangePolicy(),
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.client = client
        self.tokens = tokens
        self.statuses = AuthorizerStatusKeeper(store)
        self.policy = policy
        self.clock = clock
        self.sleep = sleep

    def exchange(
        self,
        component_appid: str,
        code: str,
        source: str,
        push: AuthorizationGranted | None = None,
        authorizer_appid: str | None = None,
    ) -> ExchangeResult:
        """Exchange ``code`` once across every process; ``source`` says who asks (callback,
        push, release_check). ``authorizer_appid``: the account the code is for, if the
        caller knows it (a push does), to recover a lost answer by."""
        key = code_key(component_appid, code)
        owner = new_lease_owner()
        wait = self.policy.push_wait if push is not None else self.policy.callback_wait
        deadline = self.clock() + wait
        account = push.authorizer_appid if push is not None else authorizer_appid
        while True:
            state = self.store.modify_code_exchange(
                component_appid, key, self._claim(component_appid, key, owner, source)
            ).record
            assert state is not None  # a claim always creates the record
            if state.status == ExchangeStatus.DONE:
                return self._already_exchanged(component_appid, state, push)
            if state.status == ExchangeStatus.FAILED:
                return _refused(state)
            if state.lease.held_by(owner):
                break
            if self.clock() >= deadline:
                return ExchangeResult(Outcome.IN_PROGRESS)
            self.sleep(self.policy.poll_interval)
        attempt = _Attempt(state, owner, source, account, push)
        if state.status == ExchangeStatus.UNKNOWN:
            return self._recover(attempt)
        return self._exchange_holding_lease(attempt, code)

    def _claim(
        self, component_appid: str, key: str, owner: str, source: str
    ) -> Callable[[CodeExchange | None], CodeExchange | None]:
        now = self.clock()
        take: Callable[[CodeExchange | None], CodeExchange | None] = leases.take(
            owner, now, self.policy.lease_seconds
        )

        def claim(current: CodeExchange | None) -> CodeExchange | None:
            if current is None:
                return CodeExchange(
                    component_appid=component_appid,
                    key=key,
                    lease_owner=owner,
                    lease_until=now + self.policy.lease_seconds,
                    source=source,
                    started_at=now,
                    expire_at=datetime.fromtimestamp(now + self.policy.code_record_ttl, UTC),
                )
            if current.status not in (ExchangeStatus.EXCHANGING, ExchangeStatus.UNKNOWN):
                return None
            taken = take(current)
            if taken is None:
                return None  # someone is at it right now
            # A holder whose lease ran out may have sent the code before it stopped.
            contested = current.contested or current.lease.owner is not None
            return taken.but(source=source, contested=contested)

        return claim

    def _exchange_holding_lease(self, attempt: _Attempt, code: str) -> ExchangeResult:
        component_appid, where = attempt.component_appid, attempt.where
        try:
            info = self.tokens.call_with_token(
                component_appid,
                lambda token: self.client.api_query_auth(component_appid, code, token),
            )
        except CODE_REFUSED as exc:
            if attempt.state.contested and not isinstance(exc, NotAuthorizedError):
                # The holder before us may have spent the code: what it got is not known.
                log.warning("taken-over code exchange told the code is used", extra=where)
                return self._lost(attempt, str(exc))
            self._finish(attempt, _failed_by(exc, self.clock()))
            log.warning("authorization code refused", extra={**where, "error": str(exc)})
            return ExchangeResult(Outcome.REFUSED, errcode=exc.errcode, reason=str(exc))
        except TransportError as exc:
            if not exc.reached:
                return self._error(attempt, exc)  # never sent: the code is unused
            log.error("authorization code exchange: the answer was lost", extra=where)
            return self._lost(attempt, str(exc))
        except (WeChatError, TokenUnavailableError) as exc:
            return self._error(attempt, exc)
        except BaseException:
            self._release(attempt)
            raise
        # WeChat has spent the code: its answer is stored before anything else can fail.
        record = write_after_answer(
            lambda: self._grant(component_appid, info, attempt),
            "an exchanged authorization",
            {**where, "authorizer_appid": info.authorizer_appid},
        )
        record = self.fill_profile(component_appid, info.authorizer_appid) or record
        self._finish(attempt, _done(info.authorizer_appid, self.clock()), final=True)
        return ExchangeResult(Outcome.EXCHANGED, record)

    def _lost(self, attempt: _Attempt, reason: str) -> ExchangeResult:
        """The code may be spent without us knowing what it gave: never mark it failed;
        record that, and recover the authorization from WeChat."""

        def unknown(current: CodeExchange) -> CodeExchange | None:
            if current.status != ExchangeStatus.EXCHANGING:
                return None
            return current.but(status=ExchangeStatus.UNKNOWN.value, errmsg=reason)

        change = leases.while_held(attempt.owner, unknown)
        state = attempt.state
        marked = self.store.modify_code_exchange(state.component_appid, state.key, change).record
        if marked is not None and marked.status == ExchangeStatus.DONE:
            # The overtaken holder stored it meanwhile.
            return self._already_exchanged(state.component_appid, marked, attempt.push)
        return self._recover(attempt)

    def _recover(self, attempt: _Attempt) -> ExchangeResult:
        """Holding the lease of an UNKNOWN exchange: find the authorization at WeChat, from
        the account when it is known, else from the list of recent authorizations."""
        component_appid, where = attempt.component_appid, attempt.where
        try:
            appid = attempt.account or recently_authorized(
                self.store,
                self.client,
                self.tokens,
                component_appid,
                attempt.state.started_at or 0.0,
            )
            if appid is None:
                self._release(attempt)
                log.warning("lost code exchange: the account is not known yet", extra=where)
                return ExchangeResult(Outcome.CONFIRMING)
            profile = self.tokens.call_with_token(
                component_appid,
                lambda token: self.client.api_get_authorizer_info(component_appid, appid, token),
            )
        except NotAuthorizedError as exc:
            # WeChat holds no authorization of that account: the code gave nothing.
            self._finish(attempt, _failed_by(exc, self.clock()))
            return ExchangeResult(Outcome.REFUSED, errcode=exc.errcode, reason=str(exc))
        except (WeChatError, TokenUnavailableError) as exc:
            return self._error(attempt, exc)
        except BaseException:
            self._release(attempt)
            raise
        info = profile.authorization
        if info.refresh_token is None:
            self._release(attempt)
            log.warning("lost code exchange: WeChat lists no refresh token yet", extra=where)
            return ExchangeResult(Outcome.CONFIRMING)
        write_after_answer(
            lambda: self._grant(component_appid, info, attempt),
            "a recovered authorization",
            {**where, "authorizer_appid": appid},
        )
        record = self.statuses.store_profile(component_appid, appid, profile)
        self._finish(attempt, _done(appid, self.clock()), final=True)
        log.warning(
            "lost code exchange: authorization recovered from WeChat",
            extra={**where, "authorizer_appid": appid},
        )
        return ExchangeResult(Outcome.RECOVERED, record)

    def _error(self, attempt: _Attempt, exc: WeChatError | TokenUnavailableError) -> ExchangeResult:
        """A failure that changed nothing at WeChat: give the lease back, try again later."""
        self._release(attempt)
        log.error("authorization code exchange failed", extra={**attempt.where, "error": str(exc)})
        errcode = exc.errcode if isinstance(exc, WeChatError) else None
        return ExchangeResult(Outcome.ERROR, errcode=errcode, reason=str(exc))

    def _finish(
        self,
        attempt: _Attempt,
        outcome: Callable[[CodeExchange], CodeExchange | None],
        final: bool = False,
    ) -> None:
        """DONE is final: recorded even by a holder that was overtaken, because the code is
        spent and the authorization stored. FAILED only by the lease's owner."""
        change = leases.finish(attempt.owner, outcome, final)
        self.store.modify_code_exchange(attempt.component_appid, attempt.state.key, change)

    def _release(self, attempt: _Attempt) -> None:
        change: leases.LeaseChange[CodeExchange] = leases.release(attempt.owner)
        self.store.modify_code_exchange(attempt.component_appid, attempt.state.key, change)

    def first_view(self, component_appid: str, code: str) -> bool:
        """True the first time the callback page shows this code's result, False after."""
        now = self.clock()

        def shown(current: CodeExchange | None) -> CodeExchange | None:
            if current is None or current.result_shown_at is not None:
                return None
            return current.but(result_shown_at=now)

        key = code_key(component_appid, code)
        return self.store.modify_code_exchange(component_appid, key, shown).changed

    def _already_exchanged(
        self, component_appid: str, state: CodeExchange, push: AuthorizationGranted | None
    ) -> ExchangeResult:
        appid = state.authorizer_appid or ""
        if push is None:
            return ExchangeResult(
                Outcome.ALREADY, self.store.get_authorizer(component_appid, appid)
            )
        # The callback exchanged this push's code: remember the push's time for ordering.
        bumped = self.statuses.note_push(component_appid, appid, push.create_time)
        return ExchangeResult(Outcome.ALREADY, bumped)

    def _grant(
        self, component_appid: str, info: AuthorizationInfo, attempt: _Attempt
    ) -> AuthorizerRecord:
        return self.statuses.grant(
            component_appid, info, attempt.source, attempt.push, self.clock()
        )

    def fill_profile(self, component_appid: str, appid: str) -> AuthorizerRecord | None:
        """Name, type and principal from api_get_authorizer_info; a failure only logs."""
        try:
            profile = self.tokens.call_with_token(
                component_appid,
                lambda token: self.client.api_get_authorizer_info(component_appid, appid, token),
            )
        except (WeChatError, TokenUnavailableError) as exc:
            log.warning(
                "authorizer profile not fetched",
                extra={
                    "component_appid": component_appid,
                    "authorizer_appid": appid,
                    "error": str(exc),
                },
            )
            return None
        return self.statuses.store_profile(component_appid, appid, profile)


def _refused(state: CodeExchange) -> ExchangeResult:
    reason = error_for(state.errcode or 0, state.errmsg or "", "api_query_auth")
    return ExchangeResult(Outcome.REFUSED, errcode=state.errcode, reason=str(reason))


def _failed_by(error: WeChatError, now: float) -> Callable[[CodeExchange], CodeExchange | None]:
    def failed(current: CodeExchange) -> CodeExchange | None:
        if current.status not in (ExchangeStatus.EXCHANGING, ExchangeStatus.UNKNOWN):
            return None
        return current.but(
            status=ExchangeStatus.FAILED.value,
            errcode=error.errcode,
            errmsg=error.errmsg,
            finished_at=now,
        )

    return failed


def _done(appid: str, now: float) -> Callable[[CodeExchange], CodeExchange | None]:
    def done(current: CodeExchange) -> CodeExchange | None:
        if current.status == ExchangeStatus.DONE:
            return None
        return current.but(
            status=ExchangeStatus.DONE.value, authorizer_appid=appid, finished_at=now
        )

    return done
