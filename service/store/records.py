"""The records the gateway keeps, and the store interface the core talks to.

A record is immutable; a change is a pure function from the current record to the new one
(or ``None`` for "no change"), which the store applies with compare-and-set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from service.leases import Lease

HISTORY_LIMIT = 50


class Record:
    """Serialisation shared by every record: a Firestore document is its fields.

    A field named in ``NOT_STORED`` is the store's, not the document's (``version``).
    """

    NOT_STORED: ClassVar[frozenset[str]] = frozenset({"version"})

    def to_document(self) -> dict[str, Any]:
        document = {}
        for name in _stored_fields(type(self)):
            value = getattr(self, name)
            # Firestore stores arrays from lists; tuples are how records keep them immutable.
            document[name] = list(value) if isinstance(value, tuple) else value
        return document

    @classmethod
    def from_document(cls, data: Mapping[str, Any], **keys: Any) -> Self:
        """The record in ``data`` (unknown fields ignored); ``keys`` come from the path."""
        values: dict[str, Any] = {}
        for name in _stored_fields(cls):
            if name in data:
                value = data[name]
                values[name] = tuple(value) if isinstance(value, list) else value
        values.update(keys)
        return cls(**values)

    def but(self, **changes: Any) -> Self:
        """A copy with ``changes``, as ``dataclasses.replace`` makes it, without running
        ``__init__`` again for every field (a renewal makes several such copies)."""
        unknown = changes.keys() - self.__dict__.keys()
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {min(unknown)!r}")
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__, **changes)
        return copy

    def changes_from(self, before: Self) -> dict[str, Any]:
        """The document fields whose values differ from ``before``'s: what an update of a
        document known to hold ``before`` has to send."""
        changed = {}
        for name in _stored_fields(type(self)):
            value = getattr(self, name)
            if value != getattr(before, name):
                changed[name] = list(value) if isinstance(value, tuple) else value
        return changed


_STORED_FIELDS: dict[type, tuple[str, ...]] = {}


def _stored_fields(cls: type[Record]) -> tuple[str, ...]:
    """The names of ``cls``'s fields kept in its document (computed once per class)."""
    names = _STORED_FIELDS.get(cls)
    if names is None:
        stored = (f.name for f in fields(cls) if f.name not in cls.NOT_STORED)  # type: ignore[arg-type]
        names = _STORED_FIELDS[cls] = tuple(stored)
    return names


class LeasedRecord(Record):
    """A record with a lease (``service.leases``) kept in two of its fields."""

    LEASE_FIELDS: ClassVar[tuple[str, str]] = ("lease_owner", "lease_until")

    @property
    def lease(self) -> Lease:
        owner, until = self.LEASE_FIELDS
        return Lease(getattr(self, owner), getattr(self, until))

    def with_lease(self, lease: Lease) -> Self:
        owner, until = self.LEASE_FIELDS
        return self.but(**{owner: lease.owner, until: lease.until})

    def lease_free_at(self, moment: float) -> bool:
        return self.lease.free_at(moment)


@dataclass(frozen=True)
class ComponentRecord(LeasedRecord):
    """Everything about one component that must survive a restart (components/<appid>)."""

    appid: str
    ticket: str | None = field(default=None, repr=False)
    ticket_create_time: int | None = None  # WeChat's CreateTime of the push
    ticket_received_at: float | None = None  # our clock
    component_token: str | None = field(default=None, repr=False)
    component_token_expires_at: float | None = None
    refresh_lease_owner: str | None = None
    refresh_lease_until: float | None = None
    push_ticket_requested_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    # 45009 on api_authorizer_token (the component's quota): no such call before this.
    authorizer_token_quota_until: float | None = None
    authorizer_token_quota_strikes: int = 0

    LEASE_FIELDS = ("refresh_lease_owner", "refresh_lease_until")

    def token_valid_at(self, moment: float) -> bool:
        return _valid(self.component_token, self.component_token_expires_at, moment)

    def authorizer_token_paused_until(self, moment: float) -> float | None:
        """The end of a 45009 pause still in force at ``moment``, if there is one."""
        until = self.authorizer_token_quota_until
        return until if until is not None and until > moment else None


def _valid(token: str | None, expires_at: float | None, moment: float) -> bool:
    return bool(token) and expires_at is not None and expires_at > moment


class AuthorizerStatus(StrEnum):
    AUTHORIZED = "authorized"
    REVOKED = "revoked"  # the merchant cancelled; tokens deleted, record and history kept
    NEEDS_REAUTHORIZATION = "needs_reauthorization"  # WeChat refused the refresh token


class SyncFlag(StrEnum):
    NOT_LISTED = "not_listed_by_wechat"  # we hold it; api_get_authorizer_list does not
    UNEXCHANGED = "listed_without_refresh_token"  # its authorization code was never exchanged


