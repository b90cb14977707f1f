"""The APIs a component calls on an authorizer's behalf: permission sets, requests, answers.

Protocol §8; the HTTP side's helpers for ``api_handlers``.

Each API needs one of a few permission sets (权限集) in the authorization, else 61007:

- account basic info: none beyond a live authorization (the newer document names sets 3
  and 30; the mock follows protocol §8, which asks for none);
- custom messages: 1 (official accounts) or 19 (mini programs); then the body (40003,
  40008, 44004, 47001), then the customer-service window (45015: the user has not written
  to the account in the last 48 h of mock time, ``deliveries``);
- mini-program categories: 18; an official account cannot hold 18, so it gets 61007;
- open platform account management: 24 (official accounts) or 25 (mini programs).

The token check (41001/40001/42001) comes first and the quota after it; both are the
caller's. Answers are shaped as the official documents show them; the values are the
mock's own where an account record has nothing to say (UNCONFIRMED). What is sent goes
to the state's ``outbox``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mock_wechat import errcodes as ec
from mock_wechat.api_bodies import text_field
from mock_wechat.errcodes import MockApiError
from mock_wechat.merchant_accounts import Account
from mock_wechat.outbox import CustomMessage
from mock_wechat.protocol import AccountKind

NO_SETS: frozenset[int] = frozenset()
CUSTOM_MESSAGE_SETS = frozenset({1, 19})
CATEGORY_SETS = frozenset({18})
OPEN_ACCOUNT_SETS = frozenset({24, 25})

# Message types of /cgi-bin/message/custom/send; each but text carries an object of its name.
MESSAGE_TYPES = frozenset(
    {
        "text",
        "image",
        "voice",
        "video",
        "music",
        "news",
        "mpnews",
        "mpnewsarticle",
        "msgmenu",
        "wxcard",
        "miniprogrampage",
        "link",
    }
)


@dataclass(frozen=True)
class Category:
    first_id: int
    first: str
    second_id: int
    second: str


# The one category every mock mini program has, matching its MiniProgramInfo (§3.6).
# The ids are the mock's own.
MINI_PROGRAM_CATEGORIES = (Category(150, "生活服务", 627, "丽人服务"),)


def require_sets(granted: Iterable[int], needed: frozenset[int]) -> None:
    """61007 unless the authorization holds one of ``needed`` (none needed: always fine)."""
    if needed and not needed.intersection(granted):
        raise MockApiError(ec.API_UNAUTHORIZED_TO_COMPONENT)


def check_appid(body: Mapping[str, Any], acting: str) -> None:
    """An optional ``appid`` in the body must be the token's own account: else 40013."""
    appid = text_field(body, "appid")
    if appid is not None and appid != acting:
        raise MockApiError(ec.INVALID_APPID)


def ok(**fields: Any) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", **fields}


# ----- account basic info --------------------------------------------------------------


def _account_type(account: Account) -> int:
    """1 订阅号, 2 服务号, 3 小程序; 0 for the other account types (the mock's own)."""
    if account.type is AccountKind.MINI_PROGRAM:
        return 3
    if account.type is AccountKind.OFFICIAL_ACCOUNT:
        return 2 if account.service_type == 2 else 1
    return 0


def _credential(principal_name: str) -> str:
    """An 18-character code shaped like a unified social credit code, stable per name."""
    digest = hashlib.sha256(principal_name.encode("utf-8")).hexdigest().upper()
    return "91" + digest[:16]


def basic_info(account: Account) -> dict[str, Any]:
    """/cgi-bin/account/getaccountbasicinfo (the newer getAccountBasicInfo document)."""
    personal = account.principal_name == "个人"
    verified = account.verify_type >= 0
    return ok(
        appid=account.appid,
        account_type=_account_type(account),
        principal_type=0 if personal else 1,  # 0 个人, 1 企业
        principal_name=account.principal_name,
        credential="" if personal else _credential(account.principal_name),
        realname_status=1,  # 1 实名验证成功
        wx_verify_info={
            "qualification_verify": verified,
            "naming_verify": verified,
            "annual_review": False,
        },
        signature_info={"signature": account.signature, "modify_used_count": 0, "modify_quota": 5},
        head_image_info={
            "head_image_url": account.head_img,
            "modify_used_count": 0,
            "modify_quota": 5,
        },
        nickname=account.nick_name,
        nickname_info={"nickname": account.nick_name, "modify_used_count": 0, "modify_quota": 2},
        registered_country=1,
        customer_type=1 if verified else 0,
    )


# ----- mini-program categories ---------------------------------------------------------


def wxopen_categories() -> dict[str, Any]:
    """/cgi-bin/wxopen/getcategory: the categories set, with the change quota."""
    return ok(
        categories=[
            {
                "first": c.first_id,
                "first_name": c.first,
                "second": c.second_id,
                "second_name": c.second,
                "audit_status": 3,  # 3 审核通过
                "audit_reason": "",
            }
            for c in MINI_PROGRAM_CATEGORIES
        ],
        limit=5,
        quota=5,
        category_limit=20,
    )


def wxa_categories() -> dict[str, Any]:
    """/wxa/get_category: the categories a code submission may name."""
    return ok(
        category_list=[
            {
                "first_class": c.first,
                "second_class": c.second,
                "first_id": c.first_id,
                "second_id": c.second_id,
            }
            for c in MINI_PROGRAM_CATEGORIES
        ]
    )


# ----- custom messages -----------------------------------------------------------------


def parse_custom_message(body: Mapping[str, Any]) -> CustomMessage:
    """``touser``, ``msgtype`` and its object: 40003 no user, 40008 bad type, 44004 no text."""
    touser = text_field(body, "touser")
    if touser is None:
        raise MockApiError(ec.INVALID_OPENID)
    msgtype = body.get("msgtype")
    if not isinstance(msgtype, str) or msgtype not in MESSAGE_TYPES:
        raise MockApiError(ec.INVALID_MESSAGE_TYPE)
    content = body.get(msgtype)
    if not isinstance(content, dict):
        if msgtype == "text":
            raise MockApiError(ec.EMPTY_CONTENT)
        raise MockApiError(ec.DATA_FORMAT_ERROR)
    if msgtype == "text" and not text_field(content, "content"):
        raise MockApiError(ec.EMPTY_CONTENT)
    return CustomMessage(touser, msgtype, dict(content))
