"""Authorizer access tokens: one record per authorizer, one refresher at a time (§3.5, §5).

The pattern of the component token, per authorizer: whoever finds the token due takes a
lease on the authorizer's record (compare-and-set) and calls ``api_authorizer_token``;
everyone else, in any process, keeps using the still-valid token or waits for the lease
holder's result. The answer's refresh token and access token are written in one
compare-and-set before the access token is handed out, and only while the authorizer is
still authorized: a token for a revoked authorizer is never handed out.

Failures keep every credential: a transient error only records itself; 61023 marks the
authorizer ``needs_reauthorization`` and 61003 marks it ``revoked`` (both through
``service.authorizer_status``); 45009 pauses every ``api_authorizer_token`` call of the
component until the quota may have come back.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from service import leases
from service.authorizer_status import AuthorizerStatusKeeper
from service.component_token import ComponentTokenManager, TokenUnavailableError
from service.leases import new_lease_owner
from service.log_events import (
    AUTHORIZER_QUOTA_EXCEEDED,
    AUTHORIZER_REFRESH_FAILED,
    REFRESH_TOKEN_REJECTED,
)
from service.persist import write_after_answer
from service.store.records import (
    AuthorizationStore,
    AuthorizerRecord,
    AuthorizerStatus,
    ComponentRecord,
    StoreError,
    TokenGlance,
)
from service.wechat.client import AuthorizerAccessToken, ComponentClient
from service.wechat.errors import (
    NotAuthorizedError,
    QuotaExceededError,
    RefreshTokenInvalidError,
    WeChatError,
    retry_once_if_rejected,
)

log = logging.getLogger(__name__)

BEIJING_OFFSET = 8 * 3600  # WeChat's daily quotas reset at midnight, Beijing time
DAY = 86400
COMPONENT_TOKEN_MARGIN = 60.0  # a component token passed in is used only this far from expiry
_T = TypeVar("_T")


@dataclass(frozen=True)
class AuthorizerToken:
    access_token: str = field(repr=False)
    expires_at: float


class Outcome(StrEnum):
    FRESH = "fresh"  # a valid token was stored: nothing called
    RENEWED = "renewed"  # this call renewed it
    WAITED = "waited"  # another refresher renewed it while this call waited
    KEPT = "kept"  # renewing failed for now; the stored token is still valid, so it is served
    SKIPPED = "skipped"  # sweep: not due after all, or someone else is renewing it
    FAILED = "failed"  # sweep: a transient failure; credentials kept, the next sweep retries
    NEEDS_REAUTHORIZATION = "needs_reauthorization"
    REVOKED = "revoked"
    QUOTA_EXCEEDED = "quota_exceeded"


class AuthorizerTokenError(Exception):
    """No token can be handed out; the text says why, without secrets."""


class AuthorizerNotFoundError(AuthorizerTokenError):
    pass


class AuthorizerUnavailableError(AuthorizerTokenError):
    """The authorizer is revoked, needs re-authorization or has no refresh token."""

    def __init__(self, status: str, reason: str) -> None:
        self.status = status
        super().__init__(reason)


class QuotaBackoffError(AuthorizerTokenError):
    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1.0, retry_after)
        super().__init__(
            "api_authorizer_token is over its daily quota (45009); "
            f"no call for {self.retry_after:.0f} s (or clear the quota)"
        )


class RefreshFailedError(AuthorizerTokenError):
    """A transient failure: retrying later may succeed. Nothing was lost."""


@dataclass(frozen=True)
class AuthorizerTokenPolicy:
    min_ttl: float = 300.0  # a token handed out stays valid at least this long
    lease_seconds: float = 30.0
    poll_interval: float = 0.1
    quota_backoff: float = 300.0  # the first pause after 45009; doubles, up to the reset


class AuthorizerTokenManager:
    def __init__(
        self,
        store: AuthorizationStore,
        client: ComponentClient,
        component_tokens: ComponentTokenManager,
        policy: AuthorizerTokenPolicy = AuthorizerTokenPolicy(),
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.client = client
        self.component_tokens = component_tokens
        self.statuses = AuthorizerStatusKeeper(store)  # 61023 and 61003 change the status
        self.policy = policy
        self.clock = clock
        self.sleep = sleep

    # ----- handing tokens out ----------------------------------------------------------

    def get(
        self,
        component_appid: str,
        appid: str,
        invalid_token: str | None = None,
        glanced: bool = False,
    ) -> tuple[AuthorizerToken, Outcome]:
        """A token valid for at least ``min_ttl``, renewed first if needed (one refresher).

        ``invalid_token``: WeChat answered 40001 to it. It is renewed only if it is still
        the stored token; otherwise the newer one is returned. ``glanced``: the caller
        has just found ``stored`` gives nothing (service.web.token_hits); not asked again.
        """
        if invalid_token:
            self.invalidate(component_appid, appid, invalid_token)
        elif not glanced:
            stored = self.stored(component_appid, appid)
            if stored is not None:
                return stored, Outcome.FRESH
        started = self.clock()
        deadline = started + self.policy.lease_seconds + 5
        waited = False
        while True:
            record = self._authorized(component_appid, appid)
            now = self.clock()
            if record.token_valid_at(now + self.policy.min_ttl):
                return _token(record), Outcome.WAITED if waited else Outcome.FRESH
            if record.lease_free_at(now):
                if waited and record.last_error_at is not None and record.last_error_at >= started:
                    # The refresher we waited for failed: report it, do not stampede.
                    return self._fallback(record, now, record.last_error or "refresh failed")
                owner = new_lease_owner()
                # From the record just read: no second read unless someone wrote since.
                taken = self._take_lease(
                    component_appid, appid, owner, now + self.policy.min_ttl, seen=record
                )
                if taken is not None:
                    try:
                        return self._renew(taken, owner), Outcome.RENEWED
                    except RefreshFailedError as exc:
                        return self._fallback(taken, self.clock(), str(exc))
                    except QuotaBackoffError:
                        # Renewing needs the quota; a still-valid token is better than none.
                        if taken.token_valid_at(self.clock()):
                            return _token(taken), Outcome.KEPT
                        raise
                continue
            if record.token_valid_at(now):
                # Another process is renewing; the current token is still good meanwhile.
                return _token(record), Outcome.FRESH
            if now >= deadline:
                raise RefreshFailedError("timed out waiting for another process to renew")
            waited = True
            self.sleep(self.policy.poll_interval * random.uniform(0.5, 1.5))

    def stored(self, component_appid: str, appid: str) -> AuthorizerToken | None:
        """The common case of ``get``: the stored token, if it is good for ``min_ttl`` and
        the authorizer authorized; read as three fields, not the record. None: anything
        else (renewing, waiting, refusing), which ``get`` decides on the whole record."""
        glance = self.store.get_authorizer_token(component_appid, appid)
        if (
            glance is not None
            and glance.status == AuthorizerStatus.AUTHORIZED
            and glance.token_valid_at(self.clock() + self.policy.min_ttl)
        ):
            return _token(glance)
        return None

    def invalidate(self, component_appid: str, appid: str, token: str) -> bool:
        """Forget ``token`` if it is still the stored one (WeChat said 40001/42001)."""

        def forget(current: AuthorizerRecord | None) -> AuthorizerRecord | None:
            if current is None or current.access_token != token:
                return None
            # 0, not None: the sweep's query (expires_at < t) must still find it.
            return current.but(access_token=None, access_token_expires_at=0.0)

        invalidated = self.store.modify_authorizer(component_appid, appid, forget).changed
        log.warning(
            "authorizer token rejected by WeChat",
            extra={
                "component_appid": component_appid,
                "authorizer_appid": appid,
                "invalidated": invalidated,
            },
        )
        return invalidated

    def call_with_token(self, component_appid: str, appid: str, call: Callable[[str], _T]) -> _T:
        """Run ``call(token)``; if WeChat rejects the token, invalidate it and retry once."""
        return retry_once_if_rejected(
            self.get(component_appid, appid)[0].access_token,
            lambda rejected: self.invalidate(component_appid, appid, rejected),
            lambda: self.get(component_appid, appid)[0].access_token,
            call,
        )

    def end_quota_pause(self, component_appid: str) -> None:
        """The quota was cleared: api_authorizer_token may be called again at once."""

        def resume(record: ComponentRecord) -> ComponentRecord | None:
            if record.authorizer_token_quota_until is None:
                return None
            return record.but(authorizer_token_quota_until=None, authorizer_token_quota_strikes=0)

        self.store.modify_component(component_appid, resume)

    # ----- the sweep -------------------------------------------------------------------

    def refresh_due(
        self,
        component_appid: str,
        appid: str,
        due_before: float,
        seen: AuthorizerRecord | None = None,
        component: ComponentRecord | None = None,
    ) -> Outcome:
        """Renew the token if it expires before ``due_before`` and nobody else is at it.

        Never waits: a lease held elsewhere means someone is renewing it already.

        The sweep passes what it has read already: ``seen``, the authorizer as its query
        found it (the lease is then taken on the condition that nobody wrote the record
        since, without reading it; if someone did, it is read and decided again), and
        ``component``, the component record read once per sweep (its token and 45009
        pause; read again only if its token has expired meanwhile).
        """
        owner = new_lease_owner()
        taken = self._take_lease(component_appid, appid, owner, due_before, seen)
        if taken is None:
            return Outcome.SKIPPED
        try:
            self._renew(taken, owner, component)
        except AuthorizerUnavailableError as exc:
            return Outcome(exc.status)
        except QuotaBackoffError:
            return Outcome.QUOTA_EXCEEDED
        except RefreshFailedError:
            return Outcome.FAILED
        return Outcome.RENEWED

    def sweep_one(
        self,
        record: AuthorizerRecord | None,
        due_before: float,
        component: ComponentRecord,
        quota_hit: threading.Event,
    ) -> Outcome:
        """``refresh_due`` for one authorizer of a sweep (inline, or a shard of one), from
        the ``record`` the sweep read (None: gone since it was listed, skipped).

        No call once the component met 45009 in this sweep (``quota_hit``, set here); an
        error is logged and counted failed, never raised: one authorizer's bug, or the
        store's, must not end the sweep.
        """
        if quota_hit.is_set():
            return Outcome.QUOTA_EXCEEDED
        if record is None:
            return Outcome.SKIPPED
        where = {"event": AUTHORIZER_REFRESH_FAILED, "authorizer_appid": record.appid}
        try:
            outcome = self.refresh_due(
                record.component_appid, record.appid, due_before, seen=record, component=component
            )
        except StoreError as exc:
            log.error("refresh sweep: store failed", extra={**where, "error": str(exc)})
            return Outcome.FAILED
        except Exception as exc:
            log.exception(
                "refresh sweep: unexpected error",
                extra={**where, "error_type": type(exc).__name__},
            )
            return Outcome.FAILED
        if outcome is Outcome.QUOTA_EXCEEDED:
            quota_hit.set()
        return outcome

    # ----- internals -------------------------------------------------------------------

    def _authorized(self, component_appid: str, appid: str) -> AuthorizerRecord:
        record = self.store.get_authorizer(component_appid, appid)
        if record is None:
            raise AuthorizerNotFoundError(f"no authorizer {appid} for {component_appid}")
        if record.status == AuthorizerStatus.REVOKED:
            raise AuthorizerUnavailableError(
                record.status, f"authorizer {appid} has cancelled its authorization"
            )
        if record.status == AuthorizerStatus.NEEDS_REAUTHORIZATION:
            raise AuthorizerUnavailableError(
                record.status,
                f"authorizer {appid} must authorize again: WeChat refused its refresh token",
            )
        if not record.refresh_token and not record.token_valid_at(self.clock()):
            raise AuthorizerUnavailableError(
                AuthorizerStatus.NEEDS_REAUTHORIZATION.value,
                f"authorizer {appid} has no refresh token: it must authorize again",
            )
        return record

    def _fallback(
        self, record: AuthorizerRecord, now: float, reason: str
    ) -> tuple[AuthorizerToken, Outcome]:
        if record.token_valid_at(now):
            return _token(record), Outcome.KEPT
        raise RefreshFailedError(f"authorizer token refresh failed: {reason}")

    def _take_lease(
        self,
        component_appid: str,
        appid: str,
        owner: str,
        due_before: float,
        seen: AuthorizerRecord | None = None,
    ) -> AuthorizerRecord | None:
        def due(current: AuthorizerRecord) -> bool:
            return (
                current.status == AuthorizerStatus.AUTHORIZED
                and bool(current.refresh_token)
                and not current.token_valid_at(due_before)
            )

        take = leases.take(owner, self.clock(), self.policy.lease_seconds, when=due)
        result = self.store.modify_authorizer(component_appid, appid, take, seen=seen)
        return result.record if result.changed else None

    def _renew(
        self, taken: AuthorizerRecord, owner: str, component: ComponentRecord | None = None
    ) -> AuthorizerToken:
        """Call WeChat while holding the lease; every outcome also gives the lease back."""
        component_appid, appid = taken.component_appid, taken.appid
        refresh_token = taken.refresh_token
        assert refresh_token is not None
        where = {"component_appid": component_appid, "authorizer_appid": appid}
        asked_at = self.clock()
        try:
            answer = self.component_tokens.call_with_token(
                component_appid,
                lambda component_token: self.client.api_authorizer_token(
                    component_appid, appid, refresh_token, component_token
                ),
                token=self._component_token(component_appid, component),
            )
        except QuotaBackoffError:
            self._settle(taken, owner, lambda current: {})  # only the lease goes back
            raise
        except RefreshTokenInvalidError as exc:
            self.statuses.refuse_refresh(taken, owner, refresh_token, exc, self.clock())
            log.error(
                "authorizer refresh token rejected (61023): the merchant must authorize again",
                extra={**where, "event": REFRESH_TOKEN_REJECTED},
            )
            raise AuthorizerUnavailableError(
                AuthorizerStatus.NEEDS_REAUTHORIZATION.value,
                f"authorizer {appid} must authorize again: WeChat refused its refresh token",
            ) from None
        except NotAuthorizedError as exc:
            self.statuses.refuse_refresh(taken, owner, refresh_token, exc, self.clock())
            log.warning("authorizer is no longer authorized (61003)", extra=where)
            raise AuthorizerUnavailableError(
                AuthorizerStatus.REVOKED.value,
                f"authorizer {appid} has cancelled its authorization (61003)",
            ) from None
        except QuotaExceededError as exc:
            self._settle(taken, owner, _failed(str(exc), self.clock()))
            retry_after = self._pause_for_quota(component_appid)
            log.error(
                "api_authorizer_token over its daily quota (45009)",
                extra={**where, "event": AUTHORIZER_QUOTA_EXCEEDED},
            )
            raise QuotaBackoffError(retry_after) from None
        except (WeChatError, TokenUnavailableError) as exc:
            # Transient or not, the credentials stay: only the error is recorded.
            self._settle(taken, owner, _failed(str(exc), self.clock()))
            log.warning(
                "authorizer token refresh failed",
                extra={**where, "event": AUTHORIZER_REFRESH_FAILED, "error": str(exc)},
            )
            raise RefreshFailedError(str(exc)) from None
        except BaseException:
            self._settle(taken, owner, _failed("unexpected error during refresh", self.clock()))
            raise
        # WeChat has issued the token (and maybe rotated the refresh token): this write is
        # retried, never dropped, and stands even if our lease was taken over meanwhile.
        stored = write_after_answer(
            lambda: self._settle(taken, owner, _renewed(answer, asked_at, self.clock()), True),
            "the renewed authorizer token",
            where,
        )
        if stored is None or stored.status != AuthorizerStatus.AUTHORIZED:
            raise AuthorizerUnavailableError(
                AuthorizerStatus.REVOKED.value,
                f"authorizer {appid} cancelled its authorization during the refresh",
            )
        rotated = bool(answer.refresh_token) and answer.refresh_token != refresh_token
        # A renewal is the sweep's everyday work (its shards log their counts); at a
        # million authorizers a line each would be 12 million lines a day. A new refresh
        # token is worth a line.
        log.log(
            logging.INFO if rotated else logging.DEBUG,
            "authorizer token renewed",
            extra={**where, "rotated": rotated},
        )
        return _token(stored)

    def _component_token(self, component_appid: str, component: ComponentRecord | None) -> str:
        """The component token, read with the 45009 pause: in a pause, no call is made.

        ``component``: the record as the caller read it; read again if its token has
        expired (or is about to) since.
        """
        now = self.clock()
        if component is None or not component.token_valid_at(now + COMPONENT_TOKEN_MARGIN):
            component, _ = self.component_tokens.obtain_record(component_appid)
            now = self.clock()
        paused = component.authorizer_token_paused_until(now)
        if paused is not None:  # another sweep or request met 45009
            raise QuotaBackoffError(paused - now)
        assert component.component_token is not None
        return component.component_token

    def _settle(
        self,
        taken: AuthorizerRecord,
        owner: str,
        update: Callable[[AuthorizerRecord], dict[str, Any]],
        final: bool = False,
    ) -> AuthorizerRecord | None:
        """Apply the refresh's result and give the lease back, in one compare-and-set.

        ``final``: WeChat's answer changed the world (a token issued, a refresh token
        refused), so it is applied even if another process took the lease over meanwhile;
        anything else only while the lease is ours.
        """

        def outcome(current: AuthorizerRecord) -> AuthorizerRecord | None:
            changes = update(current)
            return current.but(**changes) if changes else None

        change = leases.finish(owner, outcome, final)
        # Conditional on the lease write (``taken.version``): no read when nobody wrote the
        # record since we took the lease; read and decided again when someone did.
        return self.store.modify_authorizer(
            taken.component_appid, taken.appid, change, seen=taken
        ).record

    def _pause_for_quota(self, component_appid: str) -> float:
        now = self.clock()
        # The quota comes back at midnight in Beijing; a cleared quota ends the pause sooner.
        reset = ((now + BEIJING_OFFSET) // DAY + 1) * DAY - BEIJING_OFFSET

        def pause(record: ComponentRecord) -> ComponentRecord | None:
            last = record.authorizer_token_quota_until
            if last is not None and last > now:
                return None  # calls in flight together: one burst of 45009 is one strike
            strikes = record.authorizer_token_quota_strikes + 1
            if last is None or now - last > DAY:
                strikes = 1
            wait = min(self.policy.quota_backoff * 2 ** (strikes - 1), max(60.0, reset - now))
            return record.but(
                authorizer_token_quota_until=now + wait, authorizer_token_quota_strikes=strikes
            )

        record = self.store.modify_component(component_appid, pause).record
        return (record.authorizer_token_quota_until or now) - now


def _token(record: AuthorizerRecord | TokenGlance) -> AuthorizerToken:
    assert record.access_token is not None and record.access_token_expires_at is not None
    return AuthorizerToken(record.access_token, record.access_token_expires_at)


def _renewed(
    answer: AuthorizerAccessToken, asked_at: float, now: float
) -> Callable[[AuthorizerRecord], dict[str, Any]]:
    # WeChat's 7200 s start when it answers; counting from the request is safer.
    expires_at = asked_at + answer.expires_in

    def update(current: AuthorizerRecord) -> dict[str, Any]:
        if current.status != AuthorizerStatus.AUTHORIZED:
            return {}  # revoked meanwhile: keep nothing of it
        changes: dict[str, Any] = {"refreshed_at": now, "last_error": None, "last_error_at": None}
        # The refresh token of the call asked last wins: WeChat issued it last. One stored
        # meanwhile by a re-authorization, or by a refresher that took over our expired
        # lease and asked after us, is newer than ours and stays.
        if answer.refresh_token and asked_at > (current.refresh_token_asked_at or 0.0):
            changes.update(refresh_token=answer.refresh_token, refresh_token_asked_at=asked_at)
        newest = current.access_token_expires_at
        if not current.access_token or newest is None or expires_at > newest:
            changes.update(access_token=answer.access_token, access_token_expires_at=expires_at)
        return changes

    return update


def _failed(error: str, now: float) -> Callable[[AuthorizerRecord], dict[str, Any]]:
    return lambda current: {"last_error": error, "last_error_at": now}
