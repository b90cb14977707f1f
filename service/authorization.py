"""The merchant authorization flow (protocol §2.2, §3.3–§3.6, §4, §5).

Links come from a fresh pre_auth_code each time. An authorization code is exchanged
exactly once, whichever of the browser callback and the ``authorized`` push comes first:
the first claims a lease on the code's record and exchanges it, the other waits for (or
reads) the result. The refresh token is written to the authorizer record before anything
else can fail. Pushes older than the newest one applied to an authorizer change nothing.
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
from service.component_token import ComponentTokenManager, TokenUnavailableError
from service.config import Settings
from service.leases import new_lease_owner
from service.persist import write_after_answer
from service.store.records import (
    AuthorizationStore,
    AuthorizerRecord,
    AuthorizerStatus,
    CodeExchange,
    ExchangeStatus,
)
from service.wechat.accounts import APPID_PATTERN
from service.wechat.client import AuthorizationInfo, AuthorizerInfo, ComponentClient
from service.wechat.errors import (
    AuthorizationCodeExpiredError,
    AuthorizationCodeInvalidError,
    NotAuthorizedError,
    TransportError,
    WeChatError,
    error_for,
)
from service.wechat.links import AuthorizeLinks, LinkRequest, build_links
from service.wechat.messages import AuthorizationGranted, Unauthorized
from service.wechat.release_accounts import is_release_test_appid

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
    STALE = "stale"  # an older push than the newest one applied: ignored
    REVOKED = "revoked"
    ALREADY_REVOKED = "already_revoked"


@dataclass(frozen=True)
class IssuedLinks:
    links: AuthorizeLinks
    pre_auth_code: str
    expires_at: float
    request: LinkRequest


@dataclass(frozen=True)
class ExchangeResult:
    outcome: Outcome
    authorizer: AuthorizerRecord | None = None
    errcode: int | None = None
    reason: str | None = None  # for REFUSED and ERROR: says why, without secrets


@dataclass(frozen=True)
class FlowPolicy:
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


class AuthorizationFlow:
    def __init__(
        self,
        store: AuthorizationStore,
        client: ComponentClient,
        tokens: ComponentTokenManager,
        settings: Settings,
        policy: FlowPolicy = FlowPolicy(),
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.client = client
        self.tokens = tokens
        self.settings = settings
        self.policy = policy
        self.clock = clock
        self.sleep = sleep

    # ----- links --------------------------------------------------------------------

    def issue_links(self, component_appid: str, request: LinkRequest) -> IssuedLinks:
        """A fresh pre_auth_code (single use) and every link form built on it."""
        asked_at = self.clock()
        pre = self.tokens.call_with_token(
            component_appid,
            lambda token: self.client.api_create_preauthcode(component_appid, token),
        )
        links = build_links(
            component_appid,
            pre.code,
            request,
            mp_base=self.settings.wechat_mp_base,
            open_base=self.settings.wechat_open_base,
        )
        log.info(
            "authorization links issued",
            extra={
                "component_appid": component_appid,
                "auth_type": request.auth_type,
                "biz_appid": request.biz_appid,
            },
        )
        return IssuedLinks(links, pre.code, asked_at + pre.expires_in, request)

    # ----- the code exchange --------------------------------------------------------

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
            lambda: self._grant(component_appid, info, attempt.source, attempt.push),
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
            lambda: self._grant(component_appid, info, attempt.source, attempt.push),
            "a recovered authorization",
            {**where, "authorizer_appid": appid},
        )
        record = self._store_profile(component_appid, appid, profile)
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
        bumped = self.store.modify_authorizer(component_appid, appid, _at_least(push.create_time))
        return ExchangeResult(Outcome.ALREADY, bumped.record)

    def _grant(
        self,
        component_appid: str,
        info: AuthorizationInfo,
        source: str,
        push: AuthorizationGranted | None,
    ) -> AuthorizerRecord:
        now = self.clock()
        appid = info.authorizer_appid

        def grant(current: AuthorizerRecord | None) -> AuthorizerRecord:
            base = current or AuthorizerRecord(component_appid=component_appid, appid=appid)
            was_authorized = current is not None and current.status == AuthorizerStatus.AUTHORIZED
            kept_refresh = base.refresh_token if was_authorized else None
            expires_in = info.expires_in if info.access_token else None
            last_push = base.last_push_time
            if push is not None and (last_push is None or push.create_time > last_push):
                last_push = push.create_time
            return base.but(
                status=AuthorizerStatus.AUTHORIZED.value,
                func_info=info.func_info,
                access_token=info.access_token,
                # 0, not None, without a token: the sweep's query must find it.
                access_token_expires_at=now + expires_in if expires_in else 0.0,
                refresh_token=info.refresh_token or kept_refresh,
                refresh_token_asked_at=now if info.refresh_token else base.refresh_token_asked_at,
                last_error=None,
                last_error_at=None,
                sync_flag=None,
                release_test=is_release_test_appid(appid),
                authorized_at=base.authorized_at if was_authorized else now,
                updated_at=now,
                revoked_at=None,
                last_push_time=last_push,
            ).with_event(
                now,
                "authorization_updated" if was_authorized else "authorized",
                source=source,
                func_info=list(info.func_info),
            )

        record = self.store.modify_authorizer(component_appid, appid, grant).record
        assert record is not None
        log.info(
            "authorizer authorized",
            extra={
                "component_appid": component_appid,
                "authorizer_appid": appid,
                "source": source,
                "func_info": list(info.func_info),
                "has_refresh_token": bool(info.refresh_token),
            },
        )
        return record

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
        return self._store_profile(component_appid, appid, profile)

    def _store_profile(
        self, component_appid: str, appid: str, profile: AuthorizerInfo
    ) -> AuthorizerRecord | None:
        def fill(current: AuthorizerRecord | None) -> AuthorizerRecord | None:
            if current is None:
                return None
            return current.but(
                account_type=profile.account_type.value,
                nick_name=profile.nick_name,
                principal_name=profile.principal_name,
                user_name=profile.user_name,
                head_img=profile.head_img,
                service_type=profile.service_type,
                verify_type=profile.verify_type,
                account_status=profile.account_status,
            )

        return self.store.modify_authorizer(component_appid, appid, fill).record

    # ----- pushes -------------------------------------------------------------------

    def on_granted(self, push: AuthorizationGranted) -> ExchangeResult:
        """``authorized`` / ``updateauthorized``: exchange the code unless the push is stale."""
        if not APPID_PATTERN.match(push.authorizer_appid):
            return ExchangeResult(Outcome.REFUSED, reason="AuthorizerAppid is not an appid")
        if len(push.authorization_code) > MAX_CODE_LENGTH:
            return ExchangeResult(Outcome.REFUSED, reason="AuthorizationCode is too long")
        record = self.store.get_authorizer(push.app_id, push.authorizer_appid)
        if record is not None and push.create_time < (record.last_push_time or 0):
            log.info(
                "stale authorization push ignored",
                extra={
                    "component_appid": push.app_id,
                    "authorizer_appid": push.authorizer_appid,
                    "info_type": push.info_type,
                },
            )
            return ExchangeResult(Outcome.STALE, record)
        return self.exchange(push.app_id, push.authorization_code, "push", push)

    def on_unauthorized(self, push: Unauthorized) -> Outcome:
        """The merchant cancelled: delete the tokens, keep the record and its history."""
        if not APPID_PATTERN.match(push.authorizer_appid):
            return Outcome.REFUSED
        now = self.clock()
        outcome = Outcome.REVOKED

        def revoke(current: AuthorizerRecord | None) -> AuthorizerRecord | None:
            nonlocal outcome
            if current is not None and push.create_time < (current.last_push_time or 0):
                outcome = Outcome.STALE
                return None
            if current is not None and current.status == AuthorizerStatus.REVOKED:
                outcome = Outcome.ALREADY_REVOKED
                return None
            outcome = Outcome.REVOKED
            base = current or AuthorizerRecord(
                component_appid=push.app_id, appid=push.authorizer_appid
            )
            return base.but(
                status=AuthorizerStatus.REVOKED.value,
                access_token=None,
                access_token_expires_at=None,
                refresh_token=None,
                revoked_at=now,
                updated_at=now,
                last_push_time=push.create_time,
            ).with_event(now, "unauthorized", source="push")

        self.store.modify_authorizer(push.app_id, push.authorizer_appid, revoke)
        log_fn = log.warning if outcome == Outcome.REVOKED else log.info
        log_fn(
            "authorizer unauthorized"
            if outcome == Outcome.REVOKED
            else "unauthorized push ignored",
            extra={
                "component_appid": push.app_id,
                "authorizer_appid": push.authorizer_appid,
                "outcome": outcome.value,
            },
        )
        return outcome


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


def _at_least(create_time: int) -> Callable[[AuthorizerRecord | None], AuthorizerRecord | None]:
    def bump(current: AuthorizerRecord | None) -> AuthorizerRecord | None:
        if current is None or create_time <= (current.last_push_time or 0):
            return None
        return current.but(last_push_time=create_time)

    return bump
