"""The authorization pushes' rules on the real Firestore emulator, WeChat faked in-process:
an update replaces what the authorization grants, a revocation keeps the record and its
history, and a push older than the newest one applied changes nothing."""

from __future__ import annotations

from service.code_exchange import Outcome
from service.store.firestore import FirestoreStore
from service.store.records import AuthorizerStatus
from service.wechat.messages import Unauthorized, UpdateAuthorized
from tests.service.test_code_exchange import (
    APPID,
    CODE,
    MERCHANT,
    FakeWeChat,
    authorized,
    make_flow,
)


def test_update_replaces_func_info_and_renews_tokens(store: FirestoreStore) -> None:
    wechat = FakeWeChat()
    flow = make_flow(store, wechat)
    flow.pushes.on_granted(authorized())
    wechat.func_info = (1,)
    result = flow.pushes.on_granted(authorized("queryauthcode@@@two", 2000, UpdateAuthorized))
    assert result.outcome == Outcome.EXCHANGED
    record = store.get_authorizer(APPID, MERCHANT)
    assert record is not None and record.func_info == (1,) and record.access_token == "access-2"
    assert [e["event"] for e in record.history] == ["authorized", "authorization_updated"]


def test_unauthorized_deletes_tokens_keeps_history_and_ignores_stale_pushes(
    store: FirestoreStore,
) -> None:
    wechat = FakeWeChat()
    flow = make_flow(store, wechat)
    flow.pushes.on_granted(authorized(at=1000))
    unauthorized = [Unauthorized(APPID, at, "unauthorized", MERCHANT) for at in (999, 1100)]
    assert flow.pushes.on_unauthorized(unauthorized[0]) == Outcome.STALE
    assert flow.pushes.on_unauthorized(unauthorized[1]) == Outcome.REVOKED
    record = store.get_authorizer(APPID, MERCHANT)
    assert record is not None and record.status == AuthorizerStatus.REVOKED
    assert record.access_token is None and record.refresh_token is None
    assert record.nick_name == "小店" and len(record.history) == 2
    assert flow.pushes.on_unauthorized(unauthorized[1]) == Outcome.ALREADY_REVOKED
    # An authorized push older than the revocation is stale: nothing is exchanged.
    late = flow.pushes.on_granted(authorized("queryauthcode@@@late", 1050))
    assert late.outcome == Outcome.STALE and wechat.exchanges == [CODE]
    # Re-authorizing later works and gets a fresh authorized_at.
    again = flow.pushes.on_granted(authorized("queryauthcode@@@again", 1200))
    assert again.outcome == Outcome.EXCHANGED and again.authorizer is not None
    assert again.authorizer.status == AuthorizerStatus.AUTHORIZED
    assert again.authorizer.authorized_at is not None and again.authorizer.revoked_at is None
