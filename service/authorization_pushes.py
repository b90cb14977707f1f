"""What the ``authorized``, ``updateauthorized`` and ``unauthorized`` pushes do (§4, §5).

A grant push carries an authorization code: it is exchanged once, with the browser's
callback (``service.code_exchange``). An ``unauthorized`` push revokes the authorizer
(``service.authorizer_status``). A push older than the newest one applied to its
authorizer changes nothing, and a push that names no appid changes nothing either.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from service.authorizer_status import AuthorizerStatusKeeper
from service.code_exchange import MAX_CODE_LENGTH, CodeExchanger, ExchangeResult, Outcome
from service.store.records import AuthorizationStore
from service.wechat.accounts import APPID_PATTERN
from service.wechat.messages import AuthorizationGranted, Unauthorized

log = logging.getLogger(__name__)


class AuthorizationPushes:
    def __init__(
        self,
        store: AuthorizationStore,
        exchanger: CodeExchanger,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.exchanger = exchanger
        self.statuses = AuthorizerStatusKeeper(store)
        self.clock = clock

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
        return self.exchanger.exchange(push.app_id, push.authorization_code, "push", push)

    def on_unauthorized(self, push: Unauthorized) -> Outcome:
        """The merchant cancelled: delete the tokens, keep the record and its history."""
        if not APPID_PATTERN.match(push.authorizer_appid):
            return Outcome.REFUSED
        outcome = Outcome(self.statuses.revoke(push, self.clock()).value)
        revoked = outcome == Outcome.REVOKED
        (log.warning if revoked else log.info)(
            "authorizer unauthorized" if revoked else "unauthorized push ignored",
            extra={
                "component_appid": push.app_id,
                "authorizer_appid": push.authorizer_appid,
                "outcome": outcome.value,
            },
        )
        return outcome
