"""Merchant accounts (公众号, 小程序, 视频号, ...) and the ``authorizer_info`` WeChat gives.

An account is what a merchant's admin may authorize to a component on the authorization
pages. The facts about account kinds are the mock's own reading, in ``protocol``.
``AccountBook`` takes the state's one lock, handed to it by ``MockWeChat``.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from mock_wechat.clock import Clock
from mock_wechat.config import InvalidField
from mock_wechat.protocol import APPID, AUTH_TYPE_OF_KIND, INFO_MARKERS, USER_NAME, AccountKind

# The account kinds an authorization page can list (every one has an auth_type).
SUPPORTED_TYPES: frozenset[AccountKind] = frozenset(AUTH_TYPE_OF_KIND)


class AccountStatus(IntEnum):
    """``account_status`` of api_get_authorizer_info (protocol §3.6)."""

    NORMAL = 1
    CANCELLED = 14  # 已注销
    BANNED = 16  # 已封禁
    WARNED = 18  # 已告警
    FROZEN = 19  # 已冻结


# Cancelled, banned and frozen accounts are never listed on the pages (protocol §4.2).
UNLISTED_STATUSES = frozenset({AccountStatus.CANCELLED, AccountStatus.BANNED, AccountStatus.FROZEN})

_OA, _MP = AccountKind.OFFICIAL_ACCOUNT, AccountKind.MINI_PROGRAM
# service_type_info.id: official accounts 0 订阅号, 1 upgraded 订阅号, 2 服务号 (§3.6); mini
# programs 0 普通小程序, 4 小游戏, 10 小商店, 12 试用小程序. Other types: 0 (UNCONFIRMED).
SERVICE_TYPES: Mapping[AccountKind, frozenset[int]] = {
    _OA: frozenset({0, 1, 2}),
    _MP: frozenset({0, 4, 10, 12}),
}
DEFAULT_SERVICE_TYPE: Mapping[AccountKind, int] = {_OA: 2}
# verify_type_info.id: -1 未认证, 0 微信认证, 1-5 微博/资质 variants (§3.6).
VERIFY_TYPES = frozenset(range(-1, 6))


class UnknownAccountError(LookupError):
    def __init__(self, appid: str) -> None:
        self.appid = appid
        super().__init__(f"unknown account {appid!r}")


class DuplicateAccountError(ValueError):
    def __init__(self, appid: str) -> None:
        self.appid = appid
        super().__init__(f"account {appid} already exists")


def parse_account_type(value: str) -> AccountKind:
    try:
        kind = AccountKind(value)
    except ValueError:
        kind = None
    if kind not in SUPPORTED_TYPES:
        allowed = ", ".join(sorted(t.value for t in SUPPORTED_TYPES))
        raise InvalidField("type", f"must be one of {allowed}")
    assert kind is not None
    return kind


@dataclass(frozen=True)
class AccountSpec:
    """A validated ``POST /_mock/accounts``; ``None`` means "make one up"."""

    type: AccountKind
    nick_name: str
    principal_name: str
    admin: str
    appid: str | None = None
    user_name: str | None = None
    alias: str = ""
    head_img: str | None = None
    signature: str = ""
    service_type: int | None = None
    verify_type: int = 0
    account_status: int = int(AccountStatus.NORMAL)

    def __post_init__(self) -> None:
        for name in ("nick_name", "principal_name", "admin"):
            if not getattr(self, name):
                raise InvalidField(name, "must be a non-empty string")
        if self.appid is not None and not APPID.fullmatch(self.appid):
            raise InvalidField("appid", "must be wx followed by 16 lowercase hex digits")
        if self.user_name is not None and not USER_NAME.fullmatch(self.user_name):
            raise InvalidField("user_name", "must be gh_ followed by 12 lowercase hex digits")
        allowed = SERVICE_TYPES.get(self.type, frozenset({0}))
        if self.service_type is not None and self.service_type not in allowed:
            values = ", ".join(str(v) for v in sorted(allowed))
            raise InvalidField("service_type", f"must be one of {values} for {self.type.value}")
        if self.verify_type not in VERIFY_TYPES:
            raise InvalidField("verify_type", "must be an integer from -1 to 5")
        if self.account_status not in {s.value for s in AccountStatus}:
            values = ", ".join(str(s.value) for s in AccountStatus)
            raise InvalidField("account_status", f"must be one of {values}")


@dataclass(frozen=True)
class Account:
    appid: str
    type: AccountKind
    nick_name: str
    principal_name: str
    admin: str  # the admin's WeChat id: who may authorize it
    user_name: str
    alias: str
    head_img: str
    signature: str
    service_type: int
    verify_type: int
    account_status: int
    qrcode_url: str
    created_at: float

    @property
    def listable(self) -> bool:
        return self.account_status not in UNLISTED_STATUSES

    def public(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["type"] = self.type.value
        return data


def _image_url(host: str, path: str) -> str:
    return f"http://{host}/{path}/{secrets.token_urlsafe(48)}/0"


def new_account(spec: AccountSpec, appid: str, now: float) -> Account:
    return Account(
        appid=appid,
        type=spec.type,
        nick_name=spec.nick_name,
        principal_name=spec.principal_name,
        admin=spec.admin,
        user_name=spec.user_name or "gh_" + secrets.token_hex(6),
        alias=spec.alias,
        head_img=spec.head_img or _image_url("wx.qlogo.cn", "mmopen"),
        signature=spec.signature,
        service_type=(
            spec.service_type
            if spec.service_type is not None
            else DEFAULT_SERVICE_TYPE.get(spec.type, 0)
        ),
        verify_type=spec.verify_type,
        account_status=spec.account_status,
        qrcode_url=_image_url("mmbiz.qpic.cn", "mmbiz_jpg"),
        created_at=now,
    )


def authorizer_info(account: Account) -> dict[str, Any]:
    """The ``authorizer_info`` object of api_get_authorizer_info (protocol §3.6)."""
    info: dict[str, Any] = {
        "nick_name": account.nick_name,
        "head_img": account.head_img,
        "service_type_info": {"id": account.service_type},
        "verify_type_info": {"id": account.verify_type},
        "user_name": account.user_name,
        "alias": account.alias,
        "qrcode_url": account.qrcode_url,
        "business_info": {
            "open_pay": 0,
            "open_shake": 0,
            "open_scan": 0,
            "open_card": 0,
            "open_store": 0,
        },
        "idc": 1,
        "principal_name": account.principal_name,
        "signature": account.signature,
    }
    info.update(_type_specific(account))
    info["register_type"] = 0
    info["account_status"] = account.account_status
    info["basic_config"] = {"is_phone_configured": True, "is_email_configured": True}
    return info


def _type_specific(account: Account) -> dict[str, Any]:
    """The one marker object a client tells the account's kind by (protocol §3.6), under
    the name ``protocol.INFO_MARKERS`` gives; an official account has none."""
    marker = INFO_MARKERS[account.type]
    if marker is None:
        return {}
    if account.type is AccountKind.MINI_PROGRAM:
        domains = ("RequestDomain", "WsRequestDomain", "UploadDomain", "DownloadDomain")
        network: dict[str, list[str]] = {name: [] for name in domains}
        network.update(BizDomain=[], UDPDomain=[])
        return {
            marker: {
                "network": network,
                "categories": [{"first": "生活服务", "second": "丽人服务"}],
                "visit_status": 0,
            }
        }
    # UNCONFIRMED: the newer doc names channels_info and talent_info but not their
    # contents, and no marker for promoters; these are small plausible objects of the
    # mock's own.
    return {marker: {"nickname": account.nick_name, "status": 1}}


class AccountBook:
    """The known merchant accounts, in creation order."""

    def __init__(self, lock: threading.RLock, clock: Clock) -> None:
        self._lock = lock
        self._clock = clock
        self._accounts: dict[str, Account] = {}

    def clear(self) -> None:
        with self._lock:
            self._accounts = {}

    def add(self, spec: AccountSpec) -> Account:
        with self._lock:
            appid = spec.appid
            if appid is None:
                appid = "wx" + secrets.token_hex(8)
                while appid in self._accounts:
                    appid = "wx" + secrets.token_hex(8)
            elif appid in self._accounts:
                raise DuplicateAccountError(appid)
            account = new_account(spec, appid, self._clock.now())
            self._accounts[appid] = account
            return account

    def get(self, appid: str) -> Account:
        account = self.find(appid)
        if account is None:
            raise UnknownAccountError(appid)
        return account

    def find(self, appid: str) -> Account | None:
        with self._lock:
            return self._accounts.get(appid)

    def all(self) -> list[Account]:
        with self._lock:
            return list(self._accounts.values())

    def admins(self) -> list[str]:
        """The distinct admins of the known accounts, sorted."""
        with self._lock:
            return sorted({a.admin for a in self._accounts.values()})
