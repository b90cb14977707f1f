"""The console's push log: the recent pushes to both URLs and what the gateway did with them.

What is kept, and what it costs (an ordinary message must not cost a write):

- **Events URL** (authorized, updateauthorized, unauthorized and the other notices): one
  document each, beside the inbox entry, kept 30 days. They are rare (a merchant's
  authorization, a notice), and the push already costs an inbox read and write.
- **Tickets** (every 10 minutes per component): not logged; the newest is on the component
  record, which the overview shows.
- **Messages** (the bulk): no write each. Each process keeps the last ``PUSH_LOG_MESSAGES``
  in memory and writes them as ONE document at most every ``PUSH_LOG_FLUSH_INTERVAL``
  (60 s), after the answer of a request that comes once the interval is up (Cloud Run gives
  CPU only during requests: no timer thread). Kept 3 days. At most 1,440 writes a day per
  process whatever the volume; past the bound within one interval, the oldest are dropped
  (counted). Lost: what a process held when it stopped before its next flush.

Bodies are stored decrypted, with every credential masked (``service.redaction``: codes,
tickets, tokens, configured secrets) and cut to a bounded size. Duplicates WeChat sends
again are not logged again (events: same key; messages: the same retry is one entry per try).

Replay builds the envelope again (``service.envelopes``) and hands it to the delivery
(``service.delivery``, MESSAGE_ROUTES), never to the authorization logic: a replayed
``authorized`` exchanges no code. A reply route is not replayed: its passive reply answers
a user who is waiting, and nobody waits for a replay.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from service.authorization_event_dispatch import inbox_key
from service.console_store import ConsoleStore, PushLogBatch, PushLogEvent
from service.delivery import Delivery, DeliveryFailed
from service.envelopes import message_envelope, notice_envelope
from service.redaction import redact
from service.routes import Pushed, first_match
from service.store.records import AuthorizationStore, StoreError
from service.wechat.messages import (
    AccountMessage,
    ComponentVerifyTicket,
    MessageError,
    PushMessage,
    parse_account_message,
    parse_message,
)

log = logging.getLogger(__name__)

EVENT_TTL = 30 * 86400
BATCH_TTL = 3 * 86400
# A body is cut to this many UTF-8 bytes: a batch of 500 stays far below Firestore's 1 MiB.
MAX_BODY_BYTES = 1500
TRUNCATED = "…[cut]"
# What the page looks through: bounded reads, whatever the volume.
RECENT_EVENTS = 200  # per component
RECENT_BATCHES = 60  # about an hour of one busy process's messages


@dataclass(frozen=True)
class LoggedPush:
    """One push as the page shows it (from either URL)."""

    ref: str  # e:<component>:<key> or m:<batch>:<index>; p:<index> while in memory
    source: str  # "events" or "messages"
    component_appid: str
    authorizer_appid: str | None
    info_type: str | None
    msg_type: str | None
    event: str | None
    received_at: float
    xml: str
    truncated: bool
    outcome: str
    route: str | None
    stored: bool  # False: still in this process's memory, not written yet

    @property
    def kind(self) -> str:
        return self.info_type or self.event or self.msg_type or "?"


def mask_body(xml: str, limit: int = MAX_BODY_BYTES) -> tuple[str, bool]:
    """The body with credentials masked, cut to ``limit`` bytes; and whether it was cut."""
    masked = redact(xml)
    data = masked.encode()
    if len(data) <= limit:
        return masked, False
    return data[:limit].decode(errors="ignore") + TRUNCATED, True


def _route_name(delivery: Delivery, pushed: Pushed) -> str | None:
    route = first_match(delivery.routes, pushed)
    return route.name if route is not None else None


class PushLog:
    def __init__(
        self,
        store: ConsoleStore,
        delivery: Delivery,
        capacity: int,
        flush_interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.delivery = delivery
        self.capacity = capacity
        self.flush_interval = flush_interval
        self.clock = clock
        self._lock = threading.Lock()
        self._pending: deque[dict[str, Any]] = deque()
        self._dropped = 0
        self._last_flush = clock()  # the first write comes an interval after start
        self._sequence = 0
        self._pid = 0
        self._process = ""

    # ----- recording (the hooks in the two push routes) --------------------------------

    def event(self, message: PushMessage, xml: str, outcome: str, received_at: float) -> None:
        """An events-URL push, once handled: one write. Never raises (the push is done)."""
        if isinstance(message, ComponentVerifyTicket) or outcome == "duplicate":
            return
        body, cut = mask_body(xml)
        authorizer = getattr(message, "authorizer_appid", None)
        pushed = Pushed("events", authorizer, None, None, None, message.info_type)
        entry = PushLogEvent(
            component_appid=message.app_id,
            # The inbox entry's key, which is also the envelope's dedup_key.
            key=inbox_key(message),
            info_type=message.info_type,
            received_at=received_at,
            xml=body,
            outcome=outcome,
            authorizer_appid=authorizer if isinstance(authorizer, str) else None,
            create_time=message.create_time,
            route=_route_name(self.delivery, pushed),
            truncated=cut,
            expire_at=datetime.fromtimestamp(received_at + EVENT_TTL, UTC),
        )
        try:
            self.store.put_event(entry)
        except StoreError as exc:
            log.warning("push log: event not written", extra={"error": str(exc)})

    def message(
        self,
        component_appid: str,
        authorizer_appid: str,
        message: AccountMessage,
        xml: str,
        outcome: str,
        route: str | None,
        received_at: float,
    ) -> Callable[[], object]:
        """An answered message, kept in memory; returns the flush to run after the answer."""
        body, cut = mask_body(xml)
        entry = {
            "component_appid": component_appid,
            "authorizer_appid": authorizer_appid,
            "msg_type": message.msg_type,
            "event": message.event,
            "received_at": received_at,
            "xml": body,
            "truncated": cut,
            "outcome": outcome,
            "route": route,
        }
        with self._lock:
            if len(self._pending) >= self.capacity:
                self._pending.popleft()
                self._dropped += 1
            self._pending.append(entry)
        return self.flush_if_due

    def due(self) -> bool:
        with self._lock:
            return bool(self._pending) and self.clock() - self._last_flush >= self.flush_interval

    def flush_if_due(self) -> bool:
        """Write what is held as one document if the interval is up; True if written."""
        with self._lock:
            now = self.clock()
            if not self._pending or now - self._last_flush < self.flush_interval:
                return False
            entries, dropped = list(self._pending), self._dropped
            self._pending.clear()
            self._dropped = 0
            self._last_flush = now
            key = self._next_key()
        batch = PushLogBatch(
            key=key,
            process=key.rsplit("-", 1)[0],
            flushed_at=now,
            first_at=min(e["received_at"] for e in entries),
            last_at=max(e["received_at"] for e in entries),
            entries=tuple(entries),
            dropped=dropped,
            expire_at=datetime.fromtimestamp(now + BATCH_TTL, UTC),
        )
        try:
            self.store.put_batch(batch)
        except StoreError as exc:
            # Lost, not retried: a log must not grow without bound while Firestore is away.
            log.warning(
                "push log: messages not written",
                extra={"error": str(exc), "messages": len(entries)},
            )
            return False
        return True

    def _next_key(self) -> str:
        if self._pid != os.getpid():  # a forked worker is a process of its own
            self._pid = os.getpid()
            host = socket.gethostname().split(".")[0][:24]
            self._process = f"{host}.{self._pid}.{secrets.token_hex(3)}"
            self._sequence = 0
        self._sequence += 1
        return f"{self._process}-{self._sequence}"

    # ----- reading (the page) -------------------------------------------------------

    def recent(self, components: list[str], since: float) -> list[LoggedPush]:
        """Every push logged since ``since``, newest first: the stored events and message
        batches (bounded reads) and this process's messages not written yet."""
        found: list[LoggedPush] = []
        for component in components:
            for event in self.store.recent_events(component, since, RECENT_EVENTS):
                found.append(_from_event(event))
        for batch in self.store.recent_batches(since, RECENT_BATCHES):
            for index, entry in enumerate(batch.entries):
                found.append(_from_entry(entry, f"m:{batch.key}:{index}", stored=True))
        with self._lock:
            pending = list(self._pending)
        for index, entry in enumerate(pending):
            found.append(_from_entry(entry, f"p:{index}", stored=False))
        return sorted(
            (p for p in found if p.received_at >= since and p.component_appid in components),
            key=lambda p: p.received_at,
            reverse=True,
        )

    def find(self, ref: str) -> LoggedPush | None:
        kind, _, rest = ref.partition(":")
        if kind == "e":
            component, _, key = rest.partition(":")
            event = self.store.get_event(component, key) if component and key else None
            return _from_event(event) if event is not None else None
        if kind == "m":
            batch_key, _, index_text = rest.rpartition(":")
            if not index_text.isdigit() or not batch_key:
                return None
            batch = self.store.get_batch(batch_key)
            index = int(index_text)
            if batch is None or index >= len(batch.entries):
                return None
            return _from_entry(batch.entries[index], ref, stored=True)
        return None


