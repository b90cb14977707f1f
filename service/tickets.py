"""The component_verify_ticket: keep the newest one, and ask WeChat for one when it is late.

WeChat pushes a ticket every 10 minutes; it stays usable for 12 hours. When the newest one
is missing or older than ``stale_after``, ``api_start_push_ticket`` restarts the pushes,
at most once per ``min_interval`` across all processes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from service.config import ComponentConfig
from service.log_events import TICKET_STALE
from service.store.records import ComponentRecord, ComponentStore
from service.wechat.client import ComponentClient
from service.wechat.errors import WeChatError
from service.wechat.messages import ComponentVerifyTicket

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TicketPolicy:
    stale_after: float = 1200.0
    min_interval: float = 60.0


class TicketKeeper:
    def __init__(
        self,
        store: ComponentStore,
        client: ComponentClient,
        components: Mapping[str, ComponentConfig],
        policy: TicketPolicy = TicketPolicy(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.client = client
        self.components = components
        self.policy = policy
        self.clock = clock

    def accept(self, message: ComponentVerifyTicket) -> bool:
        """Store the pushed ticket if it is newer than the stored one; True if stored."""
        now = self.clock()

        def newer(record: ComponentRecord) -> ComponentRecord | None:
            stored = record.ticket_create_time
            if stored is not None and message.create_time <= stored:
                return None
            return record.but(
                ticket=message.ticket,
                ticket_create_time=message.create_time,
                ticket_received_at=now,
            )

        stored = self.store.modify_component(message.app_id, newer).changed
        log.info(
            "ticket stored" if stored else "ticket ignored: not newer than the stored one",
            extra={"component_appid": message.app_id, "create_time": message.create_time},
        )
        return stored

    def is_stale(self, record: ComponentRecord) -> bool:
        received = record.ticket_received_at
        return (
            not record.ticket
            or received is None
            or self.clock() - received > self.policy.stale_after
        )

    def check(self, appid: str) -> bool:
        """The watchdog: request a push if the ticket is missing or stale. True if requested."""
        record = self.store.get_component(appid)
        if not self.is_stale(record):
            return False
        received = record.ticket_received_at
        log.warning(
            "component_verify_ticket is stale: WeChat's pushes are not arriving",
            extra={
                "event": TICKET_STALE,
                "component_appid": appid,
                "ticket_age_seconds": None if received is None else round(self.clock() - received),
            },
        )
        return self.request_push(appid)

    def request_push(self, appid: str) -> bool:
        """Call api_start_push_ticket unless some process did so within ``min_interval``."""
        now = self.clock()

        def claim(record: ComponentRecord) -> ComponentRecord | None:
            last = record.push_ticket_requested_at
            if last is not None and now - last < self.policy.min_interval:
                return None
            return record.but(push_ticket_requested_at=now)

        if not self.store.modify_component(appid, claim).changed:
            return False
        component = self.components[appid]
        try:
            answer = self.client.api_start_push_ticket(appid, component.secret)
        except WeChatError as exc:
            error = str(exc)
            log.error(
                "api_start_push_ticket failed",
                extra={"component_appid": appid, "errcode": exc.errcode, "error": error},
            )
            self.store.modify_component(
                appid, lambda r: r.but(last_error=error, last_error_at=self.clock())
            )
            return False
        log.warning(
            "asked WeChat to push a component_verify_ticket",
            extra={"component_appid": appid, "errmsg": answer},
        )
        return True
