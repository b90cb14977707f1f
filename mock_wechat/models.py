"""The mock's state and its rules, with no HTTP in it (moto's split: this is the backend).

One ``MockWeChat`` object owns every record (components, tickets, component tokens,
fault rules, the call log and the push log) behind one re-entrant lock, and hands that
lock to its parts: ``accounts`` (merchant accounts, ``merchant_accounts``) and ``authorizations``
(pre-auth codes, authorization pages, authorizations and authorizer tokens,
``authorization``), and the parts the other APIs need: daily ``quotas``, ``open_accounts``
and the custom-message ``outbox``. Its methods take typed values and raise
``MockApiError`` with WeChat's errcode when a rule refuses; they never see a path, a
request body or an HTTP status. The HTTP side (``api_dispatch``, ``api_handlers``) reads
requests, calls these methods inside ``atomic()`` and shapes the answers. Lifetimes follow
protocol §5 and are measured on the mock ``Clock``, so tests can jump hours ahead.
"""

from __future__ import annotations

import copy
import dataclasses
import hmac
import logging
import threading
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from mock_wechat import errcodes as ec
from mock_wechat.authorization import PRE_AUTH_CODE_TTL, Authorizations, PreAuthCode
from mock_wechat.clock import Clock
from mock_wechat.config import ComponentConfig, ComponentPatch
from mock_wechat.deliveries import Deliveries, Delivery, MessageRefused
from mock_wechat.errcodes import MockApiError
from mock_wechat.faults import FaultBook, FaultRule
from mock_wechat.grants import Grant, live_token, new_access_token, random_token
from mock_wechat.merchant_accounts import AccountBook
from mock_wechat.open_accounts import OpenAccounts
from mock_wechat.outbox import Outbox
from mock_wechat.protocol import AccountKind
from mock_wechat.pushlog import PendingPush, PushLog, PushRecord
from mock_wechat.quotas import Quotas
from mock_wechat.user_messages import UserMessage, build_message

__all__ = [
    "CallRecord",
    "Clock",
    "Component",
    "ComponentToken",
    "FaultRule",
    "MockApiError",
    "MessageTarget",
    "MockWeChat",
    "PRE_AUTH_CODE_TTL",
    "PendingPush",
    "PreAuthCode",
    "PushRecord",
    "PushTarget",
    "Ticket",
    "UnknownComponentError",
]

log = logging.getLogger(__name__)

TICKET_TTL = 12 * 3600
COMPONENT_TOKEN_TTL = 7200
SUPERSEDED_GRACE = 300  # an old component token keeps working this long after a new one

INFO_TYPE_TICKET = "component_verify_ticket"


class UnknownComponentError(LookupError):
    def __init__(self, appid: str) -> None:
        self.appid = appid
        super().__init__(f"unknown component {appid!r}")


@dataclass
class Component:
    config: ComponentConfig
    registered_at: float
    next_push_at: float | None  # next automatic ticket push (mock time); None when off

    @property
    def appid(self) -> str:
        return self.config.appid

    def public(self) -> dict[str, Any]:
        """What the control plane shows: everything but the secret, token and AES key."""
        c = self.config
        return {
            "appid": c.appid,
            "event_url": c.event_url,
            "message_url": c.message_url,
            "auth_domain": c.auth_domain,
            "ticket_interval": c.ticket_interval,
            "auto_push": c.auto_push,
            "push_retries": c.push_retries,
            "auth_push": c.auth_push,
            "rotate_refresh_tokens": c.rotate_refresh_tokens,
            "authorizer_token_latency": c.authorizer_token_latency,
            "registered_at": self.registered_at,
            "next_push_at": self.next_push_at,
        }


@dataclass(frozen=True)
class Ticket:
    value: str = field(repr=False)
    component: str
    issued_at: float

    @property
    def expires_at(self) -> float:
        return self.issued_at + TICKET_TTL


@dataclass
class ComponentToken:
    value: str = field(repr=False)
    component: str
    issued_at: float
    expires_at: float
    superseded_at: float | None = None


@dataclass(frozen=True)
class CallRecord:
    api: str
    appid: str | None
    errcode: int | None  # None when no JSON answer was given (dropped, bare HTTP status)
    http_status: int | None  # None when the connection was dropped
    time: float
    fault: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class PushTarget:
    """What the pusher needs to seal and send one message, copied out of the lock."""

    appid: str
    token: str = field(repr=False)
    encoding_aes_key: str = field(repr=False)
    event_url: str
    retries: int
    generation: int  # the state's reset generation; a push outliving a reset is not logged


