"""Open platform accounts of one authorizer (scene 1), WeChat faked in-process.

Each rule alone: what WeChat's refusals become, and that a change whose answer is lost is
never repeated but read back with open/get before anything is answered.
"""

from __future__ import annotations

import pytest

from service.config import ConfigError, Settings
from service.open_accounts import (
    MEANINGS,
    OpenAccountManager,
    OpenAccountPolicy,
    OpenAccountRefused,
    OpenAccountUnavailable,
    Outcome,
    Result,
)
from tests.service.open_wechat import FakeOpenWeChat, Fault

C1 = "wx00000000000000c1"
OA = "wx0000000000000a01"
MP = "wx0000000000000a02"
STRANGER = "wx0000000000000a03"
BUSY = {"errcode": -1, "errmsg": "system error"}


@pytest.fixture
def wechat() -> FakeOpenWeChat:
    fake = FakeOpenWeChat()
    fake.account(OA, components=(C1,))
    fake.account(MP, components=(C1,))
    fake.account(STRANGER, principal="另一家有限公司", components=(C1,))
    return fake


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def manager(wechat: FakeOpenWeChat, sleeps: list[float]) -> OpenAccountManager:
    return OpenAccountManager(wechat, OpenAccountPolicy(busy_retries=2), sleep=sleeps.append)


def apis(wechat: FakeOpenWeChat) -> list[str]:
    return [api for api, _, _ in wechat.calls]


# ----- scene 1, all answered -------------------------------------------------------------


def test_create_get_bind_unbind(manager: OpenAccountManager, wechat: FakeOpenWeChat) -> None:
    assert manager.bound_to(C1, OA) is None
    created = manager.create(C1, OA)
    assert created.result == Result.CREATED and not created.recovered
    open_appid = created.open_appid
    assert open_appid is not None and manager.bound_to(C1, OA) == open_appid

    bound = manager.bind(C1, MP, open_appid)
    assert bound.result == Result.BOUND and wechat.bound[MP] == open_appid
    # A repeated bind (89000 from WeChat) is the state asked for: already bound.
    again = manager.bind(C1, MP, open_appid)
    assert again.result == Result.ALREADY_BOUND and again.open_appid == open_appid

    gone = manager.unbind(C1, MP)
    assert gone.result == Result.UNBOUND and gone.previous_open_appid == open_appid
    assert MP not in wechat.bound
    assert manager.unbind(C1, MP).result == Result.ALREADY_UNBOUND
    assert apis(wechat) == [
        "open/get",
        "open/get",  # create asks first
        "open/create",
        "open/get",
        "open/bind",
        "open/bind",
        "open/get",  # 89000: where is it bound?
        "open/get",  # unbind: from which one?
        "open/unbind",
        "open/get",
    ]


def test_create_of_a_bound_account_says_where_and_creates_nothing(
    manager: OpenAccountManager, wechat: FakeOpenWeChat
) -> None:
    theirs = wechat.website_account("示例科技有限公司", OA)
    with pytest.raises(OpenAccountRefused) as refused:
        manager.create(C1, OA)
    assert refused.value.errcode == 89000 and refused.value.open_appid == theirs
    assert refused.value.meaning.status == 409
    assert wechat.api_calls("open/create") == []


def test_bind_refusals_carry_wechats_meaning(
    manager: OpenAccountManager, wechat: FakeOpenWeChat
) -> None:
    open_appid = manager.create(C1, OA).open_appid
    assert open_appid is not None
    with pytest.raises(OpenAccountRefused) as other_principal:
        manager.bind(C1, STRANGER, open_appid)
    assert other_principal.value.errcode == 89001
    assert "主体" in other_principal.value.meaning.zh
    website = wechat.website_account("示例科技有限公司")
    with pytest.raises(OpenAccountRefused) as not_by_api:
        manager.bind(C1, MP, website)
    assert not_by_api.value.errcode == 89003
    with pytest.raises(OpenAccountRefused) as unknown:
        manager.bind(C1, MP, "wx00000000000000ff")
    assert unknown.value.errcode == 40013 and unknown.value.meaning.status == 400
    # Bound elsewhere: 89000, and where.
    theirs = manager.create(C1, STRANGER).open_appid
    with pytest.raises(OpenAccountRefused) as elsewhere:
        manager.bind(C1, STRANGER, open_appid)
    assert elsewhere.value.errcode == 89000 and elsewhere.value.open_appid == theirs
    assert wechat.bound[STRANGER] == theirs


