"""When WeChat has answered and storing its answer fails, the write is retried, not dropped.

The store is the Firestore emulator behind a wrapper that fails the next writes of one
kind at the moment WeChat answers (between the call and the write).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from service.code_exchange import Outcome
from service.log_events import CREDENTIAL_WRITE_FAILED
from service.persist import write_after_answer
from service.store.firestore import FirestoreStore
from service.store.records import AuthorizerStatus, ExchangeStatus, StoreError
from service.wechat.client import AuthorizationInfo, AuthorizerAccessToken
from tests.service import test_authorizer_tokens as token_tests
from tests.service import test_code_exchange as exchange_tests


class FlakyStore:
    """The real store, but ``fail_next(n)`` makes the next n authorizer writes fail."""

    def __init__(self, store: FirestoreStore) -> None:
        self._store = store
        self.failures = 0

    def fail_next(self, n: int) -> None:
        self.failures = n

    def modify_authorizer(self, *args: Any, **kwargs: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise StoreError("Firestore write failed: ServiceUnavailable")
        return self._store.modify_authorizer(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def events(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [getattr(r, "event", "") for r in caplog.records]


def test_an_exchanged_code_s_tokens_are_stored_after_failed_writes(
    store: FirestoreStore, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = FlakyStore(store)

    class AnsweringThenFaulting(exchange_tests.FakeWeChat):
        def api_query_auth(self, *args: Any) -> AuthorizationInfo:
            info = super().api_query_auth(*args)
            flaky.fail_next(2)  # WeChat has spent the code; now the store fails twice
            return info

    wechat = AnsweringThenFaulting()
    flow = exchange_tests.make_flow(flaky, wechat)  # type: ignore[arg-type]
    result = flow.pushes.on_granted(exchange_tests.authorized())
    assert result.outcome == Outcome.EXCHANGED, result
    record = store.get_authorizer(exchange_tests.APPID, exchange_tests.MERCHANT)
    assert record is not None and record.status == AuthorizerStatus.AUTHORIZED
    assert record.refresh_token == "refreshtoken@@@r1"
    assert exchange_tests.exchange_status(store) == ExchangeStatus.DONE
    assert events(caplog).count(CREDENTIAL_WRITE_FAILED) == 2
    assert wechat.exchanges == [exchange_tests.CODE]


def test_a_renewed_authorizer_token_is_stored_after_failed_writes_and_the_lease_freed(
    store: FirestoreStore, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = FlakyStore(store)
    token_tests.put(store)

    class AnsweringThenFaulting(token_tests.FakeWeChat):
        def api_authorizer_token(self, *args: Any) -> AuthorizerAccessToken:
            answer = super().api_authorizer_token(*args)
            flaky.fail_next(3)
            return answer

    wechat = AnsweringThenFaulting(rotate=True)
    tokens = token_tests.manager(flaky, wechat)  # type: ignore[arg-type]
    token, outcome = tokens.get(token_tests.COMPONENT, token_tests.MERCHANT)
    assert (token.access_token, outcome.value) == ("access-1", "renewed")
    record = token_tests.stored(store)
    # The rotated refresh token was kept: losing it would cost the merchant (61023 later).
    assert record.refresh_token == "refreshtoken@@@r1"
    assert record.refresh_lease_owner is None
    assert events(caplog).count(CREDENTIAL_WRITE_FAILED) == 3


def test_the_last_failure_is_critical_and_raised(caplog: pytest.LogCaptureFixture) -> None:
    def never() -> None:
        raise StoreError("Firestore write failed: ServiceUnavailable")

    caplog.set_level(logging.ERROR)
    with pytest.raises(StoreError):
        write_after_answer(never, "a token", {"component_appid": "c"}, sleep=lambda _: None)
    levels = [
        r.levelname for r in caplog.records if getattr(r, "event", "") == CREDENTIAL_WRITE_FAILED
    ]
    assert levels == ["ERROR"] * 5 + ["CRITICAL"]
