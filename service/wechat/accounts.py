"""Account types, the ``auth_type`` values of the authorization pages, and permission sets.

Facts shared by the service (links, entry page, result page) and the mock (which accounts
its pages list). Sources: the seed 授权流程技术说明 (auth_type table) and the open platform's
permission-set pages (protocol §3.4, §4.2).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# An appid is 'wx' followed by 16 lowercase hex digits (protocol §0).
APPID_PATTERN = re.compile(r"\Awx[0-9a-f]{16}\Z")  # \Z: "$" would allow a trailing "\n"


class AccountType(StrEnum):
    OFFICIAL_ACCOUNT = "official_account"  # 公众号
    MINI_PROGRAM = "mini_program"  # 小程序
    PROMOTER = "promoter"  # 小程序推客
    CHANNELS = "channels"  # 视频号
    TALENT = "talent"  # 带货助手
    STORE = "store"  # 微信小店
    SUPPLIER = "supplier"  # 供货商

    @property
    def label(self) -> str:
        return ACCOUNT_TYPE_LABELS[self]


ACCOUNT_TYPE_LABELS: Mapping[AccountType, str] = {
    AccountType.OFFICIAL_ACCOUNT: "公众号 (official account)",
    AccountType.MINI_PROGRAM: "小程序 (mini program)",
    AccountType.PROMOTER: "小程序推客 (mini-program promoter)",
    AccountType.CHANNELS: "视频号 (channels)",
    AccountType.TALENT: "带货助手 (talent assistant)",
    AccountType.STORE: "微信小店 (WeChat store)",
    AccountType.SUPPLIER: "供货商 (supplier)",
}


@dataclass(frozen=True)
class AuthType:
    """One ``auth_type`` value: which account types the authorization page lists."""

    value: int
    label: str
    shows: frozenset[AccountType]


_OA, _MP = AccountType.OFFICIAL_ACCOUNT, AccountType.MINI_PROGRAM

# The seed's table. 7 is not defined there, so it is refused.
AUTH_TYPES: Mapping[int, AuthType] = {
    t.value: t
    for t in (
        AuthType(1, "公众号 (official account)", frozenset({_OA})),
        AuthType(2, "小程序 (mini program)", frozenset({_MP})),
        AuthType(3, "公众号和小程序 (official account and mini program)", frozenset({_OA, _MP})),
        AuthType(4, "小程序推客 (mini-program promoter)", frozenset({AccountType.PROMOTER})),
        AuthType(5, "视频号 (channels)", frozenset({AccountType.CHANNELS})),
        AuthType(
            6,
            "全部: 公众号、小程序、视频号 (all)",
            frozenset({_OA, _MP, AccountType.CHANNELS}),
        ),
        AuthType(8, "带货助手 (talent assistant)", frozenset({AccountType.TALENT})),
    )
}

# The auth_type a biz_appid of each type stands for: biz_appid wins over auth_type (§4.2).
AUTH_TYPE_FOR_ACCOUNT: Mapping[AccountType, int] = {
    _OA: 1,
    _MP: 2,
    AccountType.PROMOTER: 4,
    AccountType.CHANNELS: 5,
    AccountType.TALENT: 8,
}

# Which api_get_authorizer_info field marks which account type (protocol §3.6). The
# promoter marker is not documented (UNCONFIRMED); the mock sends it.
_INFO_MARKERS: tuple[tuple[str, AccountType], ...] = (
    ("channels_info", AccountType.CHANNELS),
    ("store_info", AccountType.STORE),
    ("talent_info", AccountType.TALENT),
    ("supplier_info", AccountType.SUPPLIER),
    ("promoter_info", AccountType.PROMOTER),
    ("MiniProgramInfo", AccountType.MINI_PROGRAM),
)


def account_type_of(authorizer_info: Mapping[str, Any]) -> AccountType:
    """The account type an ``authorizer_info`` object describes; official account by default."""
    for key, kind in _INFO_MARKERS:
        if key in authorizer_info:
            return kind
    return AccountType.OFFICIAL_ACCOUNT


@dataclass(frozen=True)
class PermissionSet:
    """A 权限集 (funcscope_category) and the account types it is offered to."""

    id: int
    name: str
    account_types: frozenset[AccountType]


_CH, _TA, _PR = AccountType.CHANNELS, AccountType.TALENT, AccountType.PROMOTER


def _sets(kind: frozenset[AccountType], *items: tuple[int, str]) -> list[PermissionSet]:
    return [PermissionSet(i, name, kind) for i, name in items]


# Official account and mini program ids and names are from the open platform's permission
# set pages. WeChat does not publish the channels, talent and promoter sets' ids; the ids
# below for them are the mock's own (UNCONFIRMED), kept apart from the documented range.
PERMISSION_SETS: Mapping[int, PermissionSet] = {
    s.id: s
    for s in [
        *_sets(
            frozenset({_OA}),
            (1, "消息管理"),
            (2, "用户管理"),
            (3, "帐号服务"),
            (4, "网页服务"),
            (5, "微信小店"),
            (6, "微信多客服"),
            (7, "群发与通知"),
            (8, "微信卡券"),
            (9, "微信扫一扫"),
            (10, "微信连WIFI"),
            (11, "素材管理"),
            (12, "微信摇周边"),
            (13, "微信门店"),
            (15, "自定义菜单"),
            (22, "城市服务"),
            (23, "广告管理"),
            (24, "开放平台帐号管理"),
            (26, "微信电子发票"),
            (33, "小程序管理"),
        ),
        *_sets(
            frozenset({_MP}),
            (17, "帐号管理 (获取小程序码)"),
            (18, "开发管理与数据分析"),
            (19, "客服消息管理"),
            (25, "开放平台帐号管理"),
            (30, "小程序基本信息设置"),
            (31, "小程序认证名称检测"),
            (37, "附近的小程序管理"),
            (40, "小程序插件管理"),
        ),
        *_sets(frozenset({_PR}), (900, "推客带货管理")),
        *_sets(frozenset({_CH}), (910, "视频号直播管理"), (911, "视频号橱窗管理")),
        *_sets(frozenset({_TA}), (920, "带货助手商品管理")),
    ]
}


def permission_set_name(category_id: int, given: str | None = None) -> str:
    """A permission set's display name: ours, else the one WeChat sent, else its id."""
    known = PERMISSION_SETS.get(category_id)
    if known is not None:
        return known.name
    return given or f"权限集 {category_id}"


def permission_sets_for(kind: AccountType) -> list[PermissionSet]:
    return [s for s in PERMISSION_SETS.values() if kind in s.account_types]