def test_unbind_refusals(manager: OpenAccountManager, wechat: FakeOpenWeChat) -> None:
    website = wechat.website_account("示例科技有限公司", OA)
    with pytest.raises(OpenAccountRefused) as refused:
        manager.unbind(C1, OA)
    assert refused.value.errcode == 89003 and wechat.bound[OA] == website
    mine = manager.create(C1, MP).open_appid
    # Unbinding from a named account it is not bound to: 89002, and where it is.
    with pytest.raises(OpenAccountRefused) as elsewhere:
        manager.unbind(C1, MP, "wx00000000000000ee")
    assert elsewhere.value.errcode in (89002, 40013)
    with pytest.raises(OpenAccountRefused) as not_that_one:
        manager.unbind(C1, OA, mine)
    assert not_that_one.value.errcode == 89002 and not_that_one.value.open_appid == website


def test_without_the_permission_set_every_call_is_61007(
    manager: OpenAccountManager, wechat: FakeOpenWeChat
) -> None:
    wechat.granted[(C1, OA)] = False
    for call in (
        lambda: manager.bound_to(C1, OA),
        lambda: manager.create(C1, OA),
        lambda: manager.bind(C1, OA, "wx0000000000000001"),
        lambda: manager.unbind(C1, OA),
    ):
        with pytest.raises(OpenAccountRefused) as refused:
            call()
        assert refused.value.errcode == 61007
        assert refused.value.meaning.status == 403
        assert "开放平台帐号管理" in refused.value.meaning.en


@pytest.mark.parametrize(
    ("errcode", "status"),
    [(89000, 409), (89001, 409), (89002, 409), (89003, 409), (89004, 409), (61007, 403)],
)
def test_every_open_errcode_has_a_status_and_both_languages(errcode: int, status: int) -> None:
    meaning = MEANINGS[errcode]
    assert meaning.status == status
    assert meaning.en and meaning.todo
    assert any("\u4e00" <= ch <= "\u9fff" for ch in meaning.zh)


def test_open_get_retries_busy_then_gives_up(
    manager: OpenAccountManager, wechat: FakeOpenWeChat, sleeps: list[float]
) -> None:
    wechat.faults.append(Fault("open/get", answer=BUSY, times=2))
    assert manager.bound_to(C1, OA) is None
    assert sleeps == [0.2, 0.4] and len(wechat.api_calls("open/get")) == 3
    wechat.faults.append(Fault("open/get", answer=BUSY, times=3))
    with pytest.raises(OpenAccountUnavailable) as busy:
        manager.bound_to(C1, OA)
    assert busy.value.status == 502 and busy.value.outcome is None


# ----- answers lost: read back, never repeated --------------------------------------------


def test_create_whose_answer_was_lost_after_it_happened_is_recovered(
    manager: OpenAccountManager, wechat: FakeOpenWeChat
) -> None:
    wechat.faults.append(Fault("open/create", lost=True, processed=True))
    created = manager.create(C1, OA)
    assert created.result == Result.CREATED and created.recovered
    assert created.open_appid == wechat.bound[OA]
    assert apis(wechat) == ["open/get", "open/create", "open/get"]


def test_create_lost_before_it_happened_says_safe_to_retry(
    manager: OpenAccountManager, wechat: FakeOpenWeChat
) -> None:
    wechat.faults.append(Fault("open/create", lost=True))
    with pytest.raises(OpenAccountUnavailable) as lost:
        manager.create(C1, OA)
    assert lost.value.status == 504 and lost.value.outcome == Outcome.UNCHANGED
    assert "safe to try again" in lost.value.reason
    assert OA not in wechat.bound
    assert apis(wechat) == ["open/get", "open/create", "open/get"]


def test_create_never_sent_is_not_read_back(
    manager: OpenAccountManager, wechat: FakeOpenWeChat
) -> None:
    wechat.faults.append(Fault("open/create", unsent=True))
    with pytest.raises(OpenAccountUnavailable) as unsent:
        manager.create(C1, OA)
    assert unsent.value.status == 502 and unsent.value.outcome == Outcome.UNCHANGED
    assert apis(wechat) == ["open/get"]  # the check before; nothing after


def test_when_the_read_back_fails_too_the_outcome_is_unknown(
    manager: OpenAccountManager, wechat: FakeOpenWeChat
) -> None:
    wechat.faults.append(Fault("open/create", lost=True, processed=True))
    # The check before create is answered; WeChat is unreachable for every open/get after.
    wechat.faults.append(Fault("open/get", unsent=True, skip=1, times=5))
    with pytest.raises(OpenAccountUnavailable) as unknown:
        manager.create(C1, OA)
    assert unknown.value.outcome == Outcome.UNKNOWN and unknown.value.status == 504
    assert "GET …/open-account" in unknown.value.reason
    assert apis(wechat) == ["open/get", "open/create"]  # never repeated


