"""Typed WeChat component API client: one method per API (protocol §3).

Every API is classified as safe or not safe to repeat (``ONCE_ONLY``). A safe call is
retried by urllib3 ``Retry`` on a failed connection, a lost answer or HTTP 5xx, and on
WeChat's ``-1`` (system busy, which comes back as HTTP 200) by the client with backoff.
A call that must not run twice (a code exchange, a quota reset) is retried only when the
connection could not be made, so the request surely never reached WeChat; otherwise its
``TransportError`` says ``reached`` and the caller finds out from WeChat what happened.
The HTTP pools (``Http``) are injected, so tests can pass their own transport.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import certifi
import requests
import urllib3
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError
from urllib3.util.retry import Retry

from service.wechat.accounts import AccountType, account_type_of
from service.wechat.errors import SystemBusyError, TransportError, error_for

DEFAULT_API_BASE = "https://api.weixin.qq.com"
_JSON_HEADERS = {"Content-Type": "application/json"}
log = logging.getLogger(__name__)
_T = TypeVar("_T")


# Calls that must not run twice: an authorization code is single use (a repeat answers
# 61010, and the first answer may have been the only copy of the tokens), and a quota
# reset spends one of 10 a month. Everything else is safe to repeat: a repeated token fetch
# only supersedes the previous token, which stays valid for five minutes; reads are reads;
# setting an option to a value twice sets it once.
ONCE_ONLY = frozenset({"api_query_auth", "clear_quota"})


class Http(Protocol):
    """What the client sends through: a ``urllib3.PoolManager`` (tests pass their own)."""

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = ...,
        headers: Mapping[str, str] | None = ...,
        timeout: float | None = ...,
        redirect: bool = ...,
    ) -> urllib3.BaseHTTPResponse: ...


def build_http(
    api_base: str, retries: int = 2, backoff: float = 0.2, once_only: bool = False
) -> urllib3.PoolManager:
    """A pool that retries failed connections with exponential backoff, and, unless
    ``once_only``, lost answers and HTTP 5xx too (POST included).

    urllib3 itself, not requests: a renewal's WeChat call cost 1.05 ms of CPU through a
    requests session and 0.57 ms here (its cookie jar, hooks, setting merges and response
    wrapping are what the difference buys, and WeChat's API needs none of them). The
    environment is read once: a proxy for the API base's scheme (unless ``no_proxy``
    covers its host), and the CA bundle requests would use.
    """
    retry = Retry(
        total=retries,
        connect=retries,
        read=0 if once_only else retries,
        status=0 if once_only else retries,
        other=0 if once_only else None,
        backoff_factor=backoff,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=None,
        raise_on_status=False,
    )
    settings: dict[str, Any] = {
        "retries": retry,
        "maxsize": 32,
        "ca_certs": _ca_bundle() or certifi.where(),
    }
    parts = urllib.parse.urlsplit(api_base)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        return urllib3.ProxyManager(proxy, **settings)
    return urllib3.PoolManager(**settings)


def without_environment_lookups(session: requests.Session) -> requests.Session:
    """``session`` with the environment read once, now, instead of on every call (the
    proxied calls' session; the client's own calls go through ``build_http``).

    requests reads the proxy variables, the CA bundle variables and ``~/.netrc`` on every
    request: 40% of a WeChat call's CPU when renewals still went through requests. WeChat's
    calls carry their credentials in the query, so ``.netrc`` never applies; proxies and a
    CA bundle named in the environment still do, read at start-up. With a proxy set the
    environment stays live (its ``no_proxy`` rules are per host).
    """
    if any(url for scheme, url in urllib.request.getproxies().items() if scheme != "no"):
        return session
    session.trust_env = False
    bundle = _ca_bundle()
    if bundle:
        session.verify = bundle
    return session


def _ca_bundle() -> str | None:
    """The CA bundle the environment names, as requests would read it."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")


def connection_made(exc: BaseException) -> bool:
    """False only when the connection itself could not be made (refused, unresolved, timed
    out connecting): then nothing was sent. urllib3's errors, bare or as the reason of its
    ``MaxRetryError``."""
    return not isinstance(_cause(exc), ConnectTimeoutError)  # NewConnectionError is one


def _cause(exc: BaseException) -> BaseException:
    """What failed: the reason a ``MaxRetryError`` carries, or the error itself."""
    return exc.reason if isinstance(exc, MaxRetryError) and exc.reason else exc