@dataclass(frozen=True)
class AuthorizerRecord(LeasedRecord):
    """One merchant account authorized to a component (components/<c>/authorizers/<appid>)."""

    component_appid: str
    appid: str
    status: str = AuthorizerStatus.AUTHORIZED.value
    account_type: str | None = None  # AccountType value, from api_get_authorizer_info
    nick_name: str | None = None
    principal_name: str | None = None
    user_name: str | None = None
    head_img: str | None = None
    service_type: int | None = None
    verify_type: int | None = None
    account_status: int | None = None
    func_info: tuple[int, ...] = ()
    authorized_at: float | None = None
    updated_at: float | None = None
    revoked_at: float | None = None
    access_token: str | None = field(default=None, repr=False)
    access_token_expires_at: float | None = None
    refresh_token: str | None = field(default=None, repr=False)
    # When the call that returned the stored refresh token was made: a later one wins.
    refresh_token_asked_at: float | None = None
    # The newest CreateTime of an authorization push applied: older pushes are stale.
    last_push_time: int | None = None
    refresh_lease_owner: str | None = None
    refresh_lease_until: float | None = None
    refreshed_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    # Set by sync when WeChat's list disagrees with this record (SyncFlag values).
    sync_flag: str | None = None
    # One of the 全网发布 check's test accounts (service.wechat.release_accounts).
    release_test: bool = False
    history: tuple[dict[str, Any], ...] = ()
    # Not stored: the document's update time when this record was read or written, the
    # precondition of a write that must not overwrite anyone else's (``seen=`` below).
    version: Any = field(default=None, compare=False, repr=False)

    LEASE_FIELDS = ("refresh_lease_owner", "refresh_lease_until")

    def token_valid_at(self, moment: float) -> bool:
        return _valid(self.access_token, self.access_token_expires_at, moment)

    def with_event(self, at: float, event: str, **detail: Any) -> Self:
        entry = {"at": at, "event": event, **detail}
        return self.but(history=(*self.history, entry)[-HISTORY_LIMIT:])

    def public(self) -> dict[str, Any]:
        """What the internal API shows: everything but the tokens."""
        document = self.to_document()
        for secret in ("access_token", "refresh_token"):
            del document[secret]
        document["has_refresh_token"] = bool(self.refresh_token)
        return document


@dataclass(frozen=True)
class TokenGlance:
    """An authorizer's status and access token alone (a read of three fields): enough to
    serve a stored token, never enough to write from."""

    status: str | None
    access_token: str | None = field(repr=False)
    access_token_expires_at: float | None

    def token_valid_at(self, moment: float) -> bool:
        return _valid(self.access_token, self.access_token_expires_at, moment)


class ExchangeStatus(StrEnum):
    EXCHANGING = "exchanging"  # someone holds the lease and is calling api_query_auth
    DONE = "done"
    FAILED = "failed"  # WeChat refused the code for good (61009, 61010, 61003)
    # The call reached WeChat and its answer was lost (or a taken-over exchange was told
    # "used"): the code is likely spent. The authorization is recovered from WeChat.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class CodeExchange(LeasedRecord):
    """One authorization code's exchange (components/<c>/authorization_codes/<hash>).

    Makes the exchange happen once whichever of the callback and the push comes first.
    """

    component_appid: str
    key: str  # a hash of the code, never the code itself
    status: str = ExchangeStatus.EXCHANGING.value
    lease_owner: str | None = None
    lease_until: float | None = None
    source: str | None = None  # "callback" or "push": who exchanged it
    authorizer_appid: str | None = None
    errcode: int | None = None
    errmsg: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    # A holder before the current one may have sent the code to WeChat (its lease was
    # taken over): a "code used" answer then proves nothing.
    contested: bool = False
    # When the callback page first showed the result: later views say only "done", so a
    # leaked callback URL does not show the account's profile for the record's lifetime.
    result_shown_at: float | None = None
    expire_at: datetime | None = None  # Firestore TTL


@dataclass(frozen=True)
class InboxEntry(Record):
    """One push received on the 授权事件接收URL (components/<c>/inbox/<hash>)."""

    component_appid: str
    key: str
    info_type: str
    create_time: int
    received_at: float
    outcome: str
    final: bool  # False: processing failed transiently, a redelivery is processed again
    # False: handled, but not yet handed to its route (service.delivery); a redelivery
    # delivers it without handling it again.
    delivered: bool = True
    authorizer_appid: str | None = None
    fields: dict[str, Any] | None = None  # the whole message, for notices and unknown ones
    expire_at: datetime | None = None  # Firestore TTL


