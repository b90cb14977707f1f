"""Who an authorized account is, for the message URL: a small per-process cache of records.

Every message names its account twice, in the URL (``$APPID$``) and in the decrypted
``ToUserName`` (its gh_ id). Checking that they agree needs the authorizer's record; reading
it for every message would cost a Firestore read each, at thousands of messages a second.
A user name never changes, so each process keeps what it read for ``ttl`` seconds, and an
account it does not hold for ``absent_ttl`` (a merchant who authorizes meanwhile is checked
from then on). A read that is slow or fails is not waited for: the message is answered
without the check, which only ever refuses.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from service.store.records import AuthorizationStore, StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeldAccount:
    """What the message URL needs of an authorizer record (no token)."""

    appid: str
    user_name: str | None
    account_type: str | None
    status: str
    release_test: bool


@dataclass(frozen=True)
class DirectoryPolicy:
    ttl: float = 600.0
    absent_ttl: float = 60.0
    max_entries: int = 100_000  # ~200 bytes each: tens of MB at most
    read_deadline: float = 1.0  # of WeChat's 5 s


class AuthorizerDirectory:
    def __init__(
        self,
        store: AuthorizationStore,
        policy: DirectoryPolicy = DirectoryPolicy(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.policy = policy
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], tuple[float, HeldAccount | None]] = (
            OrderedDict()
        )

    def lookup(self, component_appid: str, appid: str) -> HeldAccount | None:
        """The account if this component holds it; None if not, or if it cannot be told."""
        key = (component_appid, appid)
        now = self.clock()
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None and cached[0] > now:
                self._entries.move_to_end(key)
                return cached[1]
        try:
            record = self.store.get_authorizer(
                component_appid, appid, deadline=self.policy.read_deadline
            )
        except StoreError as exc:
            log.warning(
                "authorizer lookup skipped: the store did not answer in time",
                extra={
                    "component_appid": component_appid,
                    "authorizer_appid": appid,
                    "error": str(exc),
                },
            )
            return None
        held = (
            None
            if record is None
            else HeldAccount(
                appid=appid,
                user_name=record.user_name,
                account_type=record.account_type,
                status=record.status,
                release_test=record.release_test,
            )
        )
        ttl = self.policy.ttl if held is not None else self.policy.absent_ttl
        with self._lock:
            self._entries[key] = (now + ttl, held)
            self._entries.move_to_end(key)
            while len(self._entries) > self.policy.max_entries:
                self._entries.popitem(last=False)
        return held
