"""What the mock sent to 消息与事件接收URLs: deliveries, tries in flight, service windows.

The delivery records, the tries in flight, and each user's customer-service window. No
HTTP here: the deliverer (``message_pusher``) reports each step.

A delivery is one message to one account, tried up to three times. While a try waits for
the service's answer, the delivery is *in flight* for that (account, openid): a custom
message that reaches the mock then was sent before the reply (``before_reply``). A user's
message opens the customer-service window at the moment it is first sent, whatever the
service answers: ``/cgi-bin/message/custom/send`` to that user from that account is
refused with 45015 once 48 h of mock time have passed since the last one.

``Deliveries`` takes the state's one lock; its condition (on that lock) wakes whoever
waits for a try to come back.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Any

from mock_wechat import errcodes as ec
from mock_wechat.clock import Clock
from mock_wechat.errcodes import MockApiError
from mock_wechat.state_part import StatePart

CUSTOMER_SERVICE_WINDOW = 48 * 3600  # seconds after a user's message (messages doc §3)


class MessageRefused(Exception):
    """A message the mock cannot deliver as asked (answered 409); never carries secrets."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


@dataclass(frozen=True)
class Try:
    http_status: int | None  # None when no HTTP answer was read
    error: str | None  # why the try failed; None when it got HTTP 200 in time
    seconds: float


@dataclass
class Delivery:
    id: int
    component_appid: str
    authorizer_appid: str
    openid: str
    msg_type: str
    event: str | None
    msg_id: str | None
    create_time: int
    message: str = field(repr=False)  # the decrypted XML
    url: str
    user_originated: bool
    tries: list[Try] = field(default_factory=list)
    outcome: str | None = None  # None while the delivery is under way
    reason: str | None = None
    reply: dict[str, str] | None = None
    reply_xml: str | None = field(default=None, repr=False)
    user_sees: str | None = None
    sent_at: float | None = None  # mock time of the first try
    answered_at: float | None = None  # mock time the final answer was read

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        del data["user_originated"]
        return data


class Deliveries(StatePart):
    """Delivery records, tries in flight and customer-service windows; thread-safe."""

    def __init__(self, lock: threading.RLock, clock: Clock) -> None:
        self._changed = threading.Condition(lock)
        super().__init__(lock, clock)

    def clear(self) -> None:
        with self._lock:
            self._records: dict[int, Delivery] = {}
            self._next_id = 1
            self._in_flight: dict[tuple[str, str], int] = {}  # (authorizer, openid) -> tries
            self._last_user_message: dict[tuple[str, str], float] = {}
            self._changed.notify_all()  # a waiter's delivery belongs to a world now gone

    # ----- the deliverer's steps ------------------------------------------------------

    def open(self, delivery: Delivery) -> int:
        """Keep a new delivery record; returns its id (``delivery.id`` is replaced)."""
        with self._lock:
            delivery.id = self._next_id
            self._next_id += 1
            self._records[delivery.id] = delivery
            return delivery.id

    def begin_try(self, delivery_id: int) -> bool:
        """A try is being sent; False when the record is gone (a reset came in between)."""
        with self._lock:
            delivery = self._records.get(delivery_id)
            if delivery is None:
                return False
            now = self._clock.now()
            if delivery.sent_at is None:
                delivery.sent_at = now
                if delivery.user_originated:
                    self._last_user_message[self._user(delivery)] = now
            key = self._user(delivery)
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            return True

    def try_returned(self, delivery_id: int) -> None:
        """The try's HTTP exchange is over (answered, failed or lost): no longer in flight."""
        with self._lock:
            delivery = self._records.get(delivery_id)
            if delivery is None:
                return
            key = self._user(delivery)
            left = self._in_flight.get(key, 0) - 1
            if left > 0:
                self._in_flight[key] = left
            else:
                self._in_flight.pop(key, None)
            self._changed.notify_all()

    def record_try(self, delivery_id: int, attempt: Try) -> None:
        with self._lock:
            delivery = self._records.get(delivery_id)
            if delivery is not None:
                delivery.tries.append(attempt)

    def finish(
        self,
        delivery_id: int,
        outcome: str,
        reason: str | None,
        reply: dict[str, str] | None,
        reply_xml: str | None,
        user_sees: str | None,
    ) -> Delivery | None:
        """Record the final outcome; a copy of the record, or None if it is gone."""
        with self._lock:
            delivery = self._records.get(delivery_id)
            if delivery is None:
                return None
            delivery.outcome, delivery.reason = outcome, reason
            delivery.reply, delivery.reply_xml = reply, reply_xml
            delivery.user_sees = user_sees
            delivery.answered_at = self._clock.now()
            return copy.deepcopy(delivery)

    # ----- reading ------------------------------------------------------------------

    def of_account(self, authorizer_appid: str) -> list[dict[str, Any]]:
        with self._lock:
            return [
                d.to_dict()
                for d in self._records.values()
                if d.authorizer_appid == authorizer_appid
            ]

    # ----- the customer-service API's view --------------------------------------------

    def in_flight(self, authorizer_appid: str, openid: str) -> bool:
        with self._lock:
            return (authorizer_appid, openid) in self._in_flight

    def wait_until_answered(self, authorizer_appid: str, openid: str, timeout: float) -> bool:
        """Wait (the lock released meanwhile) until no try to this user is in flight;
        False if one still is after ``timeout`` seconds."""
        key = (authorizer_appid, openid)
        with self._changed:
            return self._changed.wait_for(lambda: key not in self._in_flight, timeout)

    def record_user_message(self, authorizer_appid: str, openid: str) -> None:
        """``openid`` wrote to the account now: the customer-service window opens."""
        with self._lock:
            self._last_user_message[(authorizer_appid, openid)] = self._clock.now()

    def check_window(self, authorizer_appid: str, openid: str) -> None:
        """45015 unless ``openid`` wrote to the account within the last 48 h (mock time)."""
        with self._lock:
            last = self._last_user_message.get((authorizer_appid, openid))
            if last is None or self._clock.now() - last > CUSTOMER_SERVICE_WINDOW:
                raise MockApiError(ec.OUT_OF_TIME_LIMIT)

    @staticmethod
    def _user(delivery: Delivery) -> tuple[str, str]:
        return (delivery.authorizer_appid, delivery.openid)
