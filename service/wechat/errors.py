"""WeChat API errors: ``errcode`` becomes a typed exception (protocol §3.1, §3.10).

The message is built from errcode and errmsg only. Request parameters (secrets, tokens,
tickets) never reach an exception's text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

_T = TypeVar("_T")


class WeChatError(Exception):
    """Base of every failure talking to WeChat."""

    def __init__(self, errcode: int, errmsg: str, api: str = "") -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.api = api
        where = f"{api}: " if api else ""
        super().__init__(f"{where}WeChat error {errcode}: {errmsg}")

    @property
    def transient(self) -> bool:
        """True when retrying later may succeed without changing anything."""
        return False


class TransportError(WeChatError):
    """No usable answer: connection failure, timeout, HTTP error status or a non-JSON body.

    ``reached`` is False only when the request surely never reached WeChat (the connection
    could not be made): only then is a call that must not run twice safe to repeat.
    """

    def __init__(
        self, reason: str, api: str = "", http_status: int | None = None, reached: bool = True
    ) -> None:
        self.http_status = http_status
        self.reached = reached
        super().__init__(-2, reason, api)

    @property
    def transient(self) -> bool:
        return True


class SystemBusyError(WeChatError):
    """-1: WeChat is busy; retry with backoff."""

    @property
    def transient(self) -> bool:
        return True


class InvalidCredentialError(WeChatError):
    """40001 / 40014: the access token is invalid or has been superseded."""


class AccessTokenExpiredError(WeChatError):
    """42001: the access token has expired."""


class InvalidAppIdError(WeChatError):
    """40013."""


class InvalidAppSecretError(WeChatError):
    """40125."""


class IpNotWhitelistedError(WeChatError):
    """61004: the caller's egress IP is not on the platform's whitelist."""


class TicketExpiredError(WeChatError):
    """61005: the component_verify_ticket is older than 12 hours."""


class TicketInvalidError(WeChatError):
    """61006: the component_verify_ticket is unknown or garbled."""


class NotAuthorizedError(WeChatError):
    """61003: the account has not authorized this component (never, or it cancelled)."""


class AuthorizationCodeInvalidError(WeChatError):
    """61009: the authorization code is unknown, foreign or not an authorization code."""


class AuthorizationCodeExpiredError(WeChatError):
    """61010: the authorization code has expired or was used already."""


class RefreshTokenInvalidError(WeChatError):
    """61023: the authorizer must authorize again."""


class QuotaExceededError(WeChatError):
    """45009: the daily API quota is spent."""


class ClearQuotaLimitError(WeChatError):
    """48006: the 10 quota resets of the month are used up."""


class InvalidOptionError(WeChatError):
    """61012 (invalid option name) / 61013 (invalid option value)."""


ERRCODE_CLASSES: dict[int, type[WeChatError]] = {
    -1: SystemBusyError,
    40001: InvalidCredentialError,
    40014: InvalidCredentialError,
    42001: AccessTokenExpiredError,
    40013: InvalidAppIdError,
    40125: InvalidAppSecretError,
    61004: IpNotWhitelistedError,
    61005: TicketExpiredError,
    61006: TicketInvalidError,
    61003: NotAuthorizedError,
    61009: AuthorizationCodeInvalidError,
    61010: AuthorizationCodeExpiredError,
    61023: RefreshTokenInvalidError,
    45009: QuotaExceededError,
    48006: ClearQuotaLimitError,
    61012: InvalidOptionError,
    61013: InvalidOptionError,
}

# The token used for the call is no longer good: invalidate it (if unchanged) and retry once.
TOKEN_REJECTED = (InvalidCredentialError, AccessTokenExpiredError)


def retry_once_if_rejected(
    token: str,
    invalidate: Callable[[str], object],
    fresh_token: Callable[[], str],
    call: Callable[[str], _T],
) -> _T:
    """``call(token)``; if WeChat rejects the token, ``invalidate`` it and call once more
    with ``fresh_token()``. WeChat did nothing with a rejected call, so repeating is safe."""
    try:
        return call(token)
    except TOKEN_REJECTED:
        invalidate(token)
    return call(fresh_token())


def error_for(errcode: int, errmsg: str, api: str = "") -> WeChatError:
    return ERRCODE_CLASSES.get(errcode, WeChatError)(errcode, errmsg, api)
