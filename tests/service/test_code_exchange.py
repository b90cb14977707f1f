"""The code exchange's rules on the real Firestore emulator, WeChat faked in-process.

The end-to-end tests prove the same over HTTP with the mock and two gunicorn workers;
here each rule is shown alone: one exchange per code whichever of the callback and the
push comes first, refusals remembered, leases taken over, lost answers recovered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from service.authorization_pushes import AuthorizationPushes
from service.code_exchange import CodeExchanger, ExchangePolicy, Outcome, code_key
from service.store.firestore import FirestoreStore
from service.store.records import AuthorizerStatus, ExchangeStatus
from service.wechat.accounts import AccountType
from service.wechat.client import (
    AuthorizationInfo,
    AuthorizerInfo,
    AuthorizerPage,
    ComponentClient,
    ListedAuthorizer,
)
from service.wechat.errors import (
    AuthorizationCodeExpiredError,
    NotAuthorizedError,
    SystemBusyError,
    TransportError,
    WeChatError,
)
from service.wechat.messages import Authorized

APPID = "wx0123456789abcdef"
MERCHANT = "wx326eecacf7370d4e"
CODE = "queryauthcode@@@one"
T = TypeVar("T")


class FakeTokens:
    """Stands in for the component token manager: always has a token."""

    def call_with_token(self, appid: str, call: Callable[[str], T]) -> T:
        return call("component-token")


class FakeWeChat(ComponentClient):
    """WeChat's side of the exchange: a code is spent by its first exchange, which grants
    the authorization even when its answer is then lost (``lose_answer``)."""

    def __init__(self, latency: float = 0.0) -> None:
        super().__init__("http://fake.invalid")
        self.latency = latency
        self.exchanges: list[str] = []
        self.refuse: dict[str, WeChatError] = {}
        self.lose_answer: set[str] = set()
        self.hold: dict[str, threading.Event] = {}  # the first exchange waits for the event
        self.spent: set[str] = set()
        self.func_info: tuple[int, ...] = (1, 15)
        self.listed: list[ListedAuthorizer] = []
        self.revoked = False  # the merchant cancelled: WeChat holds no authorization
        self._lock = threading.Lock()

    def api_query_auth(
        self, component_appid: str, authorization_code: str, component_token: str
    ) -> AuthorizationInfo:
        with self._lock:
            self.exchanges.append(authorization_code)
            n = len(self.exchanges)
            refused = self.refuse.get(authorization_code)
            spent = authorization_code in self.spent
            if refused is None:
                self.spent.add(authorization_code)
        time.sleep(self.latency)
        if refused is not None:
            raise refused
        if spent:
            raise AuthorizationCodeExpiredError(61010, "code used", "api_query_auth")
        if authorization_code in self.hold:
            self.hold.pop(authorization_code).wait(10)
        if authorization_code in self.lose_answer:
            raise TransportError("request failed (ReadTimeout)", "api_query_auth")
        return AuthorizationInfo(MERCHANT, self.func_info, f"access-{n}", 7200, "refreshtoken@@@r1")

    def api_get_authorizer_list(
        self, component_appid: str, offset: int, count: int, component_token: str
    ) -> AuthorizerPage:
        return AuthorizerPage(len(self.listed), tuple(self.listed[offset : offset + count]))

    def api_get_authorizer_info(
        self, component_appid: str, authorizer_appid: str, component_token: str
    ) -> AuthorizerInfo:
        if self.revoked:
            raise NotAuthorizedError(61003, "not authorized", "api_get_authorizer_info")
        return AuthorizerInfo(
            AccountType.OFFICIAL_ACCOUNT,
            "小店",
            "某某公司",
            "gh_0123456789ab",
            "",
            2,
            0,
            1,
            AuthorizationInfo(authorizer_appid, self.func_info, refresh_token="refreshtoken@@@r1"),
        )


@dataclass
class Flow:
    """One process's view of the authorization flow: its code exchanger and the pushes'
    handler on top of it."""

    codes: CodeExchanger
    pushes: AuthorizationPushes


def make_flow(store: FirestoreStore, wechat: FakeWeChat) -> Flow:
    codes = CodeExchanger(
        store,
        wechat,
        FakeTokens(),  # type: ignore[arg-type]
        ExchangePolicy(lease_seconds=5, callback_wait=5, push_wait=5, poll_interval=0.02),
    )
    return Flow(codes, AuthorizationPushes(store, codes))


def authorized(code: str = CODE, at: int = 1000, kind: type[Authorized] = Authorized) -> Authorized:
    info = "authorized" if kind is Authorized else "updateauthorized"
    return kind(APPID, at, info, MERCHANT, code, at + 3600, "preauthcode@@@p")


def test_callback_and_push_together_exchange_once(store: FirestoreStore) -> None:
    wechat = FakeWeChat(latency=0.3)
    flows = [make_flow(store, wechat) for _ in range(4)]  # as if four processes
    jobs: list[Callable[[], object]] = [
        lambda: flows[0].codes.exchange(APPID, CODE, "callback"),
        lambda: flows[1].pushes.on_granted(authorized()),
        lambda: flows[2].codes.exchange(APPID, CODE, "callback"),
        lambda: flows[3].pushes.on_granted(authorized()),
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
    first = flow.codes.exchange(APPID, CODE, "callback")
    second = flow.pushes.on_granted(authorized())
    assert (first.outcome, first.errcode) == (Outcome.REFUSED, 61010)
    assert (second.outcome, second.errcode) == (Outcome.REFUSED, 61010)
    assert wechat.exchanges == [CODE]
    assert store.get_authorizer(APPID, MERCHANT) is None


def test_a_transient_failure_lets_the_next_attempt_exchange(store: FirestoreStore) -> None:
    wechat = FakeWeChat()
    wechat.refuse[CODE] = SystemBusyError(-1, "system error", "api_query_auth")
    flow = make_flow(store, wechat)
    assert flow.codes.exchange(APPID, CODE, "callback").outcome == Outcome.ERROR
    del wechat.refuse[CODE]
    assert flow.pushes.on_granted(authorized()).outcome == Outcome.EXCHANGED
    assert wechat.exchanges == [CODE, CODE]


def test_a_stale_lease_is_taken_over(store: FirestoreStore) -> None:
    wechat = FakeWeChat()
    flow = make_flow(store, wechat)
    now = [time.time()]
    flow.codes.clock = lambda: now[0]
    flow.codes.policy = ExchangePolicy(lease_seconds=5, callback_wait=0, push_wait=0)
    # A holder that died: its lease is on the record and never released.
    store.modify_code_exchange(APPID, _key(), flow.codes._claim(APPID, _key(), "dead", "push"))
    assert flow.codes.exchange(APPID, CODE, "callback").outcome == Outcome.IN_PROGRESS
    now[0] += 6
    assert flow.codes.exchange(APPID, CODE, "callback").outcome == Outcome.EXCHANGED


def _key() -> str:
    return code_key(APPID, CODE)


def exchange_status(store: FirestoreStore) -> str:
    record = store.modify_code_exchange(APPID, _key(), lambda current: None).record
    assert record is not None
    return record.status


def test_an_overtaken_holder_s_exchange_stands_and_the_taker_is_not_told_failed(
    store: FirestoreStore,
) -> None:
    wechat = FakeWeChat()
    release_first = threading.Event()
    wechat.hold[CODE] = release_first  # the first holder's answer takes longer than its lease
    first, second = make_flow(store, wechat), make_flow(store, wechat)
    for flow in (first, second):
        flow.codes.policy = ExchangePolicy(lease_seconds=0.3, callback_wait=5, push_wait=5)
    with ThreadPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(first.codes.exchange, APPID, CODE, "callback")
        time.sleep(0.5)  # the first holder's lease has run out
        # The push takes the exchange over; WeChat says the code is used (by the first).
        taken_over = second.pushes.on_granted(authorized())
        release_first.set()
        overtaken = slow.result(10)
    assert taken_over.outcome == Outcome.RECOVERED, taken_over
    assert overtaken.outcome == Outcome.EXCHANGED, overtaken
    assert exchange_status(store) == ExchangeStatus.DONE
    record = store.get_authorizer(APPID, MERCHANT)
    assert record is not None and record.status == AuthorizerStatus.AUTHORIZED
    assert record.refresh_token == "refreshtoken@@@r1"


def test_a_lost_answer_is_recovered_from_the_account_the_push_names(
    store: FirestoreStore,
) -> None:
    wechat = FakeWeChat()
    wechat.lose_answer.add(CODE)
    flow = make_flow(store, wechat)
    result = flow.pushes.on_granted(authorized())
    assert result.outcome == Outcome.RECOVERED
    assert wechat.exchanges == [CODE]  # not sent again: it would have answered 61010
    assert exchange_status(store) == ExchangeStatus.DONE
    record = store.get_authorizer(APPID, MERCHANT)
    assert record is not None and record.status == AuthorizerStatus.AUTHORIZED
    assert record.refresh_token == "refreshtoken@@@r1" and record.nick_name == "小店"
    assert record.access_token is None and record.access_token_expires_at == 0.0  # due now
    # The callback that follows finds it done.
    assert flow.codes.exchange(APPID, CODE, "callback").outcome == Outcome.ALREADY


def test_a_lost_callback_answer_is_recovered_from_the_list_of_authorizations(
    store: FirestoreStore,
) -> None:
    wechat = FakeWeChat()
    wechat.lose_answer.add(CODE)
    wechat.listed = [
        ListedAuthorizer("wx00000000000000aa", "refreshtoken@@@old", int(time.time()) - 90000),
        ListedAuthorizer(MERCHANT, "refreshtoken@@@r1", int(time.time())),
    ]
    result = make_flow(store, wechat).codes.exchange(APPID, CODE, "callback")
    assert result.outcome == Outcome.RECOVERED and result.authorizer is not None
    assert result.authorizer.appid == MERCHANT
    assert wechat.exchanges == [CODE]


def test_a_lost_callback_answer_that_the_list_cannot_tell_waits_for_the_push(
    store: FirestoreStore,
) -> None:
    wechat = FakeWeChat()
    wechat.lose_answer.add(CODE)
    now = int(time.time())
    wechat.listed = [  # two merchants authorized just now: which one was this code's?
        ListedAuthorizer("wx00000000000000aa", "refreshtoken@@@a", now),
        ListedAuthorizer(MERCHANT, "refreshtoken@@@r1", now),
    ]
    flow = make_flow(store, wechat)
    assert flow.codes.exchange(APPID, CODE, "callback").outcome == Outcome.CONFIRMING
    assert exchange_status(store) == ExchangeStatus.UNKNOWN  # never "failed"
    assert flow.pushes.on_granted(authorized()).outcome == Outcome.RECOVERED
    assert flow.codes.exchange(APPID, CODE, "callback").outcome == Outcome.ALREADY
    assert wechat.exchanges == [CODE]


def test_a_lost_answer_for_an_authorization_wechat_does_not_hold_fails_the_code(
    store: FirestoreStore,
) -> None:
    wechat = FakeWeChat()
    wechat.lose_answer.add(CODE)
    wechat.revoked = True  # and the merchant cancelled before we asked
    flow = make_flow(store, wechat)
    result = flow.pushes.on_granted(authorized())
    assert (result.outcome, result.errcode) == (Outcome.REFUSED, 61003)
    assert exchange_status(store) == ExchangeStatus.FAILED


def test_the_result_page_shows_a_code_s_result_once(store: FirestoreStore) -> None:
    flow = make_flow(store, FakeWeChat())
    assert flow.codes.first_view(APPID, CODE) is False  # no such exchange: nothing to show
    flow.codes.exchange(APPID, CODE, "callback")
    assert flow.codes.first_view(APPID, CODE) is True
    assert flow.codes.first_view(APPID, CODE) is False
