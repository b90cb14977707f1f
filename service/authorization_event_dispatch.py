"""The authorization events URL's (授权事件接收URL) pushes: open each, hand it to the part
of the core that owns it, record it in the inbox and deliver it (protocol §1.5, §2).

Every check happens before anything is stored: a push that fails one is refused with a
4xx and a reason, and changes nothing. Every push but the ticket is then delivered to the
provider's services by its route (``service.delivery``), after the gateway has applied it,
so a subscriber of an ``authorized`` notice sees the authorizer as it now stands.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from service.authorization_pushes import AuthorizationPushes
from service.code_exchange import Outcome
from service.delivery import Delivery, DeliveryFailed
from service.envelopes import notice_envelope
from service.push_verification import PushRejected, open_envelope
from service.routes import Pushed
from service.store.records import AuthorizationStore, AuthorizerRecord, InboxEntry, StoreError
from service.tickets import TicketKeeper
from service.wechat.crypto import MessageCrypto
from service.wechat.messages import (
    AuthorizationGranted,
    ComponentVerifyTicket,
    MessageError,
    Notice,
    PushMessage,
    Unauthorized,
    UnknownInfo,
    parse_message,
)

log = logging.getLogger(__name__)

INBOX_TTL = 30 * 86400  # Firestore's TTL policy deletes inbox entries after this
# Outcomes a redelivery of the same push should try again.
RETRYABLE = (Outcome.ERROR, Outcome.IN_PROGRESS, Outcome.CONFIRMING)


@dataclass(frozen=True)
class Opened:
    message: PushMessage
    xml: str  # decrypted
    used_previous_key: bool


def open_push(
    crypto: MessageCrypto,
    query: Mapping[str, str],
    body: bytes,
    now: float,
    max_clock_skew: float,
    max_bytes: int,
) -> Opened:
    """Verify the signatures and the timestamp, decrypt, parse and check the AppId."""
    opened = open_envelope(crypto, query, body, now, max_clock_skew, max_bytes)
    if opened.envelope.app_id is not None and opened.envelope.app_id != crypto.appid:
        raise PushRejected(400, "envelope AppId does not match this component")
    try:
        message = parse_message(opened.decrypted.message, max_bytes)
    except MessageError as exc:
        raise PushRejected(400, f"bad message: {exc}") from None
    if message.app_id != crypto.appid:
        raise PushRejected(400, "message AppId does not match this component")
    return Opened(message, opened.decrypted.message, opened.decrypted.used_previous_key)


class PushDispatcher:
    """Hands each opened push to the part of the core that owns it, then to its route.

    Every push but the ticket goes through an idempotent inbox: a push already handled to
    a final outcome and delivered is a duplicate and changes nothing; one handled but not
    delivered (Pub/Sub was away) is delivered on WeChat's next try, not handled again.
    Unknown InfoTypes are recorded and delivered too.
    """

    def __init__(
        self,
        tickets: TicketKeeper,
        authorizations: AuthorizationPushes,
        store: AuthorizationStore,
        delivery: Delivery,
        inbox_ttl: float = INBOX_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tickets = tickets
        self.authorizations = authorizations
        self.store = store
        self.delivery = delivery
        self.inbox_ttl = inbox_ttl
        self.clock = clock

    def dispatch(self, opened: Opened, received_at: float) -> str:
        """The outcome; raises ``DeliveryFailed`` (after recording the outcome) when the
        push could not be delivered, so that it is not answered ``success``."""
        message = opened.message
        if isinstance(message, ComponentVerifyTicket):
            # Tickets are idempotent by themselves (newer wins) and come every 10 minutes.
            return "stored" if self.tickets.accept(message) else "ignored"
        key = inbox_key(message)
        seen = self.store.get_inbox_entry(message.app_id, key)
        where = {"component_appid": message.app_id, "info_type": message.info_type}
        if seen is not None and seen.final and seen.delivered:
            log.info("duplicate push ignored", extra=where)
            return "duplicate"
        if seen is not None and seen.final:
            outcome, final = seen.outcome, True  # handled; only the delivery failed
        else:
            outcome, final = self._handle(message)
        failure = self._deliver(opened, received_at, key)
        now = self.clock()
        self.store.put_inbox_entry(
            InboxEntry(
                component_appid=message.app_id,
                key=key,
                info_type=message.info_type,
                create_time=message.create_time,
                received_at=now,
                outcome=outcome,
                final=final,
                delivered=failure is None,
                authorizer_appid=getattr(message, "authorizer_appid", None),
                fields=dict(message.fields) if isinstance(message, Notice | UnknownInfo) else None,
                expire_at=datetime.fromtimestamp(now + self.inbox_ttl, UTC),
            )
        )
        if failure is not None:
            raise failure
        return outcome

    def _deliver(self, opened: Opened, received_at: float, key: str) -> DeliveryFailed | None:
        message = opened.message
        if not self.delivery.routes:  # no route could take it: no envelope, no read
            return None
        try:
            authorizer = self._authorizer(message)
        except StoreError as exc:
            # The envelope would lack the result: deliver it on WeChat's next try.
            return DeliveryFailed(f"cannot read the authorizer: {exc}")
        envelope = notice_envelope(message, opened.xml, received_at, key, authorizer)
        pushed = Pushed(
            source="events",
            authorizer_appid=envelope["authorizer_appid"],
            account_type=envelope["account_type"],
            msg_type=None,
            event=None,
            info_type=message.info_type,
        )
        try:
            delivered = self.delivery.deliver(pushed, envelope)
        except DeliveryFailed as exc:
            return exc
        log.info(
            "push delivered",
            extra={
                "component_appid": message.app_id,
                "info_type": message.info_type,
                "delivered": delivered.kind,
                "route": delivered.route,
                "dedup_key": key,
            },
        )
        return None

    def _authorizer(self, message: PushMessage) -> AuthorizerRecord | None:
        appid = getattr(message, "authorizer_appid", None)
        if not isinstance(appid, str):
            return None
        return self.store.get_authorizer(message.app_id, appid)

    def _handle(self, message: PushMessage) -> tuple[str, bool]:
        """The outcome, and whether it is final (a redelivery would change nothing)."""
        if isinstance(message, AuthorizationGranted):
            result = self.authorizations.on_granted(message)
            return result.outcome.value, result.outcome not in RETRYABLE
        if isinstance(message, Unauthorized):
            return self.authorizations.on_unauthorized(message).value, True
        if isinstance(message, Notice):
            # Recorded whole in the inbox and delivered without their codes (a fast
            # registration's auth_code), which are never logged.
            log.info(
                "notice recorded",
                extra={
                    "component_appid": message.app_id,
                    "info_type": message.info_type,
                    "about": message.description,
                },
            )
            return "recorded", True
        log.warning(
            "push of an unknown InfoType recorded",
            extra={"component_appid": message.app_id, "info_type": message.info_type},
        )
        return "recorded_unknown", True


def inbox_key(message: PushMessage) -> str:
    """Equal for equal messages: a hash of every field of the decrypted push."""
    canonical = json.dumps(dataclasses.asdict(message), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
