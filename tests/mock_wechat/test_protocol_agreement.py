"""Two readings of the same documents must agree: the mock's (``mock_wechat.protocol``) and
the service's (``service.wechat.accounts``, ``service.wechat.release_accounts``).

Each side writes its tables from the documents on its own, so a misreading on one side
shows up here instead of passing every test on both. When a test fails, re-read the
document its message names and correct whichever side misread it; never make one side
import the other's table.
"""

from __future__ import annotations

import pytest

from mock_wechat import protocol
from mock_wechat.merchant_accounts import AccountSpec, authorizer_info, new_account
from mock_wechat.protocol import AccountKind
from service.wechat import accounts as service_accounts
from service.wechat import release_accounts as service_release
from service.wechat.accounts import AccountType

SEED = "shared/seeds 授权流程技术说明, 二、1 授权链接参数说明 (auth_type, biz_appid); protocol §4.2"
RELEASE_DOC = "shared/docs/wechat-messages-and-release.md §4.1 (the test-account table)"
RELEASE_TEXTS = "shared/docs/wechat-messages-and-release.md §4.2 (what is tested)"
INFO_DOC = "shared/docs/wechat-component-protocol.md §3.6 (api_get_authorizer_info)"
APPID_DOC = "shared/docs/wechat-component-protocol.md §0 (appids: wx + 16 hex digits)"
SETS_DOC = (
    "the open platform's 公众号权限集 and 小程序权限集 pages "
    "(Third-party_Platforms/2.0/product/offical_account_authority.html, "
    "miniprogram_authority.html)"
)


def reread(document: str) -> str:
    return f"the mock and the service read {document} differently; re-read it"


# ----- the 全网发布 check ---------------------------------------------------------------


def test_the_ten_release_test_accounts() -> None:
    mock = {(a.group, a.kind.value, a.appid, a.user_name) for a in protocol.RELEASE_ACCOUNTS}
    service = {
        (a.group, a.account_type.value, a.appid, a.user_name)
        for a in service_release.RELEASE_TEST_ACCOUNTS
    }
    assert len(mock) == len(service) == 10, reread(RELEASE_DOC)
    assert mock == service, (
        reread(RELEASE_DOC) + " (mind group 2's gh_ id: the Chinese page's, not the English "
        f"copy of group 4's). Only the mock: {sorted(mock - service)}; "
        f"only the service: {sorted(service - mock)}"
    )


def test_the_release_groups_and_their_order() -> None:
    assert protocol.RELEASE_GROUP_NUMBERS == service_release.RELEASE_TEST_GROUPS, reread(
        RELEASE_DOC
    )
    for group, pair in protocol.RELEASE_GROUPS.items():
        theirs = service_release.accounts_of_group(group)
        assert [a.appid for a in pair] == [a.appid for a in theirs], reread(RELEASE_DOC)


def test_the_service_finds_each_test_account_the_mock_writes_from() -> None:
    for account in protocol.RELEASE_ACCOUNTS:
        by_appid = service_release.release_test_account(appid=account.appid)
        by_name = service_release.release_test_account(user_name=account.user_name)
        assert by_appid is not None and by_appid == by_name, reread(RELEASE_DOC)
        assert protocol.USER_NAME.fullmatch(by_appid.user_name), reread(RELEASE_DOC)


def test_the_release_check_texts() -> None:
    mock = (
        protocol.PROBE_TEXT,
        protocol.PROBE_TEXT_ANSWER,
        protocol.QUERY_AUTH_CODE_PREFIX,
        protocol.API_ANSWER_SUFFIX,
        protocol.EVENT_ANSWER_SUFFIX,
    )
    service = (
        service_release.TEXT_PROBE,
        service_release.TEXT_REPLY,
        service_release.QUERY_AUTH_CODE_PREFIX,
        service_release.API_REPLY_SUFFIX,
        service_release.EVENT_REPLY_SUFFIX,
    )
    assert mock == service, reread(RELEASE_TEXTS)


# ----- auth_type and biz_appid --------------------------------------------------------------


def test_the_auth_type_table() -> None:
    mock = {v: sorted(k.value for k in kinds) for v, kinds in protocol.AUTH_TYPE_LISTS.items()}
    service = {v: sorted(k.value for k in t.shows) for v, t in service_accounts.AUTH_TYPES.items()}
    assert mock == service, reread(SEED)


def test_the_auth_type_a_biz_appid_stands_for() -> None:
    mock = {k.value: v for k, v in protocol.AUTH_TYPE_OF_KIND.items()}
    service = {k.value: v for k, v in service_accounts.AUTH_TYPE_FOR_ACCOUNT.items()}
    assert mock == service, reread(SEED)


# ----- api_get_authorizer_info --------------------------------------------------------------


@pytest.mark.parametrize("kind", list(AccountKind))
def test_the_service_tells_each_kind_by_the_mock_marker(kind: AccountKind) -> None:
    spec = AccountSpec(type=kind, nick_name="号", principal_name="某公司", admin="alice")
    info = authorizer_info(new_account(spec, "wx0123456789abcdef", 0.0))
    assert service_accounts.account_type_of(info) is AccountType(kind.value), reread(INFO_DOC)


# ----- identifiers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("appid", "valid"),
    [
        *((a.appid, True) for a in protocol.RELEASE_ACCOUNTS),
        ("wx0123456789abcdef", True),
        ("wx0123456789abcde", False),
        ("wx0123456789abcdef0", False),
        ("wx0123456789ABCDEF", False),
        ("wx0123456789abcdeg", False),
        ("gh_3c884a361561", False),
        (" wx0123456789abcdef", False),
        ("wx0123456789abcdef ", False),
        ("wx0123456789abcdef\n", False),  # "$" would have let the newline through
    ],
)
def test_what_an_appid_is(appid: str, valid: bool) -> None:
    mock = protocol.APPID.fullmatch(appid) is not None
    service = service_accounts.APPID_PATTERN.match(appid) is not None
    assert mock == service == valid, reread(APPID_DOC)


# ----- permission sets --------------------------------------------------------------------------

DOCUMENTED = (AccountKind.OFFICIAL_ACCOUNT, AccountKind.MINI_PROGRAM)


@pytest.mark.parametrize("kind", DOCUMENTED)
def test_the_permission_set_ids_per_kind(kind: AccountKind) -> None:
    mock = [s.id for s in protocol.sets_of(kind)]
    service = [s.id for s in service_accounts.permission_sets_for(AccountType(kind.value))]
    assert mock == service, reread(SETS_DOC)


def test_the_made_up_permission_sets_are_one_convention() -> None:
    """Promoters', channels' and talent's sets: the ids both sides use are the mock's own
    (900 and up), not a reading; the service must still name the ids the mock grants."""
    for kind in set(AccountKind) - set(DOCUMENTED):
        mock = [s.id for s in protocol.sets_of(kind)]
        service = [s.id for s in service_accounts.permission_sets_for(AccountType(kind.value))]
        assert mock == service and all(i >= 900 for i in mock), (
            f"{kind.value}: the mock grants {mock}, the service knows {service}; keep them "
            "one convention, or both move to ids from " + SETS_DOC
        )


def test_no_kind_has_sets_on_one_side_only() -> None:
    mock = {k.value for k, sets in protocol.PERMISSION_SETS.items() if sets}
    service = {t.value for t in AccountType if service_accounts.permission_sets_for(AccountType(t))}
    assert mock == service, reread(SETS_DOC)