def request_reached(exc: requests.RequestException) -> bool:
    """``connection_made`` for a requests exception (the proxied calls)."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    reason = exc.args[0] if exc.args else None
    return not isinstance(reason, BaseException) or connection_made(reason)


@dataclass(frozen=True)
class ComponentAccessToken:
    token: str = field(repr=False)
    expires_in: int


@dataclass(frozen=True)
class PreAuthCode:
    code: str = field(repr=False)
    expires_in: int


@dataclass(frozen=True)
class AuthorizationInfo:
    """``authorization_info``: what the authorizer granted, with its tokens when it has any.

    The tokens are present only when the account has API permissions (protocol §3.4).
    """

    authorizer_appid: str
    func_info: tuple[int, ...]
    access_token: str | None = field(default=None, repr=False)
    expires_in: int | None = None
    refresh_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AuthorizerInfo:
    """``api_get_authorizer_info``: the account's profile and its authorization."""

    account_type: AccountType
    nick_name: str
    principal_name: str
    user_name: str
    head_img: str
    service_type: int | None
    verify_type: int | None
    account_status: int | None
    authorization: AuthorizationInfo


@dataclass(frozen=True)
class AuthorizerAccessToken:
    access_token: str = field(repr=False)
    expires_in: int
    refresh_token: str | None = field(repr=False)


@dataclass(frozen=True)
class ListedAuthorizer:
    """One entry of ``api_get_authorizer_list``; no refresh token: code never exchanged."""

    appid: str
    refresh_token: str | None = field(repr=False)
    auth_time: int | None


@dataclass(frozen=True)
class AuthorizerPage:
    total_count: int
    authorizers: tuple[ListedAuthorizer, ...]


@dataclass(frozen=True)
class AuthorizerOption:
    name: str
    value: str