def _from_event(event: PushLogEvent) -> LoggedPush:
    return LoggedPush(
        ref=f"e:{event.component_appid}:{event.key}",
        source="events",
        component_appid=event.component_appid,
        authorizer_appid=event.authorizer_appid,
        info_type=event.info_type,
        msg_type=None,
        event=None,
        received_at=event.received_at,
        xml=event.xml,
        truncated=event.truncated,
        outcome=event.outcome,
        route=event.route,
        stored=True,
    )


def _from_entry(entry: dict[str, Any], ref: str, stored: bool) -> LoggedPush:
    return LoggedPush(
        ref=ref,
        source="messages",
        component_appid=str(entry.get("component_appid", "")),
        authorizer_appid=entry.get("authorizer_appid"),
        info_type=None,
        msg_type=entry.get("msg_type"),
        event=entry.get("event"),
        received_at=float(entry.get("received_at", 0.0)),
        xml=str(entry.get("xml", "")),
        truncated=bool(entry.get("truncated", False)),
        outcome=str(entry.get("outcome", "")),
        route=entry.get("route"),
        stored=stored,
    )


# ----- replay ------------------------------------------------------------------------


class ReplayRefused(Exception):
    """The push cannot be replayed; the text says why (shown to the operator)."""


@dataclass(frozen=True)
class Replayed:
    route: str
    message_id: str | None


