"""WeChat's tables as the mock reads them from the documents, on its own.

The mock examines the service, so it keeps its own reading of the documents instead of
importing the service's: a misreading shared by both sides would pass every test. Where
both read the same document, ``tests/mock_wechat/test_protocol_agreement.py`` makes the
two readings meet, and names the document to re-read when they part.

Sources, by table:

- account kinds, ``auth_type`` and ``biz_appid``: the seed 授权流程技术说明 (shared/seeds,
  二、1 授权链接参数说明), protocol §4.2;
- the marker objects of api_get_authorizer_info: protocol §3.6;
- appids and gh_ ids: protocol §0 and the test-account table of the messages doc §4.1;
- permission sets: the open platform's 公众号权限集 and 小程序权限集 pages
  (Third-party_Platforms/2.0/product/offical_account_authority.html and
  miniprogram_authority.html); protocol §3.4 shows ids 1 and 18 in func_info;
- the 全网发布 test accounts and texts: the messages doc §4.1-§4.2.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class AccountKind(StrEnum):
    """The kinds of account the mock's merchants hold; the values are the control plane's
    words (``POST /_mock/accounts {"type": ...}``)."""

    OFFICIAL_ACCOUNT = "official_account"  # 公众号 (服务号 and 订阅号)
    MINI_PROGRAM = "mini_program"  # 小程序
    PROMOTER = "promoter"  # 小程序推客账号
    CHANNELS = "channels"  # 视频号
    TALENT = "talent"  # 带货助手账号

    @property
    def label(self) -> str:
        """How the mock's authorization pages name the kind."""
        return LABELS[self]


_OA = AccountKind.OFFICIAL_ACCOUNT
_MP = AccountKind.MINI_PROGRAM

LABELS: Mapping[AccountKind, str] = {
    _OA: "公众号 (official account)",
    _MP: "小程序 (mini program)",
    AccountKind.PROMOTER: "小程序推客 (mini-program promoter)",
    AccountKind.CHANNELS: "视频号 (channels)",
    AccountKind.TALENT: "带货助手 (talent assistant)",
}

# ----- auth_type and biz_appid (the seed, 二、1) ----------------------------------------

# auth_type -> the kinds the page lists. The seed: "1 表示手机端仅展示公众号；2 表示仅展示
# 小程序，3 表示公众号和小程序都展示。4表示小程序推客账号；5表示视频号账号；6表示全部，
# 即公众号、小程序、视频号都展示；8表示带货助手账号". 7 is not in the table: refused.
AUTH_TYPE_LISTS: Mapping[int, frozenset[AccountKind]] = {
    1: frozenset({_OA}),
    2: frozenset({_MP}),
    3: frozenset({_OA, _MP}),
    4: frozenset({AccountKind.PROMOTER}),
    5: frozenset({AccountKind.CHANNELS}),
    6: frozenset({_OA, _MP, AccountKind.CHANNELS}),
    8: frozenset({AccountKind.TALENT}),
}
# "如果为未指定，则默认小程序和公众号都展示": no auth_type lists what 3 lists.
DEFAULT_AUTH_TYPE = 3


def _auth_type_of(kind: AccountKind) -> int:
    """The auth_type that lists ``kind`` alone: what a biz_appid of that kind stands for.
    The seed: "auth_type=1，但是biz_appid是小程序的appid，则会按照auth_type=2来处理"."""
    [value] = [v for v, kinds in AUTH_TYPE_LISTS.items() if kinds == {kind}]
    return value


# kind -> the auth_type a biz_appid of that kind is handled as (biz_appid wins, §4.2).
AUTH_TYPE_OF_KIND: Mapping[AccountKind, int] = {kind: _auth_type_of(kind) for kind in AccountKind}

# ----- api_get_authorizer_info (protocol §3.6) -------------------------------------------

# kind -> the object api_get_authorizer_info adds for it, by which a client tells the kind.
# "MiniProgramInfo is present only for mini programs"; the newer document adds
# channels_info (视频号) and talent_info (带货助手) (and store_info, supplier_info for kinds
# the mock does not hold). A promoter's marker is not documented: promoter_info is the
# mock's own (UNCONFIRMED). An official account has none.
INFO_MARKERS: Mapping[AccountKind, str | None] = {
    _OA: None,
    _MP: "MiniProgramInfo",
    AccountKind.PROMOTER: "promoter_info",
    AccountKind.CHANNELS: "channels_info",
    AccountKind.TALENT: "talent_info",
}

# ----- identifiers -------------------------------------------------------------------------

# "appids: wx + 16 hex digits" (protocol §0); every appid seen is lowercase.
APPID = re.compile(r"wx[0-9a-f]{16}")
# An account's user name (原始ID): gh_ and 12 lowercase hex digits, as in messages doc §4.1.
USER_NAME = re.compile(r"gh_[0-9a-f]{12}")

