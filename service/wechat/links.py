"""Authorization links: the PC page, both H5 forms and the mini-program plugin (protocol §4.1).

Pure functions of their inputs; the WeChat hosts are parameters, so the mock stands in
locally. ``redirect_uri`` is fully URL-encoded, as every SDK does; ``category_id_list``
keeps WeChat's ``|`` separator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from service.wechat.accounts import APPID_PATTERN, AUTH_TYPES

MAX_REDIRECT_URI = 1024
MAX_CATEGORY_IDS = 64
DEFAULT_MP_BASE = "https://mp.weixin.qq.com"
DEFAULT_OPEN_BASE = "https://open.weixin.qq.com"


class LinkParamError(ValueError):
    """One parameter of a link request is wrong; ``str()`` names it and says why."""

    def __init__(self, name: str, reason: str) -> None:
        self.param = name
        self.reason = reason
        super().__init__(f"{name}: {reason}")


@dataclass(frozen=True)
class LinkRequest:
    auth_type: int
    redirect_uri: str
    biz_appid: str | None = None
    category_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class AuthorizeLinks:
    pc_url: str
    h5_url: str
    h5_legacy_url: str
    plugin: dict[str, Any]


def parse_auth_type(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value not in AUTH_TYPES:
        allowed = ", ".join(str(v) for v in AUTH_TYPES)
        raise LinkParamError("auth_type", f"must be one of {allowed}")
    return value


def parse_biz_appid(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not APPID_PATTERN.match(value):
        raise LinkParamError("biz_appid", "must be an appid: 'wx' followed by 16 hex digits")
    return value


def parse_category_ids(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise LinkParamError("category_ids", "must be a non-empty list of permission-set ids")
    if len(value) > MAX_CATEGORY_IDS:
        raise LinkParamError("category_ids", f"at most {MAX_CATEGORY_IDS} ids")
    ids: list[int] = []
    for item in value:
        if not isinstance(item, int) or isinstance(item, bool) or item <= 0:
            raise LinkParamError("category_ids", "each id must be a positive integer")
        if item not in ids:
            ids.append(item)
    return tuple(ids)


def parse_redirect_uri(value: Any, default: str | None) -> str:
    if value is None or value == "":
        if default is None:
            raise LinkParamError(
                "redirect_uri", "is required here (PUBLIC_BASE_URL is not set to build one)"
            )
        return default
    if not isinstance(value, str) or len(value) > MAX_REDIRECT_URI:
        raise LinkParamError("redirect_uri", f"must be a URL of at most {MAX_REDIRECT_URI} chars")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LinkParamError("redirect_uri", "must be an absolute http(s) URL")
    if parts.fragment:
        raise LinkParamError("redirect_uri", "must not have a #fragment")
    return value


def parse_link_request(data: Mapping[str, Any], default_redirect_uri: str | None) -> LinkRequest:
    """A link request from JSON; raises ``LinkParamError`` naming the first bad parameter."""
    unknown = sorted(set(data) - {"auth_type", "biz_appid", "category_ids", "redirect_uri"})
    if unknown:
        raise LinkParamError(unknown[0], "unknown parameter")
    if "auth_type" not in data:
        raise LinkParamError("auth_type", "is required")
    return LinkRequest(
        auth_type=parse_auth_type(data["auth_type"]),
        biz_appid=parse_biz_appid(data.get("biz_appid")),
        category_ids=parse_category_ids(data.get("category_ids")),
        redirect_uri=parse_redirect_uri(data.get("redirect_uri"), default_redirect_uri),
    )


def _query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(
        f"{name}={quote(value, safe='|' if name == 'category_id_list' else '')}"
        for name, value in pairs
    )


def build_links(
    component_appid: str,
    pre_auth_code: str,
    request: LinkRequest,
    mp_base: str = DEFAULT_MP_BASE,
    open_base: str = DEFAULT_OPEN_BASE,
) -> AuthorizeLinks:
    common = [
        ("component_appid", component_appid),
        ("pre_auth_code", pre_auth_code),
        ("redirect_uri", request.redirect_uri),
        ("auth_type", str(request.auth_type)),
    ]
    if request.biz_appid:
        common.append(("biz_appid", request.biz_appid))
    if request.category_ids:
        common.append(("category_id_list", "|".join(str(i) for i in request.category_ids)))
    h5 = _query([("action", "bindcomponent"), ("no_scan", "1"), *common])
    plugin: dict[str, Any] = {
        "platformAppID": component_appid,
        "preAuthCode": pre_auth_code,
        "authType": request.auth_type,
    }
    if request.biz_appid:
        plugin["bizAppid"] = request.biz_appid
    return AuthorizeLinks(
        pc_url=f"{mp_base.rstrip('/')}/cgi-bin/componentloginpage?{_query(common)}",
        h5_url=f"{open_base.rstrip('/')}/wxaopen/safe/bindcomponent?{h5}#wechat_redirect",
        h5_legacy_url=f"{mp_base.rstrip('/')}/safe/bindcomponent?{h5}#wechat_redirect",
        plugin=plugin,
    )
