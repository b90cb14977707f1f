"""Account types from api_get_authorizer_info, and the shared fact tables."""

from __future__ import annotations

import pytest

from service.wechat.accounts import (
    AUTH_TYPE_FOR_ACCOUNT,
    AUTH_TYPES,
    PERMISSION_SETS,
    AccountType,
    account_type_of,
    permission_set_name,
    permission_sets_for,
)


@pytest.mark.parametrize(
    ("info", "kind"),
    [
        ({"nick_name": "x", "service_type_info": {"id": 2}}, AccountType.OFFICIAL_ACCOUNT),
        ({"MiniProgramInfo": {"network": {}}}, AccountType.MINI_PROGRAM),
        ({"channels_info": {}}, AccountType.CHANNELS),
        ({"talent_info": {}}, AccountType.TALENT),
        ({"store_info": {}}, AccountType.STORE),
        ({"supplier_info": {}}, AccountType.SUPPLIER),
        ({"promoter_info": {}}, AccountType.PROMOTER),
    ],
)
def test_account_type_comes_from_the_marker_field(
    info: dict[str, object], kind: AccountType
) -> None:
    assert account_type_of(info) == kind


def test_auth_type_table_matches_the_seed() -> None:
    assert sorted(AUTH_TYPES) == [1, 2, 3, 4, 5, 6, 8]
    assert AUTH_TYPES[3].shows == {AccountType.OFFICIAL_ACCOUNT, AccountType.MINI_PROGRAM}
    assert AUTH_TYPES[6].shows == {
        AccountType.OFFICIAL_ACCOUNT,
        AccountType.MINI_PROGRAM,
        AccountType.CHANNELS,
    }
    for kind, auth_type in AUTH_TYPE_FOR_ACCOUNT.items():
        assert AUTH_TYPES[auth_type].shows == {kind}


def test_every_listable_account_type_has_permission_sets() -> None:
    for kind in AUTH_TYPE_FOR_ACCOUNT:
        assert permission_sets_for(kind), kind
    assert PERMISSION_SETS[1].name == "消息管理"
    assert PERMISSION_SETS[18].name == "开发管理与数据分析"


def test_unknown_permission_set_names_fall_back() -> None:
    assert permission_set_name(1) == "消息管理"
    assert permission_set_name(4242, "新权限") == "新权限"
    assert permission_set_name(4242) == "权限集 4242"
