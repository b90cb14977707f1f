"""The component_access_token: one record in Firestore, one refresher at a time.

A caller that finds the token close to expiry takes a lease on the record (compare-and-set)
and renews it; every other caller, in any process, keeps using the still-valid token or, if
there is none, waits for the lease holder's result instead of calling WeChat itself.
"""

from __future__ import annotations

import enum
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from service import leases
from service.config import ComponentConfig
from service.leases import new_lease_owner
from service.log_events import COMPONENT_TOKEN_REFRESH_FAILED
from service.persist import write_after_answer
from service.store.records import ComponentRecord, ComponentStore
from service.tickets import TicketKeeper
from service.wechat.client import ComponentClient
from service.wechat.errors import (
    TicketExpiredError,
    TicketInvalidError,
    WeChatError,
    retry_once_if_rejected,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class TokenUnavailableError(RuntimeError):
    """No valid component token could be obtained; the text says why, without secrets."""


class Outcome(enum.Enum):
    FRESH = "fresh"  # a valid token was already stored
    RENEWED = "renewed"  # this call renewed it
    WAITED = "waited"  # another refresher renewed it while this call waited


@dataclass(frozen=True)
class TokenPolicy:
    refresh_margin: float = 600.0
    lease_seconds: float = 30.0
    poll_interval: float = 0.1


class ComponentTokenManager:
    def __init__(
        self,
        store: ComponentStore,
        client: ComponentClient,
        components: Mapping[str, ComponentConfig],
        tickets: TicketKeeper,
        policy: TokenPolicy = TokenPolicy(),
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.client = client
        self.components = components
        self.tickets = tickets
        self.policy = policy
        self.clock = clock
        self.sleep = sleep

    def get_token(self, appid: str) -> str:
        return self.obtain(appid)[0]

    def obtain(self, appid: str) -> tuple[str, Outcome]:
        """A token valid beyond the refresh margin, renewing it if needed (one refresher)."""
        record, outcome = self.obtain_record(appid)
        return _token(record), outcome

    def obtain_record(self, appid: str) -> tuple[ComponentRecord, Outcome]:
        """``obtain``, with the whole record read: callers that need more of it read once."""
        started = self.clock()
        deadline = started + self.policy.lease_seconds + 5
        waited = False
        while True:
            record = self.store.get_component(appid)
            now = self.clock()
            if record.token_valid_at(now + self.policy.refresh_margin):
                return record, Outcome.WAITED if waited else Outcome.FRESH
            if record.lease_free_at(now):
                if waited and record.last_error_at is not None and record.last_error_at >= started:
                    # The refresher we waited for failed: report its error, do not stampede.
                    raise TokenUnavailableError(
                        f"component token refresh failed: {record.last_error}"
                    )
                owner = new_lease_owner()
                if self._take_lease(appid, owner, now):
                    return self._renew(appid, owner), Outcome.RENEWED
                continue
            if record.token_valid_at(now):
                # Another process is renewing; the current token is still good meanwhile.
                return record, Outcome.FRESH
            if now >= deadline:
                raise TokenUnavailableError("timed out waiting for another process to renew")
            waited = True
            self.sleep(self.policy.poll_interval * random.uniform(0.5, 1.5))

    def invalidate(self, appid: str, token: str) -> bool:
        """Forget ``token`` if it is still the stored one (WeChat said 40001/42001)."""

        def forget(record: ComponentRecord) -> ComponentRecord | None:
            if record.component_token != token:
                return None
            return record.but(component_token=None, component_token_expires_at=None)

        invalidated = self.store.modify_component(appid, forget).changed
        log.warning(
            "component token rejected by WeChat",
            extra={"component_appid": appid, "invalidated": invalidated},
        )
        return invalidated

    def call_with_token(
        self, appid: str, call: Callable[[str], _T], token: str | None = None
    ) -> _T:
        """Run ``call(token)``; if WeChat rejects the token, invalidate it and retry once.

        ``token``: one the caller has just obtained, so it is not read again.
        """
        return retry_once_if_rejected(
            token or self.get_token(appid),
            lambda rejected: self.invalidate(appid, rejected),
            lambda: self.get_token(appid),
            call,
        )

    def _take_lease(self, appid: str, owner: str, now: float) -> bool:
        def due(record: ComponentRecord) -> bool:
            return not record.token_valid_at(now + self.policy.refresh_margin)

        take = leases.take(owner, now, self.policy.lease_seconds, when=due)
        return self.store.modify_component(appid, take).changed

    def _renew(self, appid: str, owner: str) -> ComponentRecord:
        """Call WeChat while holding the lease; always give the lease back."""
        error: str | None = None
        try:
            record = self.store.get_component(appid)
            if not record.ticket:
                self.tickets.request_push(appid)
                error = "no component_verify_ticket received yet; asked WeChat to push one"
                raise TokenUnavailableError(error)
            if self.tickets.is_stale(record):
                self.tickets.request_push(appid)
            # WeChat's 7200 s start when it answers; counting from the request is safer.
            asked_at = self.clock()
            try:
                answer = self.client.api_component_token(
                    appid, self.components[appid].secret, record.ticket
                )
            except (TicketExpiredError, TicketInvalidError) as exc:
                self.tickets.request_push(appid)
                error = str(exc)
                raise TokenUnavailableError(error) from None
            except WeChatError as exc:
                error = str(exc)
                raise TokenUnavailableError(error) from None
            expires_at = asked_at + answer.expires_in
            # WeChat issued the token (the old one now dies in 5 minutes): stored, or retried.
            renewed = write_after_answer(
                lambda: self._release(appid, owner, token=answer.token, expires_at=expires_at),
                "the renewed component token",
                {"component_appid": appid},
            )
            log.info(
                "component token renewed",
                extra={"component_appid": appid, "expires_in": answer.expires_in},
            )
            return renewed
        except BaseException:
            self._release(appid, owner, error=error or "unexpected error during refresh")
            if error:
                log.error(
                    "component token refresh failed",
                    extra={
                        "event": COMPONENT_TOKEN_REFRESH_FAILED,
                        "component_appid": appid,
                        "error": error,
                    },
                )
            raise

    def _release(
        self,
        appid: str,
        owner: str,
        token: str | None = None,
        expires_at: float | None = None,
        error: str | None = None,
    ) -> ComponentRecord:
        """Store the renewed token (a fact: even if our lease was taken over, a newer token
        is worth keeping), or the error (only while the lease is ours)."""
        now = self.clock()
        if token is not None and expires_at is not None:

            def newer(record: ComponentRecord) -> ComponentRecord | None:
                stored = record.component_token_expires_at
                if stored is not None and expires_at <= stored:
                    return None
                return record.but(component_token=token, component_token_expires_at=expires_at)

            change = leases.finish(owner, newer, final=True)
        else:
            change = leases.release(owner, lambda r: r.but(last_error=error, last_error_at=now))
        return self.store.modify_component(appid, change).record


def _token(record: ComponentRecord) -> str:
    assert record.component_token is not None
    return record.component_token
