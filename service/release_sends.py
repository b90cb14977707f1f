"""The customer-service text the 全网发布 check waits for after ``QUERY_AUTH_CODE:<code>``.

The check wants the empty answer first, then the text ``<code>_from_api`` sent with the test
account's authorizer token (messages doc §4.2, cases 2b and 2c). The send is written to
Firestore before the empty answer goes out (``enqueue``), so it outlives the process that
answered: that process sends it right after its answer (``run``), and if it stopped first,
or Cloud Run throttled its CPU, the next refresh sweep does (``recover``).

custom/send is not safe to repeat (the user would read the text twice), so a send moves
through phases, each a compare-and-set on its record:

    pending -> claimed (lease; the code exchanged once, the token renewed if need be)
            -> sending (calling custom/send) -> sent | failed | unknown

A claim whose holder died is taken over. A send whose holder died while calling WeChat,
or whose call timed out, is marked ``unknown`` and never repeated. WeChat's retry of the
check's message finds the record and adds nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from service.authorizer_tokens import (
    AuthorizerTokenError,
    AuthorizerTokenManager,
    QuotaBackoffError,
    RefreshFailedError,
)
from service.code_exchange import CodeExchanger
from service.code_exchange import Outcome as ExchangeOutcome
from service.leases import new_lease_owner
from service.proxy import AuthorizerProxy, ProxyCall, UpstreamError
from service.store.records import (
    AuthorizationStore,
    ReleaseSend,
    ReleaseSendStatus,
)
from service.wechat.release_accounts import API_REPLY_SUFFIX

log = logging.getLogger(__name__)

# The code exchange has not settled: leave the send pending for the next run.
_NOT_YET = (ExchangeOutcome.IN_PROGRESS, ExchangeOutcome.ERROR, ExchangeOutcome.CONFIRMING)

CUSTOM_SEND_PATH = "cgi-bin/message/custom/send"
_PENDING, _CLAIMED, _SENDING = (
    ReleaseSendStatus.PENDING.value,
    ReleaseSendStatus.CLAIMED.value,
    ReleaseSendStatus.SENDING.value,
)


@dataclass(frozen=True)
class ReleaseSendPolicy:
    lease_seconds: float = 30.0
    max_attempts: int = 5  # claims that end back in pending (a transient failure)
    write_deadline: float = 2.0  # enqueue happens before WeChat's 5 s answer
    ttl: float = 7 * 86400  # Firestore deletes the record after this


def send_key(component_appid: str, authorizer_appid: str, dedup_key: str) -> str:
    """The record key: a hash of the message's dedup key (which holds an openid)."""
    raw = f"{component_appid}\n{authorizer_appid}\n{dedup_key}"
    return hashlib.sha256(raw.encode()).hexdigest()