# ----- permission sets (权限集) --------------------------------------------------------------


@dataclass(frozen=True)
class PermissionSet:
    id: int
    name: str


def _sets(*pairs: tuple[int, str]) -> tuple[PermissionSet, ...]:
    return tuple(PermissionSet(i, name) for i, name in pairs)


# kind -> the sets the mock's component has released for it, in id order: the pages offer
# them and a pre-authorized or seeded account is granted them all. Official account and
# mini program ids and names are from the 公众号权限集 / 小程序权限集 pages (the mock
# offers a part of each list). The documents give no ids the mock uses for promoters,
# channels and talent: 900 and up are the mock's own (UNCONFIRMED).
PERMISSION_SETS: Mapping[AccountKind, tuple[PermissionSet, ...]] = {
    _OA: _sets(
        (1, "消息管理"),
        (2, "用户管理"),
        (3, "账号服务"),
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
        (15, "菜单管理"),
        (22, "城市服务"),
        (23, "广告管理"),
        (24, "开放平台账号管理"),
        (26, "微信电子发票"),
        (33, "小程序关联管理"),
    ),
    _MP: _sets(
        (17, "获取小程序码"),
        (18, "小程序开发与数据分析"),
        (19, "小程序客服管理"),
        (25, "开放平台账号管理"),
        (30, "小程序基本信息管理"),
        (31, "小程序认证名称检测"),
        (37, "附近的小程序管理"),
        (40, "小程序插件管理"),
    ),
    AccountKind.PROMOTER: _sets((900, "推客带货管理")),
    AccountKind.CHANNELS: _sets((910, "视频号直播管理"), (911, "视频号橱窗管理")),
    AccountKind.TALENT: _sets((920, "带货助手商品管理")),
}


def sets_of(kind: AccountKind) -> tuple[PermissionSet, ...]:
    return PERMISSION_SETS[kind]


# ----- the 全网发布 check (messages doc §4) ---------------------------------------------


@dataclass(frozen=True)
class ReleaseAccount:
    """One of the ten accounts WeChat's release check writes from."""

    group: int
    kind: AccountKind
    appid: str
    user_name: str  # the gh_ id: ToUserName of what is sent to it


# The doc's table, row by row: group | official account appid / Username | mini program
# appid / Username. Group 2's official account: the English page gives gh_26128078e9ab,
# group 4's user name repeated by mistake; the Chinese page's gh_c0f28a78b318 is used.
_TABLE = (
    (1, "wx570bc396a51b8ff8", "gh_3c884a361561", "wxd101a85aa106f53e", "gh_8dad206e9538"),
    (2, "wx9252c5e0bb1836fc", "gh_c0f28a78b318", "wxc39235c15087f6f3", "gh_905ae9d01059"),
    (3, "wx8e1097c5bc82cde9", "gh_3f222ed8d140", "wx7720d01d4b2a4500", "gh_393666f1fdf4"),
    (4, "wx14550af28c71a144", "gh_26128078e9ab", "wx05d483572dcd5d8b", "gh_39abb5d4e1b7"),
    (5, "wxa35b9c23cfe664eb", "gh_2b3713f184a6", "wx5910277cae6fd970", "gh_7818dcb60240"),
)

# group -> (its official account, its mini program), the order the check visits them.
RELEASE_GROUPS: Mapping[int, tuple[ReleaseAccount, ReleaseAccount]] = {
    group: (ReleaseAccount(group, _OA, oa, oa_name), ReleaseAccount(group, _MP, mp, mp_name))
    for group, oa, oa_name, mp, mp_name in _TABLE
}
RELEASE_GROUP_NUMBERS: tuple[int, ...] = tuple(sorted(RELEASE_GROUPS))
RELEASE_ACCOUNTS: tuple[ReleaseAccount, ...] = tuple(
    account for group in RELEASE_GROUP_NUMBERS for account in RELEASE_GROUPS[group]
)

# What the check sends and the answers it wants (§4.2, and the legacy event case).
PROBE_TEXT = "TESTCOMPONENT_MSG_TYPE_TEXT"  # wants a passive text reply ...
PROBE_TEXT_ANSWER = "TESTCOMPONENT_MSG_TYPE_TEXT_callback"  # ... of exactly this
QUERY_AUTH_CODE_PREFIX = "QUERY_AUTH_CODE:"  # + the code: wants "" then a custom message ...
API_ANSWER_SUFFIX = "_from_api"  # ... of the code, queryauthcode@@@ and all, + this
EVENT_ANSWER_SUFFIX = "from_callback"  # an event: a passive text of <Event> + this