class ComponentClient:
    """Calls to ``/cgi-bin/component/*`` for one WeChat API base."""

    def __init__(
        self,
        api_base: str = DEFAULT_API_BASE,
        http: Http | None = None,
        once_only_http: Http | None = None,
        timeout: float = 10.0,
        busy_retries: int = 2,
        busy_backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self.http = http or build_http(self.api_base)
        self.once_only_http = once_only_http or (
            http if http is not None else build_http(self.api_base, once_only=True)
        )
        self.timeout = timeout
        self.busy_retries = busy_retries
        self.busy_backoff = busy_backoff
        self.sleep = sleep

    def api_component_token(
        self, component_appid: str, component_appsecret: str, component_verify_ticket: str
    ) -> ComponentAccessToken:
        data = self._component_api(
            "api_component_token",
            {
                "component_appid": component_appid,
                "component_appsecret": component_appsecret,
                "component_verify_ticket": component_verify_ticket,
            },
        )
        return ComponentAccessToken(
            token=_field(data, "component_access_token", str, "api_component_token"),
            expires_in=_field(data, "expires_in", int, "api_component_token"),
        )

    def api_start_push_ticket(self, component_appid: str, component_secret: str) -> str:
        """(Re)start ticket pushes; returns errmsg: ``ok`` or ``in a normal state``."""
        data = self._component_api(
            "api_start_push_ticket",
            {"component_appid": component_appid, "component_secret": component_secret},
        )
        return str(data.get("errmsg", "ok"))

    def api_create_preauthcode(self, component_appid: str, component_token: str) -> PreAuthCode:
        api = "api_create_preauthcode"
        data = self._component_api(api, {"component_appid": component_appid}, component_token)
        return PreAuthCode(
            code=_field(data, "pre_auth_code", str, api),
            expires_in=_field(data, "expires_in", int, api),
        )

    def api_query_auth(
        self, component_appid: str, authorization_code: str, component_token: str
    ) -> AuthorizationInfo:
        """Exchange an authorization code (single use) for the authorizer's tokens."""
        api = "api_query_auth"
        data = self._component_api(
            api,
            {"component_appid": component_appid, "authorization_code": authorization_code},
            component_token,
        )
        return _authorization_info(data.get("authorization_info"), api)

    def api_get_authorizer_info(
        self, component_appid: str, authorizer_appid: str, component_token: str
    ) -> AuthorizerInfo:
        api = "api_get_authorizer_info"
        data = self._component_api(
            api,
            {"component_appid": component_appid, "authorizer_appid": authorizer_appid},
            component_token,
        )
        info = data.get("authorizer_info")
        if not isinstance(info, dict):
            raise TransportError("response has no valid 'authorizer_info'", api)
        return AuthorizerInfo(
            account_type=account_type_of(info),
            nick_name=_text(info, "nick_name"),
            principal_name=_text(info, "principal_name"),
            user_name=_text(info, "user_name"),
            head_img=_text(info, "head_img"),
            service_type=_nested_id(info, "service_type_info"),
            verify_type=_nested_id(info, "verify_type_info"),
            account_status=_int_or_none(info.get("account_status")),
            authorization=_authorization_info(
                data.get("authorization_info"), api, default_appid=authorizer_appid
            ),
        )

    def api_authorizer_token(
        self,
        component_appid: str,
        authorizer_appid: str,
        refresh_token: str,
        component_token: str,
    ) -> AuthorizerAccessToken:
        api = "api_authorizer_token"
        data = self._component_api(
            api,
            {
                "component_appid": component_appid,
                "authorizer_appid": authorizer_appid,
                "authorizer_refresh_token": refresh_token,
            },
            component_token,
        )
        returned = data.get("authorizer_refresh_token")
        return AuthorizerAccessToken(
            access_token=_field(data, "authorizer_access_token", str, api),
            expires_in=_field(data, "expires_in", int, api),
            refresh_token=returned if isinstance(returned, str) and returned else None,
        )

    def api_get_authorizer_list(
        self, component_appid: str, offset: int, count: int, component_token: str
    ) -> AuthorizerPage:
        api = "api_get_authorizer_list"
        body = {"component_appid": component_appid, "offset": offset, "count": count}
        data = self._component_api(api, body, component_token)
        items = data.get("list")
        if not isinstance(items, list):
            raise TransportError("response has no valid 'list'", api)
        listed = []
        for item in items:
            appid = item.get("authorizer_appid") if isinstance(item, dict) else None
            if not isinstance(appid, str) or not appid:
                raise TransportError("a list entry has no valid 'authorizer_appid'", api)
            token = item.get("refresh_token")  # not authorizer_refresh_token here (§3.7)
            listed.append(
                ListedAuthorizer(
                    appid=appid,
                    refresh_token=token if isinstance(token, str) and token else None,
                    auth_time=_int_or_none(item.get("auth_time")),
                )
            )
        return AuthorizerPage(
            total_count=_field(data, "total_count", int, api), authorizers=tuple(listed)
        )

    def api_get_authorizer_option(
        self, component_appid: str, authorizer_appid: str, name: str, component_token: str
    ) -> AuthorizerOption:
        """The first generation (§3.8): the component token names the authorizer."""
        api = "api_get_authorizer_option"
        body = {
            "component_appid": component_appid,
            "authorizer_appid": authorizer_appid,
            "option_name": name,
        }
        return _option(self._component_api(api, body, component_token), name, api)

    def api_set_authorizer_option(
        self,
        component_appid: str,
        authorizer_appid: str,
        name: str,
        value: str,
        component_token: str,
    ) -> None:
        body = {
            "component_appid": component_appid,
            "authorizer_appid": authorizer_appid,
            "option_name": name,
            "option_value": value,
        }
        self._component_api("api_set_authorizer_option", body, component_token)

    def get_authorizer_option(self, name: str, access_token: str) -> AuthorizerOption:
        """The second generation (§3.8): the authorizer's own access token."""
        api = "get_authorizer_option"
        data = self._post(
            api,
            f"/cgi-bin/component/{api}",
            {"option_name": name},
            {"access_token": access_token},
        )
        return _option(data, name, api)

    def set_authorizer_option(self, name: str, value: str, access_token: str) -> None:
        api = "set_authorizer_option"
        body = {"option_name": name, "option_value": value}
        self._post(api, f"/cgi-bin/component/{api}", body, {"access_token": access_token})

    def clear_quota(
        self, component_appid: str, appsecret: str, authorizer_appid: str | None = None
    ) -> None:
        """clear_quota/v2 (§3.9): the component's quotas, or an authorizer's with its appid.

        Shares 10 resets a month with /cgi-bin/clear_quota; over that, 48006.
        """
        body = {"component_appid": component_appid, "appsecret": appsecret}
        if authorizer_appid is not None:
            body["appid"] = authorizer_appid
        self._post("clear_quota", "/cgi-bin/component/clear_quota/v2", body)

    def _component_api(
        self, api: str, body: Mapping[str, Any], component_token: str | None = None
    ) -> dict[str, Any]:
        """POST ``/cgi-bin/component/<api>``, with the component token in the query if given."""
        params = {"component_access_token": component_token} if component_token else None
        return self._post(api, f"/cgi-bin/component/{api}", body, params)

    def _post(
        self,
        api: str,
        path: str,
        body: Mapping[str, Any],
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        attempt = 0
        while True:
            try:
                return self._post_once(api, path, body, params)
            except SystemBusyError:
                if attempt >= self.busy_retries or api in ONCE_ONLY:
                    raise
                delay = self.busy_backoff * (2**attempt)
                log.warning("WeChat busy (-1), retrying", extra={"api": api, "delay_s": delay})
                self.sleep(delay)
                attempt += 1

    def _post_once(
        self,
        api: str,
        path: str,
        body: Mapping[str, Any],
        params: Mapping[str, str] | None,
    ) -> dict[str, Any]:
        started = time.monotonic()
        http = self.once_only_http if api in ONCE_ONLY else self.http
        url = self.api_base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            response = http.request(
                "POST",
                url,
                body=json.dumps(body, ensure_ascii=False).encode("utf-8"),
                headers=_JSON_HEADERS,
                timeout=self.timeout,
                redirect=False,  # WeChat's API answers; a redirect is an unusable answer
            )
        except urllib3.exceptions.HTTPError as exc:
            # The exception text holds the URL, which may hold a token: keep only a type.
            reached = connection_made(exc)
            kind = type(_cause(exc)).__name__
            reason = f"request failed ({kind}" + (")" if reached else ", not sent)")
            raise TransportError(reason, api, reached=reached) from None
        elapsed_ms = round((time.monotonic() - started) * 1000, 1)
        if response.status >= 400:
            log.warning(
                "WeChat HTTP error",
                extra={"api": api, "http_status": response.status, "ms": elapsed_ms},
            )
            raise TransportError(f"HTTP {response.status}", api, http_status=response.status)
        try:
            data = json.loads(response.data)
        except ValueError:
            raise TransportError("response is not JSON", api) from None
        if not isinstance(data, dict):
            raise TransportError("response is not a JSON object", api)
        errcode = data.get("errcode", 0)
        # A success is DEBUG: the caller logs what it did with it (an authorization; the
        # sweep counts renewals), and at a million authorizers a line per renewal is 12
        # million lines a day.
        level = logging.DEBUG if errcode in (0, None) else logging.INFO
        log.log(level, "WeChat call", extra={"api": api, "errcode": errcode, "ms": elapsed_ms})
        if errcode not in (0, None):
            raise error_for(int(errcode), str(data.get("errmsg", "")), api)
        return data


def _field(data: Mapping[str, Any], name: str, kind: type[_T], api: str) -> _T:
    value = data.get(name)
    if not isinstance(value, kind):
        raise TransportError(f"response has no valid {name!r}", api)
    return value


def _authorization_info(
    value: Any, api: str, default_appid: str | None = None
) -> AuthorizationInfo:
    if not isinstance(value, dict):
        raise TransportError("response has no valid 'authorization_info'", api)
    # Very old responses used "appid" (protocol §3.6, old-format drift).
    appid = value.get("authorizer_appid") or value.get("appid") or default_appid
    if not isinstance(appid, str) or not appid:
        raise TransportError("response has no valid 'authorizer_appid'", api)
    access_token = value.get("authorizer_access_token")
    refresh_token = value.get("authorizer_refresh_token")
    return AuthorizationInfo(
        authorizer_appid=appid,
        func_info=_func_ids(value.get("func_info")),
        access_token=access_token if isinstance(access_token, str) and access_token else None,
        expires_in=_int_or_none(value.get("expires_in")),
        refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token else None,
    )


def _option(data: Mapping[str, Any], name: str, api: str) -> AuthorizerOption:
    value = data.get("option_value")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise TransportError("response has no valid 'option_value'", api)
    return AuthorizerOption(name=str(data.get("option_name") or name), value=value)


def _func_ids(items: Any) -> tuple[int, ...]:
    """The granted permission-set ids of a ``func_info`` list, in order, without repeats."""
    ids: list[int] = []
    for item in items if isinstance(items, list) else []:
        category = item.get("funcscope_category") if isinstance(item, dict) else None
        ident = category.get("id") if isinstance(category, dict) else None
        if isinstance(ident, int) and not isinstance(ident, bool) and ident not in ids:
            ids.append(ident)
    return tuple(ids)


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    return value if isinstance(value, str) else ""


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _nested_id(data: Mapping[str, Any], name: str) -> int | None:
    value = data.get(name)
    return _int_or_none(value.get("id")) if isinstance(value, dict) else None
