"""WeChat error codes and their errmsg texts (protocol §3.1, §3.10).

Current WeChat servers append a request id to every errmsg (`` rid: 8hex-8hex-8hex``);
the mock does the same so clients learn to branch on ``errcode`` only.
"""

from __future__ import annotations

import secrets

SYSTEM_ERROR = -1
OK = 0
INVALID_CREDENTIAL = 40001
INVALID_OPENID = 40003
INVALID_MESSAGE_TYPE = 40008
INVALID_APPID = 40013
INVALID_APPSECRET = 40125
ACCESS_TOKEN_MISSING = 41001
APPID_MISSING = 41002
APPSECRET_MISSING = 41004
ACCESS_TOKEN_EXPIRED = 42001
EMPTY_POST_DATA = 44002
EMPTY_CONTENT = 44004
QUOTA_EXCEEDED = 45009
OUT_OF_TIME_LIMIT = 45015  # no user message in the last 48 h: the custom-message window
DATA_FORMAT_ERROR = 47001
API_UNAUTHORIZED = 48001
CLEAR_QUOTA_LIMIT = 48006
NOT_AUTHORIZED = 61003
TICKET_EXPIRED = 61005
TICKET_INVALID = 61006
API_UNAUTHORIZED_TO_COMPONENT = 61007
CODE_INVALID = 61009
CODE_EXPIRED = 61010
INVALID_OPTION_NAME = 61012
INVALID_OPTION_VALUE = 61013
REFRESH_TOKEN_INVALID = 61023
# Open platform account management (protocol §8; errmsg texts as real replies show them,
# 89002 and 89004 approximated).
OPEN_ALREADY_BOUND = 89000
OPEN_NOT_SAME_CONTRACTOR = 89001
OPEN_NOT_BOUND = 89002
OPEN_NOT_CREATED_BY_API = 89003
OPEN_MEMBER_LIMIT = 89004

ERRMSG: dict[int, str] = {
    SYSTEM_ERROR: "system error",
    OK: "ok",
    INVALID_CREDENTIAL: "invalid credential, access_token is invalid or not latest",
    INVALID_OPENID: "invalid openid",
    INVALID_MESSAGE_TYPE: "invalid message type",
    INVALID_APPID: "invalid appid",
    40014: "invalid access_token",
    INVALID_APPSECRET: "invalid appsecret",
    ACCESS_TOKEN_MISSING: "access_token missing",
    APPID_MISSING: "appid missing",
    APPSECRET_MISSING: "appsecret missing",
    ACCESS_TOKEN_EXPIRED: "access_token expired",
    EMPTY_POST_DATA: "empty post data",
    EMPTY_CONTENT: "empty content",
    QUOTA_EXCEEDED: "reach max api daily quota limit",
    OUT_OF_TIME_LIMIT: "response out of time limit or subscription is canceled",
    DATA_FORMAT_ERROR: "data format error",
    API_UNAUTHORIZED: "api unauthorized",
    CLEAR_QUOTA_LIMIT: "forbid to clear quota because of reaching the limit",
    61000: "invalid component type",
    61001: "component type and component appid is not match",
    61002: "the third appid is not open KF",
    NOT_AUTHORIZED: "component is not authorized by this account",
    61004: "access clientip is not registered",
    TICKET_EXPIRED: "component ticket is expired",
    TICKET_INVALID: "component ticket is invalid",
    API_UNAUTHORIZED_TO_COMPONENT: "api is unauthorized to component",
    61008: "component req key is duplicated",
    CODE_INVALID: "code is invalid",
    CODE_EXPIRED: "code is expired",
    61011: "invalid component",
    INVALID_OPTION_NAME: "invalid option name",
    INVALID_OPTION_VALUE: "invalid option value",
    61014: "must use component token for component api",
    61015: "must use biz account token for not component api",
    61016: "function category of API need be confirmed by component",
    61017: "function category is not authorized",
    61018: "already confirm",
    61019: "not need confirm",
    61020: "err parameter",
    61021: "can't confirm",
    61022: "can't resubmit",
    REFRESH_TOKEN_INVALID: "refresh_token is invalid",
    61024: "must use api(api_component_token) to get token for component acct",
    OPEN_ALREADY_BOUND: "account has bound open",
    OPEN_NOT_SAME_CONTRACTOR: "not same contractor",
    OPEN_NOT_BOUND: "open not exists",
    OPEN_NOT_CREATED_BY_API: "open is not created by api",
    OPEN_MEMBER_LIMIT: "number of sub-accounts bound to the open account reaches the limit",
}


def new_rid() -> str:
    """A request id shaped like WeChat's: three groups of 8 lowercase hex digits."""
    return "-".join(secrets.token_hex(4) for _ in range(3))


def errmsg(errcode: int) -> str:
    """The errmsg WeChat would send for ``errcode``, with a fresh ``rid`` suffix."""
    text = ERRMSG.get(errcode, "unknown error")
    return f"{text} rid: {new_rid()}"


def error_body(errcode: int) -> dict[str, int | str]:
    return {"errcode": errcode, "errmsg": errmsg(errcode)}


class MockApiError(Exception):
    """A business error answered as HTTP 200 ``{"errcode": N, "errmsg": ...}``."""

    def __init__(self, errcode: int) -> None:
        self.errcode = errcode
        super().__init__(f"WeChat errcode {errcode}: {ERRMSG.get(errcode, 'unknown error')}")

    def body(self) -> dict[str, int | str]:
        return error_body(self.errcode)