def test_create_answers_that_say_nothing_are_read_back(
    manager: OpenAccountManager, wechat: FakeOpenWeChat
) -> None:
    # -1 without acting: WeChat shows nothing happened.
    wechat.faults.append(Fault("open/create", answer=BUSY))
    with pytest.raises(OpenAccountUnavailable) as busy:
        manager.create(C1, OA)
    assert busy.value.outcome == Outcome.UNCHANGED and OA not in wechat.bound
    # ok without saying which, an HTTP error after acting, -1 after acting: made, and found.
    for fault in (
        Fault("open/create", answer={"errcode": 0, "errmsg": "ok"}, processed=True),
        Fault("open/create", answer={"errmsg": "bad gateway"}, http_status=502, processed=True),
        Fault("open/create", answer=BUSY, processed=True),
    ):
        wechat.bound.pop(OA, None)
        wechat.faults.append(fault)
        created = manager.create(C1, OA)
        assert created.recovered and created.open_appid == wechat.bound[OA]
        assert apis(wechat)[-2:] == ["open/create", "open/get"]
    assert len(wechat.api_calls("open/create")) == 4


def test_bind_and_unbind_whose_answers_were_lost(
    manager: OpenAccountManager, wechat: FakeOpenWeChat
) -> None:
    open_appid = manager.create(C1, OA).open_appid
    assert open_appid is not None
    wechat.faults.append(Fault("open/bind", lost=True, processed=True))
    bound = manager.bind(C1, MP, open_appid)
    assert bound.result == Result.BOUND and bound.recovered
    wechat.faults.append(Fault("open/unbind", lost=True, processed=True))
    unbound = manager.unbind(C1, MP)
    assert unbound.result == Result.UNBOUND and unbound.recovered
    assert unbound.previous_open_appid == open_appid
    wechat.faults.append(Fault("open/bind", lost=True))
    with pytest.raises(OpenAccountUnavailable) as not_bound:
        manager.bind(C1, MP, open_appid)
    assert not_bound.value.outcome == Outcome.UNCHANGED and MP not in wechat.bound
    manager.bind(C1, MP, open_appid)
    wechat.faults.append(Fault("open/unbind", lost=True))
    with pytest.raises(OpenAccountUnavailable) as still_bound:
        manager.unbind(C1, MP)
    assert still_bound.value.outcome == Outcome.UNCHANGED
    assert f"still bound to {open_appid}" in still_bound.value.reason
    assert len(wechat.api_calls("open/bind")) == 3
    assert len(wechat.api_calls("open/unbind")) == 2


def test_a_non_json_answer_is_no_answer(
    manager: OpenAccountManager, wechat: FakeOpenWeChat
) -> None:
    wechat.faults.append(Fault("open/get", answer={"errcode": "oops"}))
    with pytest.raises(OpenAccountUnavailable) as bad:
        manager.bound_to(C1, OA)
    assert bad.value.status == 502 and "errcode" in bad.value.reason


# ----- GROUP_OPEN_APPID ---------------------------------------------------------------------


def test_group_open_appid_is_optional_and_checked() -> None:
    base = {
        "WECHAT_COMPONENTS": (
            '[{"appid": "wx00000000000000c1", "secret": "s", "token": "t", '
            '"encoding_aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"}]'
        )
    }
    assert Settings.from_env(base).group_open_appid is None
    assert Settings.from_env({**base, "GROUP_OPEN_APPID": " "}).group_open_appid is None
    group = "wx1234567890abcdef"
    assert Settings.from_env({**base, "GROUP_OPEN_APPID": group}).group_open_appid == group
    for bad in ("gh_1234567890ab", "wx1234567890ABCDEF", "wx123"):
        with pytest.raises(ConfigError, match="GROUP_OPEN_APPID must be"):
            Settings.from_env({**base, "GROUP_OPEN_APPID": bad})


def test_a_refusal_stands_when_asking_where_fails(
    manager: OpenAccountManager, wechat: FakeOpenWeChat
) -> None:
    theirs = wechat.website_account("示例科技有限公司", OA)
    mine = wechat._new_open("示例科技有限公司", via_api=True)
    wechat.faults.append(Fault("open/get", unsent=True, times=3))
    with pytest.raises(OpenAccountRefused) as elsewhere:
        manager.bind(C1, OA, mine)
    # 89000, and where could not be asked: still 89000, without open_appid, not a 502.
    assert elsewhere.value.errcode == 89000 and elsewhere.value.open_appid is None
    with pytest.raises(OpenAccountRefused) as not_there:
        manager.unbind(C1, OA, mine)
    assert not_there.value.errcode == 89002 and not_there.value.open_appid is None
    assert wechat.bound[OA] == theirs
