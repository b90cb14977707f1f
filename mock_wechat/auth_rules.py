"""The authorization flow's stateless rules: link parsing, the domain check, push messages.

Parsing the link's parameters, the domain check, the redirect with the code, and the push
messages (protocol §2.2, §4.2-§4.4).

``AuthRuleError.code`` is the pages' ``data-error`` value; its ``refusal`` says why, and the
HTTP side turns that into a status (the control plane: 400, 404, 409 or 403; the pages:
403 for the domain rule and 400 otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum
from urllib.parse import quote, urlsplit

from mock_wechat.grants import AUTH_CODE_TTL
from mock_wechat.protocol import AUTH_TYPE_LISTS
from mock_wechat.wire import to_xml

AUTHORIZED = "authorized"
UPDATEAUTHORIZED = "updateauthorized"
UNAUTHORIZED = "unauthorized"

_ID = re.compile(r"[0-9]{1,9}")  # not str.isdigit(): it takes digits int() refuses, like ²

# Protocol §4.3, verbatim; the Referer's host name (or 空) follows the colon.
REFERER_ERROR = (
    "请确认授权入口页所在域名，与授权后回调页所在域名相同，并且，此两者都必须与申请第三方平台"
    "时填写的授权发起页域名相同。授权入口页所在域名："
)


class Refusal(StrEnum):
    """Why a rule refused, in the state's words; the HTTP side picks the status."""

    INVALID = "invalid"  # the request itself is malformed or not allowed
    UNKNOWN = "unknown"  # it names a component, code, session or account that is not there
    CONFLICT = "conflict"  # it contradicts the state: used, expired, not listed, not authorized
    FORBIDDEN = "forbidden"  # it comes from, or goes back to, another domain (§4.3)


class AuthRuleError(Exception):
    """A rule of the authorization flow refused the request."""

    def __init__(self, code: str, message: str, refusal: Refusal = Refusal.INVALID) -> None:
        self.code = code
        self.message = message
        self.refusal = refusal
        super().__init__(message)


# ----- parsing the page's query strings -------------------------------------------------


def parse_auth_type(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    value = int(text) if _ID.fullmatch(text) else -1  # -1 is no auth_type: refused below
    check_auth_type(value)
    return value


def check_auth_type(value: int | None) -> None:
    if value is not None and value not in AUTH_TYPE_LISTS:
        allowed = ", ".join(str(v) for v in AUTH_TYPE_LISTS)
        raise AuthRuleError("auth_type", f"auth_type 无效 (must be one of {allowed})")


def parse_category_id_list(text: str | None) -> frozenset[int] | None:
    """``category_id_list``: permission-set ids separated by ``|``, e.g. ``99|31``."""
    if text is None or text == "":
        return None
    parts = text.split("|")
    if not all(_ID.fullmatch(p) and int(p) > 0 for p in parts):
        raise AuthRuleError(
            "category_id_list", "category_id_list 无效 (ids separated by |, e.g. 1|15)"
        )
    return frozenset(int(p) for p in parts)


def parse_category_ids(values: Sequence[str]) -> list[int]:
    """The ticked ``category_id`` boxes of the confirm form."""
    if not all(_ID.fullmatch(v) for v in values):
        raise AuthRuleError("categories", "权限集无效 (category_id must be integers)")
    return [int(v) for v in values]


def hostname(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def check_origin(auth_domain: str, referer: str | None, redirect_uri: str | None) -> None:
    """The PC and H5 pages' domain rule (protocol §4.3)."""
    domain = auth_domain.lower()
    referer_host = hostname(referer)
    redirect_ok = hostname(redirect_uri) == domain and is_http_url(redirect_uri)
    if referer_host != domain or not redirect_ok:
        raise AuthRuleError("referer", REFERER_ERROR + (referer_host or "空"), Refusal.FORBIDDEN)


def check_redirect_uri(auth_domain: str, redirect_uri: str) -> None:
    """The headless flow has no Referer, but its redirect_uri obeys the same domain rule."""
    if hostname(redirect_uri) != auth_domain.lower() or not is_http_url(redirect_uri):
        raise AuthRuleError(
            "redirect_uri", f"redirect_uri: must be an http(s) URL on the auth_domain {auth_domain}"
        )


def is_http_url(url: str | None) -> bool:
    try:
        return url is not None and urlsplit(url).scheme in ("http", "https")
    except ValueError:
        return False


def with_auth_code(redirect_uri: str, code: str) -> str:
    """``redirect_uri`` plus ``auth_code`` and ``expires_in`` (protocol §4.4)."""
    base, hash_mark, fragment = redirect_uri.partition("#")
    if "?" not in base:
        sep = "?"
    else:
        sep = "" if base.endswith(("?", "&")) else "&"
    query = f"auth_code={quote(code, safe='@')}&expires_in={AUTH_CODE_TTL}"
    return base + sep + query + hash_mark + fragment


def granted_message(
    info_type: str, component: str, now: float, authorizer: str, code: str, pre_auth_code: str
) -> str:
    """``authorized`` / ``updateauthorized`` (protocol §2.2)."""
    create_time = int(now)
    return to_xml(
        {
            "AppId": component,
            "CreateTime": create_time,
            "InfoType": info_type,
            "AuthorizerAppid": authorizer,
            "AuthorizationCode": code,
            "AuthorizationCodeExpiredTime": create_time + AUTH_CODE_TTL,
            "PreAuthCode": pre_auth_code,
        }
    )


def unauthorized_message(component: str, now: float, authorizer: str) -> str:
    return to_xml(
        {
            "AppId": component,
            "CreateTime": int(now),
            "InfoType": UNAUTHORIZED,
            "AuthorizerAppid": authorizer,
        }
    )


def chosen_sets(offered: Sequence[int], category_ids: Sequence[int]) -> list[int]:
    extra = sorted(set(category_ids) - set(offered))
    if extra:
        raise AuthRuleError("categories", f"权限集 {extra[0]} 未提供 (not offered here)")
    ticked = set(category_ids)
    chosen = [i for i in offered if i in ticked]
    if not chosen:
        raise AuthRuleError("categories", "请至少选择一个权限集 (tick at least one permission set)")
    return chosen
