"""Calls on a merchant's behalf (§8): any authorizer API, with its access token injected.

The caller names the WeChat path; the service adds ``access_token`` and passes the method,
the query, the body and its content type through, then returns WeChat's status, body and
content type. If WeChat rejects the token (40001, 40014, 42001), the token is invalidated
if it is still the stored one and the call is made once more with a fresh token: WeChat
did nothing with the rejected call, so repeating it is safe. Nothing else is retried
(a custom message must not be sent twice); only failures to connect are.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, replace

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from service.authorizer_tokens import AuthorizerTokenManager
from service.wechat.client import request_reached, without_environment_lookups

log = logging.getLogger(__name__)

TOKEN_REJECTED_CODES = frozenset({40001, 40014, 42001})
# Query parameters the caller may not set: the service injects the token itself.
TOKEN_PARAMS = frozenset({"access_token", "component_access_token"})
PASSED_HEADERS = ("Content-Type", "Content-Disposition")
_SEGMENT = re.compile(r"[A-Za-z0-9_.\-]+")
_ERRCODE_SCAN_LIMIT = 1 << 20  # larger answers are media, not error objects


class ProxyPathError(ValueError):
    pass


class UpstreamError(Exception):
    """WeChat gave no answer: a timeout (504) or a failed connection (502).

    ``reached`` is False only when the request surely never reached WeChat (it could not
    connect), so only then may a call that is not safe to repeat be tried again.
    """

    def __init__(self, status: int, reason: str, reached: bool = True) -> None:
        self.status = status
        self.reached = reached
        super().__init__(reason)


@dataclass(frozen=True)
class ProxyCall:
    method: str
    path: str  # the WeChat path without its leading slash, e.g. "cgi-bin/open/get"
    query: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    content_type: str | None = None


@dataclass(frozen=True)
class ProxyAnswer:
    status: int
    body: bytes
    headers: dict[str, str]
    errcode: int | None
    retried: bool = False


def check_path(path: str) -> str:
    """A plain relative API path: segments of letters, digits and ``_.-``, no ``..``."""
    segments = path.split("/")
    if not path or not all(_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments):
        raise ProxyPathError(
            f"invalid WeChat path {path[:100]!r}: use segments of letters, digits and _.- "
            "such as cgi-bin/open/get"
        )
    return path


def proxy_session() -> requests.Session:
    """Retries a failed connection (nothing was sent), never a sent request."""
    retry = Retry(total=2, connect=2, read=0, status=0, other=0, backoff_factor=0.2)
    session = without_environment_lookups(requests.Session())
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=32)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class AuthorizerProxy:
    def __init__(
        self,
        api_base: str,
        tokens: AuthorizerTokenManager,
        timeout: float = 15.0,
        session: requests.Session | None = None,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self.tokens = tokens
        self.timeout = timeout
        self.session = session or proxy_session()

    def forward(self, component_appid: str, appid: str, call: ProxyCall) -> ProxyAnswer:
        check_path(call.path)
        token, _ = self.tokens.get(component_appid, appid)
        answer = self._send(call, token.access_token)
        if answer.errcode in TOKEN_REJECTED_CODES:
            self.tokens.invalidate(component_appid, appid, token.access_token)
            token, _ = self.tokens.get(component_appid, appid)
            answer = replace(self._send(call, token.access_token), retried=True)
        log.info(
            "proxied call",
            extra={
                "component_appid": component_appid,
                "authorizer_appid": appid,
                "method": call.method,
                "path": "/" + call.path,
                "http_status": answer.status,
                "errcode": answer.errcode,
                "retried": answer.retried,
            },
        )
        return answer

    def _send(self, call: ProxyCall, access_token: str) -> ProxyAnswer:
        params = [(k, v) for k, v in call.query if k not in TOKEN_PARAMS]
        params.append(("access_token", access_token))
        headers = {"Content-Type": call.content_type} if call.content_type else {}
        try:
            response = self.session.request(
                call.method,
                f"{self.api_base}/{call.path}",
                params=params,
                data=call.body or None,
                headers=headers,
                timeout=self.timeout,
            )
        except requests.ConnectTimeout:
            raise UpstreamError(502, "could not connect to WeChat (timeout)", False) from None
        except requests.Timeout:
            raise UpstreamError(504, f"WeChat did not answer within {self.timeout:g} s") from None
        except requests.RequestException as exc:
            # The exception's text holds the URL, and the URL the token: keep only its type.
            raise UpstreamError(
                502, f"request to WeChat failed ({type(exc).__name__})", request_reached(exc)
            ) from None
        body = response.content
        return ProxyAnswer(
            status=response.status_code,
            body=body,
            headers={h: response.headers[h] for h in PASSED_HEADERS if h in response.headers},
            errcode=_errcode(body),
        )


def _errcode(body: bytes) -> int | None:
    if len(body) > _ERRCODE_SCAN_LIMIT or not body.lstrip().startswith(b"{"):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    code = data.get("errcode") if isinstance(data, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None
