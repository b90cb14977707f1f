"""The 全网发布 (full-network release) check: its ten test accounts and what it expects.

WeChat picks one of five groups at random, each an official account and a mini program,
pre-authorizes them to the platform, and sends them messages on the 消息与事件接收URL
(messages-and-release doc §4). Supporting only group 1, as most SDKs do, fails at random
with "暂没有测试资源". This table is the one place the accounts are listed; the service's
responder and the mock's release check both read it.

Group 2's official account is ``gh_c0f28a78b318`` in the Chinese document; the English
one repeats group 4's user name by mistake.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from service.wechat.accounts import AccountType

# What the check sends and expects back (§4.2).
TEXT_PROBE = "TESTCOMPONENT_MSG_TYPE_TEXT"  # answer with a passive text reply ...
TEXT_REPLY = TEXT_PROBE + "_callback"  # ... of exactly this content
QUERY_AUTH_CODE_PREFIX = "QUERY_AUTH_CODE:"  # answer empty, then a customer-service text ...
API_REPLY_SUFFIX = "_from_api"  # ... of the code (with its queryauthcode@@@ prefix) + this
EVENT_REPLY_SUFFIX = "from_callback"  # any event: a passive text reply <Event>from_callback


@dataclass(frozen=True)
class ReleaseTestAccount:
    group: int
    account_type: AccountType
    appid: str
    user_name: str  # the gh_ id: ToUserName of the messages sent to it


_OA, _MP = AccountType.OFFICIAL_ACCOUNT, AccountType.MINI_PROGRAM

RELEASE_TEST_ACCOUNTS: tuple[ReleaseTestAccount, ...] = (
    ReleaseTestAccount(1, _OA, "wx570bc396a51b8ff8", "gh_3c884a361561"),
    ReleaseTestAccount(1, _MP, "wxd101a85aa106f53e", "gh_8dad206e9538"),
    ReleaseTestAccount(2, _OA, "wx9252c5e0bb1836fc", "gh_c0f28a78b318"),
    ReleaseTestAccount(2, _MP, "wxc39235c15087f6f3", "gh_905ae9d01059"),
    ReleaseTestAccount(3, _OA, "wx8e1097c5bc82cde9", "gh_3f222ed8d140"),
    ReleaseTestAccount(3, _MP, "wx7720d01d4b2a4500", "gh_393666f1fdf4"),
    ReleaseTestAccount(4, _OA, "wx14550af28c71a144", "gh_26128078e9ab"),
    ReleaseTestAccount(4, _MP, "wx05d483572dcd5d8b", "gh_39abb5d4e1b7"),
    ReleaseTestAccount(5, _OA, "wxa35b9c23cfe664eb", "gh_2b3713f184a6"),
    ReleaseTestAccount(5, _MP, "wx5910277cae6fd970", "gh_7818dcb60240"),
)
RELEASE_TEST_GROUPS: tuple[int, ...] = tuple(sorted({a.group for a in RELEASE_TEST_ACCOUNTS}))

_BY_APPID: Mapping[str, ReleaseTestAccount] = {a.appid: a for a in RELEASE_TEST_ACCOUNTS}
_BY_USER_NAME: Mapping[str, ReleaseTestAccount] = {a.user_name: a for a in RELEASE_TEST_ACCOUNTS}


def release_test_account(
    appid: str | None = None, user_name: str | None = None
) -> ReleaseTestAccount | None:
    """The test account with this appid, else with this gh_ user name, else None."""
    return _BY_APPID.get(appid or "") or _BY_USER_NAME.get(user_name or "")


def is_release_test_appid(appid: str) -> bool:
    return appid in _BY_APPID


def accounts_of_group(group: int) -> tuple[ReleaseTestAccount, ...]:
    return tuple(a for a in RELEASE_TEST_ACCOUNTS if a.group == group)
