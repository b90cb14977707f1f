"""The authorization flow's rules on the real Firestore emulator, WeChat faked in-process.

The end-to-end tests prove the same over HTTP with the mock and two gunicorn workers;
here each rule is shown alone: one exchange per code, refusals cached, stale pushes
ignored, revocation keeps the record.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from service.authorization import AuthorizationFlow, FlowPolicy, Outcome
from service.config import ComponentConfig, Settings
from service.store.firestore import FirestoreStore
from service.store.records import AuthorizerStatus
from service.wechat.accounts import AccountType
from service.wechat.client import AuthorizationInfo, AuthorizerInfo, ComponentClient
from service.wechat.errors import AuthorizationCodeExpiredError, SystemBusyError, WeChatError
from service.wechat.messages import Authorized, Unauthorized, UpdateAuthorized

APPID = "wx0123456789abcdef"
MERCHANT = "wx326eecacf7370d4e"
CODE = "queryauthcode@@@one"
T = TypeVar("T")


class FakeTokens:
    """Stands in for the component token manager: always has a token."""

    def call_with_token(self, appid: str, call: Callable[[str], T]) -> T:
        return call("component-token")


class FakeWeChat(ComponentClient):
    def __init__(self, latency: float = 0.0) -> None:
        super().__init__("http://fake.invalid")
        self.latency = latency
        self.exchanges: list[str] = []
        self.refuse: dict[str, WeChatError] = {}
        self.func_info: tuple[int, ...] = (1, 15)
        self._lock = threading.Lock()

    def api_query_auth(
        self, component_appid: str, authorization_code: str, component_token: str
    ) -> AuthorizationInfo:
        with self._lock:
            self.exchanges.append(authorization_code)
            n = len(self.exchanges)
        time.sleep(self.latency)
        if authorization_code in self.refuse:
            raise self.refuse[authorization_code]
        return AuthorizationInfo(MERCHANT, self.func_info, f"access-{n}", 7200, "refreshtoken@@@r1")

    def api_get_authorizer_info(
        self, component_appid: str, authorizer_appid: str, component_token: str
    ) -> AuthorizerInfo:
        return AuthorizerInfo(
            AccountType.OFFICIAL_ACCOUNT,
            "小店",
            "某某公司",
            "gh_0123456789ab",
            "",
            2,
            0,
            1,
            AuthorizationInfo(authorizer_appid, self.func_info),
        )


def make_flow(store: FirestoreStore, wechat: FakeWeChat) -> AuthorizationFlow:
    settings = Settings(components={APPID: ComponentConfig(APPID, "s", "t", "k" * 43)})
    return AuthorizationFlow(
        store,
        wechat,
        FakeTokens(),
        settings,  # type: ignore[arg-type]
        FlowPolicy(lease_seconds=5, callback_wait=5, push_wait=5, poll_interval=0.02),
    )


def authorized(code: str = CODE, at: int = 1000, kind: type[Authorized] = Authorized) -> Authorized:
    info = "authorized" if kind is Authorized else "updateauthorized"
    return kind(APPID, at, info, MERCHANT, code, at + 3600, "preauthcode@@@p")


def test_callback_and_push_together_exchange_once(store: FirestoreStore) -> None:
    wechat = FakeWeChat(latency=0.3)
    flows = [make_flow(store, wechat) for _ in range(4)]  # as if four processes
    jobs: list[Callable[[], object]] = [
        lambda: flows[0].exchange(APPID, CODE, "callback"),
        lambda: flows[1].on_granted(authorized()),
        lambda: flows[2].exchange(APPID, CODE, "callback"),
        lambda: flows[3].on_granted(authorized()),
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda job: job(), jobs))
    assert wechat.exchanges == [CODE]
    outcomes = sorted(r.outcome for r in results)  # type: ignore[attr-defined]
    assert outcomes == sorted([Outcome.EXCHANGED] + [Outcome.ALREADY] * 3)
    record = store.get_authorizer(APPID, MERCHANT)
    assert record is not None and record.status == AuthorizerStatus.AUTHORIZED
    assert record.refresh_token == "refreshtoken@@@r1" and record.nick_name == "小店"
    assert record.account_type == "official_account" and record.func_info == (1, 15)
    assert record.last_push_time == 1000


def test_a_refused_code_is_remembered_and_stores_nothing(store: FirestoreStore) -> None:
    wechat = FakeWeChat()
    wechat.refuse[CODE] = AuthorizationCodeExpiredError(61010, "code is expired", "api_query_auth")
    flow = make_flow(store, wechat)
    first = flow.exchange(APPID, CODE, "callback")
    second = flow.on_granted(authorized())
    assert (first.outcome, first.errcode) == (Outcome.REFUSED, 61010)
    assert (second.outcome, second.errcode) == (Outcome.REFUSED, 61010)
    assert wechat.exchanges == [CODE]
    assert store.get_authorizer(APPID, MERCHANT) is None


def test_a_transient_failure_lets_the_next_attempt_exchange(store: FirestoreStore) -> None:
    wechat = FakeWeChat()
    wechat.refuse[CODE] = SystemBusyError(-1, "system error", "api_query_auth")
    flow = make_flow(store, wechat)
    assert flow.exchange(APPID, CODE, "callback").outcome == Outcome.ERROR
    del wechat.refuse[CODE]
    assert flow.on_granted(authorized()).outcome == Outcome.EXCHANGED
    assert wechat.exchanges == [CODE, CODE]


def test_a_stale_lease_is_taken_over(store: FirestoreStore) -> None:
    wechat = FakeWeChat()
    flow = make_flow(store, wechat)
    now = [time.time()]
    flow.clock = lambda: now[0]
    flow.policy = FlowPolicy(lease_seconds=5, callback_wait=0, push_wait=0)
    # A holder that died: its lease is on the record and never released.
    store.modify_code_exchange(APPID, _key(), flow._claim(APPID, _key(), "dead", "push"))
    assert flow.exchange(APPID, CODE, "callback").outcome == Outcome.IN_PROGRESS
    now[0] += 6
    assert flow.exchange(APPID, CODE, "callback").outcome == Outcome.EXCHANGED


def _key() -> str:
    from service.authorization import code_key

    return code_key(APPID, CODE)


def test_update_replaces_func_info_and_renews_tokens(store: FirestoreStore) -> None:
    wechat = FakeWeChat()
    flow = make_flow(store, wechat)
    flow.on_granted(authorized())
    wechat.func_info = (1,)
    result = flow.on_granted(authorized("queryauthcode@@@two", 2000, UpdateAuthorized))
    assert result.outcome == Outcome.EXCHANGED
    record = store.get_authorizer(APPID, MERCHANT)
    assert record is not None and record.func_info == (1,) and record.access_token == "access-2"
    assert [e["event"] for e in record.history] == ["authorized", "authorization_updated"]


def test_unauthorized_deletes_tokens_keeps_history_and_ignores_stale_pushes(
    store: FirestoreStore,
) -> None:
    wechat = FakeWeChat()
    flow = make_flow(store, wechat)
    flow.on_granted(authorized(at=1000))
    assert flow.on_unauthorized(Unauthorized(APPID, 999, "unauthorized", MERCHANT)) == Outcome.STALE
    assert (
        flow.on_unauthorized(Unauthorized(APPID, 1100, "unauthorized", MERCHANT)) == Outcome.REVOKED
    )
    record = store.get_authorizer(APPID, MERCHANT)
    assert record is not None and record.status == AuthorizerStatus.REVOKED
    assert record.access_token is None and record.refresh_token is None
    assert record.nick_name == "小店" and len(record.history) == 2
    assert flow.on_unauthorized(Unauthorized(APPID, 1100, "unauthorized", MERCHANT)) == (
        Outcome.ALREADY_REVOKED
    )
    # An authorized push older than the revocation is stale: nothing is exchanged.
    late = flow.on_granted(authorized("queryauthcode@@@late", 1050))
    assert late.outcome == Outcome.STALE and wechat.exchanges == [CODE]
    # Re-authorizing later works and gets a fresh authorized_at.
    again = flow.on_granted(authorized("queryauthcode@@@again", 1200))
    assert again.outcome == Outcome.EXCHANGED and again.authorizer is not None
    assert again.authorizer.status == AuthorizerStatus.AUTHORIZED
    assert again.authorizer.authorized_at is not None and again.authorizer.revoked_at is None