def replay(
    push: LoggedPush,
    store: AuthorizationStore,
    delivery: Delivery,
    clock: Callable[[], float] = time.time,
) -> Replayed:
    """Deliver a logged push again by its route; ``ReplayRefused`` says why not."""
    if push.truncated:
        raise ReplayRefused("正文过长，日志只保存了一部分，无法重放。")
    try:
        if push.source == "events":
            envelope, pushed = _notice(push, store)
        else:
            envelope, pushed = _message(push, store)
    except MessageError as exc:
        raise ReplayRefused(f"日志中的正文无法解析：{exc}") from None
    route = first_match(delivery.routes, pushed)
    if route is None:
        raise ReplayRefused("没有匹配的路由（MESSAGE_ROUTES）：这条推送无处可投递。")
    if route.reply is not None:
        raise ReplayRefused(
            f"路由 {route.name} 是 reply 路由：被动回复只能回答正在等待的用户，重放时没有用户在等，"
            "所以不重放。"
        )
    envelope["replayed_at"] = datetime.fromtimestamp(clock(), UTC).isoformat()
    try:
        delivered = delivery.deliver(pushed, envelope)
    except DeliveryFailed as exc:
        raise ReplayRefused(f"投递失败：{exc}") from None
    return Replayed(route.name, delivered.message_id)


def _notice(push: LoggedPush, store: AuthorizationStore) -> tuple[dict[str, Any], Pushed]:
    message = parse_message(push.xml)
    appid = getattr(message, "authorizer_appid", None)
    authorizer = store.get_authorizer(message.app_id, appid) if isinstance(appid, str) else None
    key = push.ref.rsplit(":", 1)[-1]
    # The envelope as first delivered (credentials left out), its result as it stands now.
    envelope = notice_envelope(message, push.xml, push.received_at, key, authorizer)
    pushed = Pushed(
        "events",
        envelope["authorizer_appid"],
        envelope["account_type"],
        None,
        None,
        message.info_type,
    )
    return envelope, pushed


def _message(push: LoggedPush, store: AuthorizationStore) -> tuple[dict[str, Any], Pushed]:
    message = parse_account_message(push.xml)
    appid = push.authorizer_appid or ""
    record = store.get_authorizer(push.component_appid, appid) if appid else None
    account_type = record.account_type if record is not None else None
    envelope = message_envelope(
        push.component_appid, appid, account_type, message, push.xml, push.received_at
    )
    pushed = Pushed("messages", appid, account_type, message.msg_type, message.event, None)
    return envelope, pushed