@dataclass(frozen=True)
class MessageTarget:
    """What the deliverer needs to send one message to a 消息与事件接收URL, copied out of
    the lock: the component's crypto, the URL, and who the reply must be addressed to."""

    delivery_id: int
    component_appid: str
    token: str = field(repr=False)
    encoding_aes_key: str = field(repr=False)
    url: str  # the component's message_url, $APPID$ replaced
    user_name: str  # the account's gh_ id: ToUserName of the message
    openid: str  # FromUserName of the message
    message: str = field(repr=False)  # the decrypted XML


def _same_secret(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


class MockWeChat:
    """All mock state. Every public method is thread-safe."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self._lock = threading.RLock()
        self._generation = 0
        self._push_log = PushLog()
        self.accounts = AccountBook(self._lock, self.clock)
        self.authorizations = Authorizations(
            self._lock, self.clock, self.accounts, self._push_log, self.component_config
        )
        self.quotas = Quotas(self._lock, self.clock)
        self.open_accounts = OpenAccounts(self._lock, self.clock)
        self.outbox = Outbox(self._lock, self.clock)
        self.deliveries = Deliveries(self._lock, self.clock)
        self._clear()

    def _clear(self) -> None:
        self._components: dict[str, Component] = {}
        self._tickets: dict[str, Ticket] = {}
        self._tokens: dict[str, ComponentToken] = {}
        self._current_token: dict[str, str] = {}  # component appid -> its newest token value
        self._faults = FaultBook()
        self._calls: list[CallRecord] = []
        self._push_log.clear()
        self.accounts.clear()
        self.authorizations.clear()
        self.quotas.clear()
        self.open_accounts.clear()
        self.outbox.clear()
        self.deliveries.clear()

    def now(self) -> float:
        return self.clock.now()

    def atomic(self) -> AbstractContextManager[bool]:
        """Hold the state while several steps run as one (an API call's caller check,
        quota and answer); re-entrant, so the methods called inside take it again."""
        return self._lock

    # ----- control: clock and reset -------------------------------------------------

    def advance_clock(self, seconds: float) -> float:
        with self._lock:
            now = self.clock.advance(seconds)
        log.info("clock advanced", extra={"seconds": seconds, "offset": self.clock.offset})
        return now

    def reset(self) -> None:
        """Start over: no components, accounts, credentials, logs or faults; clock offset 0."""
        with self._lock:
            self._generation += 1
            self._clear()
            self.clock.reset()
        log.info("state reset")

    # ----- control: component registry ----------------------------------------------

    def register_component(self, config: ComponentConfig) -> dict[str, Any]:
        """Register, or replace the settings of, a component.

        Replacing keeps the tickets and tokens already issued to that appid: they were
        issued by "WeChat" and stay valid by their own lifetimes.
        """
        with self._lock:
            now = self.now()
            component = Component(
                config=config,
                registered_at=now,
                next_push_at=now + config.ticket_interval if config.auto_push else None,
            )
            self._components[config.appid] = component
            public = component.public()
        log.info(
            "component registered",
            extra={"appid": config.appid, "event_url": config.event_url},
        )
        return public

    def update_component(self, appid: str, patch: ComponentPatch) -> dict[str, Any]:
        with self._lock:
            component = self._component(appid)
            old = component.config
            changes = {k: v for k, v in dataclasses.asdict(patch).items() if v is not None}
            new = dataclasses.replace(old, **changes)
            component.config = new
            if not new.auto_push:
                component.next_push_at = None
            elif not old.auto_push or new.ticket_interval != old.ticket_interval:
                component.next_push_at = self.now() + new.ticket_interval
            public = component.public()
        log.info("component updated", extra={"appid": appid, "fields": sorted(changes)})
        return public

    def list_components(self) -> list[dict[str, Any]]:
        with self._lock:
            return [c.public() for c in self._components.values()]

    def get_component(self, appid: str) -> dict[str, Any]:
        with self._lock:
            return self._component(appid).public()

    def seed_authorizers(self, appid: str, kind: AccountKind, count: int) -> list[Grant]:
        """``Authorizations.seed`` for a registered component (else UnknownComponentError)."""
        with self._lock:
            self._component(appid)
            return self.authorizations.seed(appid, kind, count)

    def component_config(self, appid: str) -> ComponentConfig | None:
        """A registered component's settings, or None."""
        with self._lock:
            component = self._components.get(appid)
            return component.config if component else None

    def _component(self, appid: str) -> Component:
        component = self._components.get(appid)
        if component is None:
            raise UnknownComponentError(appid)
        return component

    # ----- tickets and pushes -------------------------------------------------------

    def issue_ticket(self, appid: str) -> Ticket:
        """A new component_verify_ticket, valid 12 h of mock time (protocol §2.1)."""
        with self._lock:
            self._component(appid)
            ticket = Ticket(
                value="ticket@@@" + random_token(64), component=appid, issued_at=self.now()
            )
            self._tickets[ticket.value] = ticket
            return ticket

    def latest_ticket(self, appid: str) -> Ticket | None:
        with self._lock:
            mine = [t for t in self._tickets.values() if t.component == appid]
            return mine[-1] if mine else None

    def take_due_ticket_pushes(self) -> list[str]:
        """Appids whose automatic ticket push is due now; reschedules each of them.

        The cadence is kept (next = due + interval) unless the clock jumped past the next
        slot too, in which case one push is made and the schedule restarts from now.
        """
        due: list[str] = []
        with self._lock:
            now = self.now()
            for component in self._components.values():
                at = component.next_push_at
                if not component.config.auto_push or at is None or now < at:
                    continue
                due.append(component.appid)
                interval = component.config.ticket_interval
                component.next_push_at = at + interval if at + interval > now else now + interval
        return due

    def push_target(self, appid: str) -> PushTarget:
        with self._lock:
            c = self._component(appid).config
            return PushTarget(
                appid=c.appid,
                token=c.token,
                encoding_aes_key=c.encoding_aes_key,
                event_url=c.event_url,
                retries=c.push_retries,
                generation=self._generation,
            )

    def record_push(
        self,
        target: PushTarget,
        info_type: str,
        http_status: int | None,
        delivered: bool,
        error: str | None,
        message: str = "",
    ) -> None:
        with self._lock:
            if target.generation != self._generation:
                return  # started before a reset: it belongs to a world that is gone
            self._push_log.append(
                PushRecord(
                    appid=target.appid,
                    info_type=info_type,
                    url=target.event_url,
                    http_status=http_status,
                    delivered=delivered,
                    error=error,
                    time=self.now(),
                    message=message,
                )
            )
        log.info(
            "push attempt",
            extra={
                "appid": target.appid,
                "info_type": info_type,
                "http_status": http_status,
                "delivered": delivered,
                "error": error,
            },
        )

    def issued_credentials(self) -> dict[str, list[str]]:
        """Every credential the mock has issued since the last reset, by kind, so a test
        can look for each of them where none may appear (a log)."""
        with self._lock:
            return {
                "tickets": list(self._tickets),
                "component_tokens": list(self._tokens),
                **self.authorizations.issued(),
            }

    def pushes(self) -> list[dict[str, Any]]:
        with self._lock:
            return [p.to_dict() for p in self._push_log.records()]

    def push_entry(self, index: int) -> PushRecord:
        """The push log's ``index``-th entry (0-based); IndexError when there is none."""
        with self._lock:
            return self._push_log.entry(index)

    def held_pushes(self) -> list[PendingPush]:
        with self._lock:
            return self._push_log.held()

    def take_held_pushes(self) -> list[PendingPush]:
        """Every held authorization push, oldest first, for the caller to deliver."""
        with self._lock:
            return self._push_log.take_held()

    # ----- messages to the 消息与事件接收URL -----------------------------------------

    def open_delivery(self, authorizer_appid: str, request: UserMessage) -> MessageTarget:
        """Check and record a message to ``authorizer_appid``; the caller then sends it.

        UnknownAccountError or UnknownComponentError (404); MessageRefused (409) when the
        account has not authorized the component or the component has no message_url.
        """
        with self._lock:
            account = self.accounts.get(authorizer_appid)
            component = self._component(request.component_appid).config
            grant = self.authorizations.grants.find(component.appid, authorizer_appid)
            if grant is None or not grant.active:
                raise MessageRefused(
                    "authorization",
                    f"account {authorizer_appid} has not authorized {component.appid}",
                )
            url = component.message_url_for(authorizer_appid)
            if url is None:
                raise MessageRefused("message_url", "component has no message_url")
            built = build_message(request, authorizer_appid, account.user_name, self.now())
            delivery_id = self.deliveries.open(
                Delivery(
                    id=0,
                    component_appid=component.appid,
                    authorizer_appid=authorizer_appid,
                    openid=built.openid,
                    msg_type=request.msg_type,
                    event=request.event,
                    msg_id=built.msg_id,
                    create_time=built.create_time,
                    message=built.xml,
                    url=url,
                    user_originated=request.user_originated,
                )
            )
            return MessageTarget(
                delivery_id=delivery_id,
                component_appid=component.appid,
                token=component.token,
                encoding_aes_key=component.encoding_aes_key,
                url=url,
                user_name=account.user_name,
                openid=built.openid,
                message=built.xml,
            )

    def account_messages(self, authorizer_appid: str) -> list[dict[str, Any]]:
        """The deliveries to one account, oldest first (UnknownAccountError if unknown)."""
        with self._lock:
            self.accounts.get(authorizer_appid)
            return self.deliveries.of_account(authorizer_appid)

    # ----- fault rules --------------------------------------------------------------

    def set_faults(self, rules: Iterable[FaultRule]) -> None:
        with self._lock:
            self._faults.replace(rules)
            count = len(self._faults.rules())
        log.info("fault rules set", extra={"rules": count})

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
        log.info("fault rules cleared")

    def list_faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_dict() for rule in self._faults.rules()]

    def take_fault(self, api: str) -> FaultRule | None:
        """The rule (first-wins) that applies to this call of ``api``, counted down."""
        with self._lock:
            return self._faults.take(api)

    # ----- call log -----------------------------------------------------------------

    def record_call(
        self, api: str, appid: str | None, errcode: int | None, http_status: int | None, fault: bool
    ) -> None:
        """Log one API call as the HTTP side answered it (None: no errcode, no status)."""
        with self._lock:
            record = CallRecord(api, appid, errcode, http_status, self.now(), fault)
            self._calls.append(record)
        log.info("api call", extra=record.to_dict())

    def calls(self, api: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [c.to_dict() for c in self._calls if api is None or c.api == api]

    # ----- the rules of the component's own APIs (protocol §3.1-§3.3) ---------------

    def api_component(self, appid: str) -> ComponentConfig:
        """The registered component an API call names, or 40013."""
        config = self.component_config(appid)
        if config is None:
            raise MockApiError(ec.INVALID_APPID)
        return config

    def check_secret(self, appid: str, secret: str) -> None:
        """40013 for an unknown component, 40125 for a wrong secret."""
        if not _same_secret(self.api_component(appid).secret, secret):
            raise MockApiError(ec.INVALID_APPSECRET)

    def issue_component_token(self, appid: str, ticket: str | None) -> ComponentToken:
        """A new component token for a live ticket of ``appid`` (61006 unknown or another
        component's, 61005 expired); the previous token stays valid for its grace."""
        with self._lock:
            component = self._api_component_record(appid)
            found = self._tickets.get(ticket or "")
            if found is None or found.component != component.appid:
                raise MockApiError(ec.TICKET_INVALID)
            now = self.now()
            if now >= found.expires_at:
                raise MockApiError(ec.TICKET_EXPIRED)
            previous = self._tokens.get(self._current_token.get(component.appid, ""))
            if previous is not None and previous.superseded_at is None:
                previous.superseded_at = now
            token = ComponentToken(
                value=new_access_token(),
                component=component.appid,
                issued_at=now,
                expires_at=now + COMPONENT_TOKEN_TTL,
            )
            self._tokens[token.value] = token
            self._current_token[component.appid] = token.value
            return copy.copy(token)

    def start_ticket_pushes(self, appid: str) -> bool:
        """Turn automatic pushes on and make one due now (the pusher sends it); whether
        they were on already."""
        with self._lock:
            component = self._api_component_record(appid)
            was_on = component.config.auto_push
            if not was_on:
                component.config = dataclasses.replace(component.config, auto_push=True)
            component.next_push_at = self.now()
            return was_on

    def pre_auth_code(self, value: str) -> PreAuthCode | None:
        return self.authorizations.pre_auth_code(value)

    def check_authorizer_token(self, value: str | None) -> str:
        """The authorizer appid an authorizer access token acts for (41001/40001/42001)."""
        return self.authorizations.check_authorizer_token(value)

    def is_component_token(self, value: str | None) -> bool:
        """Whether ``value`` was ever issued as a component token (live or not)."""
        with self._lock:
            return value is not None and value in self._tokens

    def check_component_token(
        self, value: str | None, component_appid: str | None
    ) -> ComponentToken:
        """The token check every token API shares (protocol §6, APIs): 41001 missing,
        40001 unknown, another component's or superseded past its grace, 42001 expired."""
        with self._lock:
            token = live_token(value, self._tokens, self.now(), SUPERSEDED_GRACE)
            if component_appid is not None and token.component != component_appid:
                raise MockApiError(ec.INVALID_CREDENTIAL)
            return copy.copy(token)

    def _api_component_record(self, appid: str) -> Component:
        component = self._components.get(appid)
        if component is None:
            raise MockApiError(ec.INVALID_APPID)
        return component