class ReleaseSendStatus(StrEnum):
    PENDING = "pending"  # written before the empty answer; nobody works on it
    CLAIMED = "claimed"  # someone holds the lease and is getting the token
    SENDING = "sending"  # the lease holder is calling custom/send: past here, never again
    SENT = "sent"
    FAILED = "failed"  # WeChat refused the send, or there is no token to send with
    UNKNOWN = "unknown"  # the send may or may not have reached WeChat: not repeated


OPEN_RELEASE_SEND_STATUSES = (
    ReleaseSendStatus.PENDING.value,
    ReleaseSendStatus.CLAIMED.value,
    ReleaseSendStatus.SENDING.value,
)


@dataclass(frozen=True)
class ReleaseSend(LeasedRecord):
    """The customer-service text the 全网发布 check waits for after ``QUERY_AUTH_CODE``
    (components/<c>/release_sends/<hash of the message's dedup key>).

    Written before the check's message is answered, so the send survives the instance.
    """

    component_appid: str
    key: str
    authorizer_appid: str
    to_user: str  # the test user's openid
    code: str = field(repr=False)  # the query auth code; the text is code + "_from_api"
    status: str = ReleaseSendStatus.PENDING.value
    lease_owner: str | None = None
    lease_until: float | None = None
    attempts: int = 0
    created_at: float | None = None
    finished_at: float | None = None
    errcode: int | None = None
    error: str | None = None
    expire_at: datetime | None = None  # Firestore TTL


R = TypeVar("R", bound=Record)
ComponentChange = Callable[[ComponentRecord], ComponentRecord | None]
# A change to a record that may not exist yet: it gets None, and may create one.
Change = Callable[[R | None], R | None]


@dataclass(frozen=True)
class Modified(Generic[R]):
    record: R
    changed: bool


@dataclass(frozen=True)
class MaybeModified(Generic[R]):
    record: R | None
    changed: bool


class StoreError(RuntimeError):
    pass


class ContentionError(StoreError):
    """A compare-and-set kept losing to other writers."""


class ComponentStore(Protocol):
    def get_component(self, appid: str, deadline: float | None = None) -> ComponentRecord:
        """The stored record, or an empty one (only ``appid`` set) if there is none.

        ``deadline``: give up (StoreError) after this many seconds, retries included."""
        ...

    def modify_component(self, appid: str, change: ComponentChange) -> Modified[ComponentRecord]:
        """Apply ``change`` atomically: re-read and retry if another writer came first."""
        ...


class AuthorizationStore(ComponentStore, Protocol):
    def get_authorizer(
        self, component_appid: str, appid: str, deadline: float | None = None
    ) -> AuthorizerRecord | None:
        """``deadline``: give up (StoreError) after this many seconds, retries included."""
        ...

    def get_authorizer_token(self, component_appid: str, appid: str) -> TokenGlance | None:
        """The status and access token alone, or None if there is no authorizer."""
        ...

    def modify_authorizer(
        self,
        component_appid: str,
        appid: str,
        change: Change[AuthorizerRecord],
        seen: AuthorizerRecord | None = None,
    ) -> MaybeModified[AuthorizerRecord]:
        """Apply ``change`` atomically: re-read and retry if another writer came first.

        ``seen``: the record as this process last read or wrote it (with its ``version``).
        The first attempt applies ``change`` to it and writes on the condition that the
        document is unchanged since, without reading it; if it changed, the store reads it
        and goes on as without ``seen``. A "no change" decided on ``seen`` is final, so
        pass it only where deciding on a slightly old record is safe (taking a lease:
        skipping is; finishing our own lease's work: the write is conditional anyway).
        The record returned carries the written document's ``version``.
        """
        ...

    def modify_code_exchange(
        self, component_appid: str, key: str, change: Change[CodeExchange]
    ) -> MaybeModified[CodeExchange]: ...

    def list_authorizers(
        self,
        component_appid: str,
        status: str | None = None,
        account_type: str | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> list[AuthorizerRecord]:
        """Authorizers by appid, from the one after ``after``; all of them without a limit."""
        ...

    def due_authorizers(self, component_appid: str, before: float) -> list[AuthorizerRecord]:
        """Authorized authorizers whose access token expires before ``before``, soonest first."""
        ...

    def get_inbox_entry(self, component_appid: str, key: str) -> InboxEntry | None: ...

    def put_inbox_entry(self, entry: InboxEntry) -> None: ...

    def create_release_send(self, send: ReleaseSend, deadline: float | None = None) -> bool:
        """Write ``send`` unless one with its key exists; True if written."""
        ...

    def modify_release_send(
        self, component_appid: str, key: str, change: Change[ReleaseSend]
    ) -> MaybeModified[ReleaseSend]: ...

    def open_release_sends(self, component_appid: str) -> list[ReleaseSend]:
        """The sends not finished yet (pending, claimed or sending)."""
        ...