class ReleaseSends:
    def __init__(
        self,
        store: AuthorizationStore,
        exchanger: CodeExchanger,
        tokens: AuthorizerTokenManager,
        proxy: AuthorizerProxy,
        policy: ReleaseSendPolicy = ReleaseSendPolicy(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.exchanger = exchanger
        self.tokens = tokens
        self.proxy = proxy
        self.policy = policy
        self.clock = clock

    def enqueue(
        self, component_appid: str, authorizer_appid: str, to_user: str, code: str, dedup_key: str
    ) -> str:
        """Write the send before the answer goes out (StoreError if that cannot be done in
        time: then the message must not be answered, so WeChat tries it again)."""
        key = send_key(component_appid, authorizer_appid, dedup_key)
        now = self.clock()
        created = self.store.create_release_send(
            ReleaseSend(
                component_appid=component_appid,
                key=key,
                authorizer_appid=authorizer_appid,
                to_user=to_user,
                code=code,
                created_at=now,
                expire_at=datetime.fromtimestamp(now + self.policy.ttl, UTC),
            ),
            deadline=self.policy.write_deadline,
        )
        log.info(
            "release check: customer-service text queued"
            if created
            else "release check: customer-service text already queued (WeChat's retry)",
            extra=_where(component_appid, authorizer_appid, key),
        )
        return key

    def run(self, component_appid: str, key: str) -> str:
        """Send it now unless someone else is at it or it is done; returns the outcome:
        sent, failed, unknown, retry (back to pending) or skipped."""
        owner = new_lease_owner()
        taken = self._claim(component_appid, key, owner)
        if taken is None:
            return "skipped"
        where = _where(component_appid, taken.authorizer_appid, key)
        if taken.attempts > self.policy.max_attempts:
            return self._finish(taken, owner, ReleaseSendStatus.FAILED, error="too many attempts")
        log.info("release check: customer-service text claimed", extra=where)
        # The code is exchanged once across the push, the browser and this: usually the
        # authorized push did it, and the stored token is used (nothing is called).
        exchanged = self.exchanger.exchange(
            component_appid,
            taken.code,
            source="release_check",
            authorizer_appid=taken.authorizer_appid,
        )
        if exchanged.outcome in _NOT_YET:
            return self._release(taken, owner, f"code exchange: {exchanged.reason}")
        if exchanged.outcome is ExchangeOutcome.REFUSED:
            log.info("release check: code refused by WeChat; using the stored token", extra=where)
        # A token valid for a while yet, renewed here if need be, while a crash costs nothing:
        # past the next step the send is never repeated.
        try:
            self.tokens.get(component_appid, taken.authorizer_appid)
        except (RefreshFailedError, QuotaBackoffError) as exc:
            return self._release(taken, owner, str(exc))
        except AuthorizerTokenError as exc:
            return self._finish(taken, owner, ReleaseSendStatus.FAILED, error=str(exc))
        if not self._advance(taken, owner):
            return "skipped"
        body = {
            "touser": taken.to_user,
            "msgtype": "text",
            "text": {"content": taken.code + API_REPLY_SUFFIX},
        }
        call = ProxyCall(
            "POST",
            CUSTOM_SEND_PATH,
            body=json.dumps(body, ensure_ascii=False).encode(),
            content_type="application/json",
        )
        try:
            answer = self.proxy.forward(component_appid, taken.authorizer_appid, call)
        except (RefreshFailedError, QuotaBackoffError) as exc:
            return self._release(taken, owner, str(exc))  # no token: nothing was sent
        except AuthorizerTokenError as exc:
            return self._finish(taken, owner, ReleaseSendStatus.FAILED, error=str(exc))
        except UpstreamError as exc:
            if not exc.reached:
                return self._release(taken, owner, str(exc))
            return self._finish(taken, owner, ReleaseSendStatus.UNKNOWN, error=str(exc))
        if answer.status == 200 and answer.errcode in (0, None):
            return self._finish(taken, owner, ReleaseSendStatus.SENT)
        return self._finish(
            taken,
            owner,
            ReleaseSendStatus.FAILED,
            errcode=answer.errcode,
            error=f"custom/send answered HTTP {answer.status}, errcode {answer.errcode}",
        )

    def recover(self, component_appid: str) -> dict[str, int]:
        """Finish what a stopped process left: run the pending and abandoned claims, and
        mark a send abandoned mid-call ``unknown`` (never sent twice)."""
        counts: Counter[str] = Counter()
        now = self.clock()
        for send in self.store.open_release_sends(component_appid):
            if not send.lease_free_at(now):
                counts["busy"] += 1
            elif send.status == _SENDING:
                counts[self._abandoned_mid_send(send, now)] += 1
            else:
                counts[self.run(component_appid, send.key)] += 1
        return dict(counts)

    # ----- phases ------------------------------------------------------------------

    def _claim(self, component_appid: str, key: str, owner: str) -> ReleaseSend | None:
        now = self.clock()

        def claim(current: ReleaseSend | None) -> ReleaseSend | None:
            if current is None or current.status not in (_PENDING, _CLAIMED):
                return None
            if not current.lease_free_at(now):
                return None
            return current.but(
                status=_CLAIMED,
                lease_owner=owner,
                lease_until=now + self.policy.lease_seconds,
                attempts=current.attempts + 1,
            )

        result = self.store.modify_release_send(component_appid, key, claim)
        return result.record if result.changed else None

    def _advance(self, taken: ReleaseSend, owner: str) -> bool:
        """claimed -> sending, if the lease is still ours: past here it is never repeated."""
        until = self.clock() + self.policy.lease_seconds

        def advance(current: ReleaseSend | None) -> ReleaseSend | None:
            if current is None or current.status != _CLAIMED or current.lease_owner != owner:
                return None
            return current.but(status=_SENDING, lease_until=until)

        return self.store.modify_release_send(taken.component_appid, taken.key, advance).changed

    def _release(self, taken: ReleaseSend, owner: str, error: str) -> str:
        """Back to pending (nothing was sent): the next run or sweep tries again."""

        def release(current: ReleaseSend | None) -> ReleaseSend | None:
            if current is None or current.lease_owner != owner:
                return None
            if current.status not in (_CLAIMED, _SENDING):
                return None
            return current.but(status=_PENDING, lease_owner=None, lease_until=None, error=error)

        self.store.modify_release_send(taken.component_appid, taken.key, release)
        log.warning(
            "release check: customer-service text not sent yet; it will be retried",
            extra={
                **_where(taken.component_appid, taken.authorizer_appid, taken.key),
                "error": error,
            },
        )
        return "retry"

    def _finish(
        self,
        taken: ReleaseSend,
        owner: str,
        status: ReleaseSendStatus,
        errcode: int | None = None,
        error: str | None = None,
    ) -> str:
        now = self.clock()

        def finish(current: ReleaseSend | None) -> ReleaseSend | None:
            if current is None or current.lease_owner != owner:
                return None
            return current.but(
                status=status.value,
                lease_until=None,
                finished_at=now,
                errcode=errcode,
                error=error,
            )

        self.store.modify_release_send(taken.component_appid, taken.key, finish)
        where = {
            **_where(taken.component_appid, taken.authorizer_appid, taken.key),
            "outcome": status.value,
            "errcode": errcode,
            "error": error,
        }
        if status is ReleaseSendStatus.SENT:
            log.info("release check: customer-service text sent", extra=where)
        else:
            log.error("release check: customer-service text not sent", extra=where)
        return status.value

    def _abandoned_mid_send(self, send: ReleaseSend, now: float) -> str:
        def give_up(current: ReleaseSend | None) -> ReleaseSend | None:
            if current is None or current.status != _SENDING or not current.lease_free_at(now):
                return None
            return current.but(
                status=ReleaseSendStatus.UNKNOWN.value,
                finished_at=now,
                error="the sender stopped while calling custom/send; not repeated",
            )

        if not self.store.modify_release_send(send.component_appid, send.key, give_up).changed:
            return "skipped"
        log.error(
            "release check: a customer-service text was abandoned mid-send; not repeated",
            extra=_where(send.component_appid, send.authorizer_appid, send.key),
        )
        return ReleaseSendStatus.UNKNOWN.value


def _where(component_appid: str, authorizer_appid: str, key: str) -> dict[str, str]:
    return {
        "component_appid": component_appid,
        "authorizer_appid": authorizer_appid,
        "send": key[:16],
    }
