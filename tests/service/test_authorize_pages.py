"""The merchant's pages in-process, the authorization flow faked: what each request costs.

The entry page calls nothing; only a link of ours followed from it (signed, unexpired)
creates a pre_auth_code; the callback sends only well-shaped codes to the exchange; every
page is rate limited per client; WeChat's error details reach the log, never the page.
The end-to-end tests show the same on the real stack (tests/e2e/test_public_pages.py).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service import create_app
from service.authorization_links import IssuedLinks
from service.code_exchange import ExchangeResult, Outcome
from service.component_token import TokenUnavailableError
from service.config import ComponentConfig, PublicRateLimit, Settings
from service.runtime import Runtime
from service.web import authorize
from service.wechat.errors import IpNotWhitelistedError, WeChatError
from service.wechat.links import LinkRequest, build_links

APPID = "wx0123456789abcdef"
BASE = "https://gw.example.com"
WECHAT = "https://mp.example.com"
GOOD_CODE = "queryauthcode@@@" + "Ab3_-x" * 14  # 84 URL-safe characters, as the mock's
LEAKY_ERRMSG = "access clientip is not registered requestIP: 203.0.113.77 rid: 6a1b-2c3d-4e5f"
IP_ADDRESS = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")


class FakeFlow:
    """Stands in for the link issuer and the code exchanger; counts what would cost a WeChat
    call."""

    def __init__(self) -> None:
        self.issued: list[LinkRequest] = []
        self.exchanged: list[str] = []
        self.issue_error: Exception | None = None
        self.result = ExchangeResult(Outcome.REFUSED, errcode=61009, reason="code is invalid")

    def issue(self, component_appid: str, request: LinkRequest) -> IssuedLinks:
        self.issued.append(request)
        if self.issue_error is not None:
            raise self.issue_error
        code = f"preauthcode@@@{len(self.issued)}"
        links = build_links(component_appid, code, request, mp_base=WECHAT, open_base=WECHAT)
        return IssuedLinks(links, code, time.time() + 1800, request)

    def exchange(self, component_appid: str, code: str, source: str) -> ExchangeResult:
        self.exchanged.append(code)
        return self.result


def make_settings(per_minute: int = 100_000, burst: int = 100_000) -> Settings:
    return Settings(
        components={APPID: ComponentConfig(APPID, "app-secret", "tok", "k" * 43)},
        public_base_url=BASE,
        wechat_mp_base=WECHAT,
        wechat_open_base=WECHAT,
        public_rate_limit=PublicRateLimit(per_minute=per_minute, burst=burst),
    )


def make_app(settings: Settings) -> tuple[Flask, FakeFlow]:
    runtime = Runtime(settings)
    flow = FakeFlow()
    # In place of the cached properties.
    runtime.__dict__["links"] = runtime.__dict__["code_exchange"] = flow
    return create_app(settings, runtime=runtime), flow


@pytest.fixture
def app_and_flow() -> tuple[Flask, FakeFlow]:
    return make_app(make_settings())


@pytest.fixture
def client(app_and_flow: tuple[Flask, FakeFlow]) -> FlaskClient:
    return app_and_flow[0].test_client()


@pytest.fixture
def flow(app_and_flow: tuple[Flask, FakeFlow]) -> FakeFlow:
    return app_and_flow[1]


def entry(client: FlaskClient, **query: Any) -> Any:
    return client.get(f"/authorize/{APPID}?" + urlencode(query))


def links_of(html: str) -> dict[str, str]:
    found = re.findall(r'id="(pc|h5)-link" href="([^"]+)"', html)
    return {page: href.replace("&amp;", "&") for page, href in found}


def follow(client: FlaskClient, href: str, **headers: str) -> Any:
    parts = urlsplit(href)
    assert f"{parts.scheme}://{parts.netloc}" == BASE, href
    return client.get(f"{parts.path}?{parts.query}", headers=headers)


# ----- the entry page and our links ---------------------------------------------------


def test_the_entry_page_calls_nothing_and_links_to_our_own_route(
    client: FlaskClient, flow: FakeFlow
) -> None:
    assert entry(client).status_code == 200
    page = entry(client, auth_type=1, biz_appid="wx00000000000000aa", category_ids="1,15")
    assert page.status_code == 200
    assert flow.issued == []  # no pre_auth_code for a page view
    links = links_of(page.text)
    assert set(links) == {"pc", "h5"}
    for name, href in links.items():
        query = parse_qs(urlsplit(href).query)
        assert href.startswith(f"{BASE}/authorize/{APPID}?")
        assert query["go"] == [name] and query["auth_type"] == ["1"]
        assert query["biz_appid"] == ["wx00000000000000aa"]
        assert query["category_ids"] == ["1|15"] and query["sig"]
    assert "preauthcode@@@" not in page.text and WECHAT not in page.text


@pytest.mark.parametrize(
    ("name", "wechat_path"),
    [("pc", "/cgi-bin/componentloginpage?"), ("h5", "/wxaopen/safe/bindcomponent?")],
)
def test_following_a_link_creates_the_code_and_redirects_to_wechat(
    client: FlaskClient, flow: FakeFlow, name: str, wechat_path: str
) -> None:
    page = entry(client, auth_type=2, category_ids="1|15")
    answer = follow(client, links_of(page.text)[name], Referer=f"{BASE}/")
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(WECHAT + wechat_path)
    assert parse_qs(urlsplit(location).query)["pre_auth_code"] == ["preauthcode@@@1"]
    # The browser sends our origin on to WeChat's page, whatever the link's own policy.
    assert answer.headers["Referrer-Policy"] == "origin"
    assert answer.headers["Cache-Control"] == "no-store"
    assert flow.issued == [LinkRequest(2, f"{BASE}/authorize/{APPID}/callback", None, (1, 15))]


def test_a_head_request_for_a_link_creates_nothing(client: FlaskClient, flow: FakeFlow) -> None:
    href = links_of(entry(client, auth_type=3).text)["pc"]
    parts = urlsplit(href)
    assert client.head(f"{parts.path}?{parts.query}").status_code == 200
    assert flow.issued == []


def tampered(href: str, **changes: str) -> str:
    parts = urlsplit(href)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return f"{BASE}{parts.path}?" + urlencode({k: v for k, v in query.items() if v != "-"})


@pytest.mark.parametrize(
    "changes",
    [
        {"sig": "-"},  # no signature: typed in, or a script
        {"sig": "9999999999.AAAAAAAAAAAAAAAAAAAAAA"},  # forged
        {"sig": "garbage"},
        {"auth_type": "1"},  # signed for auth_type 3
        {"biz_appid": "wx00000000000000bb"},
        {"category_ids": "7"},
    ],
)
def test_a_link_not_signed_by_us_creates_nothing(
    client: FlaskClient, flow: FakeFlow, changes: dict[str, str]
) -> None:
    href = links_of(entry(client, auth_type=3).text)["pc"]
    answer = follow(client, tampered(href, **changes))
    assert answer.status_code == 403
    assert 'data-outcome="link_invalid"' in answer.text
    assert flow.issued == []


def test_an_expired_link_brings_a_fresh_entry_page_and_creates_nothing(
    client: FlaskClient, flow: FakeFlow, monkeypatch: pytest.MonkeyPatch
) -> None:
    href = links_of(entry(client, auth_type=1, biz_appid="wx00000000000000aa").text)["h5"]
    later = time.time() + authorize.LINK_TTL + 1
    monkeypatch.setattr(authorize, "clock", lambda: later)
    answer = follow(client, href)
    assert answer.status_code == 303
    assert flow.issued == []
    back = urlsplit(answer.headers["Location"])
    assert back.path == f"/authorize/{APPID}"
    assert parse_qs(back.query) == {"auth_type": ["1"], "biz_appid": ["wx00000000000000aa"]}
    # The fresh page's links work.
    fresh = client.get(f"{back.path}?{back.query}")
    assert follow(client, links_of(fresh.text)["h5"]).status_code == 302
    assert len(flow.issued) == 1


def test_bad_link_parameters_create_nothing(client: FlaskClient, flow: FakeFlow) -> None:
    for query in ({"go": "pc", "auth_type": "9"}, {"go": "tv", "auth_type": "1"}):
        answer = entry(client, **query)
        assert answer.status_code in (400, 403)
    assert flow.issued == []


# ----- the callback checks the code's shape first --------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "x",
        "queryauthcode@@@",
        "queryauthcode@@@short",
        "QUERYAUTHCODE@@@" + "a" * 84,
        "preauthcode@@@" + "a" * 86,  # a pre_auth_code in its place
        "queryauthcode@@" + "a" * 84,
        "queryauthcode@@@" + "a" * 80 + "<b>",
        "queryauthcode@@@" + "a" * 80 + " abc",
        "queryauthcode@@@" + "a" * 80 + "+/==",
        "queryauthcode@@@" + "a" * 80 + "\u00e9",
        "queryauthcode@@@" + "a" * 497,  # longer than any code we accept (512 in all)
        "' OR 1=1 --",
    ],
)
def test_a_code_of_another_shape_gets_the_invalid_page_and_no_exchange(
    client: FlaskClient, flow: FakeFlow, code: str
) -> None:
    answer = client.get(f"/authorize/{APPID}/callback", query_string={"auth_code": code})
    assert answer.status_code == 400
    assert 'data-outcome="code_invalid"' in answer.text
    assert flow.exchanged == []


@pytest.mark.parametrize(
    "code",
    [GOOD_CODE, "queryauthcode@@@" + "A" * 16, "queryauthcode@@@" + "-_9z" * 124],
)
def test_a_well_shaped_code_is_exchanged(client: FlaskClient, flow: FakeFlow, code: str) -> None:
    answer = client.get(f"/authorize/{APPID}/callback", query_string={"auth_code": code})
    assert answer.status_code == 400 and 'data-outcome="code_invalid"' in answer.text
    assert flow.exchanged == [code]


# ----- what the pages reveal ------------------------------------------------------------


def assert_generic(text: str) -> None:
    for leak in ("requestIP", "clientip", "rid:", "61004", "203.0.113.77"):
        assert leak not in text
    assert not IP_ADDRESS.search(text)


def wechat_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING
        and getattr(r, "component_appid", None) == APPID
        and getattr(r, "errcode", None) == 61004
    ]


def test_a_wechat_error_on_the_link_shows_a_generic_reason_and_logs_the_detail(
    client: FlaskClient, flow: FakeFlow, caplog: pytest.LogCaptureFixture
) -> None:
    flow.issue_error = IpNotWhitelistedError(61004, LEAKY_ERRMSG, "api_create_preauthcode")
    href = links_of(entry(client, auth_type=3).text)["pc"]
    with caplog.at_level(logging.WARNING):
        answer = follow(client, href)
    assert answer.status_code == 502
    assert 'data-outcome="wechat_error"' in answer.text
    assert_generic(answer.text)
    [record] = wechat_warnings(caplog)
    assert record.errmsg == LEAKY_ERRMSG


def test_no_component_token_shows_a_generic_reason(client: FlaskClient, flow: FakeFlow) -> None:
    flow.issue_error = TokenUnavailableError(
        "no ticket stored for wx0123456789abcdef since 10.0.0.1"
    )
    answer = follow(client, links_of(entry(client, auth_type=3).text)["pc"])
    assert answer.status_code == 503 and 'data-outcome="unavailable"' in answer.text
    assert "ticket" not in answer.text
    assert_generic(answer.text)


@pytest.mark.parametrize("outcome", [Outcome.ERROR, Outcome.REFUSED])
def test_a_wechat_error_on_the_callback_shows_a_generic_reason_and_logs_the_detail(
    client: FlaskClient, flow: FakeFlow, caplog: pytest.LogCaptureFixture, outcome: Outcome
) -> None:
    reason = str(WeChatError(61004, LEAKY_ERRMSG, "api_query_auth"))
    flow.result = ExchangeResult(outcome, errcode=61004, reason=reason)
    with caplog.at_level(logging.WARNING):
        answer = client.get(f"/authorize/{APPID}/callback", query_string={"auth_code": GOOD_CODE})
    assert answer.status_code in (400, 502)
    assert_generic(answer.text)
    [record] = wechat_warnings(caplog)
    assert LEAKY_ERRMSG in record.errmsg


# ----- the rate limit -------------------------------------------------------------------


@pytest.fixture
def limited() -> Iterator[tuple[FlaskClient, FakeFlow]]:
    app, flow = make_app(make_settings(per_minute=6, burst=20))
    yield app.test_client(), flow


def as_client(address: str, via: str = "198.51.100.1") -> dict[str, Any]:
    """A request as Cloud Run passes it on: the client may send its own X-Forwarded-For;
    Cloud Run's front end appends the address it saw."""
    return {
        "headers": {"X-Forwarded-For": f"10.9.9.9, {address}"},
        "environ_base": {"REMOTE_ADDR": via},
    }


def test_each_client_gets_its_burst_then_429_with_retry_after(
    limited: tuple[FlaskClient, FakeFlow],
) -> None:
    client, _ = limited
    statuses = [
        client.get(f"/authorize/{APPID}", **as_client("203.0.113.1")).status_code for _ in range(25)
    ]
    assert statuses == [200] * 20 + [429] * 5
    refused = client.get(f"/authorize/{APPID}/callback?auth_code=x", **as_client("203.0.113.1"))
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert 'data-outcome="rate_limited"' in refused.text
    assert "请求过于频繁" in refused.text and "Too many requests" in refused.text
    # Another client (the address Cloud Run appended, whatever the client wrote before it).
    assert client.get(f"/authorize/{APPID}", **as_client("203.0.113.2")).status_code == 200


def test_requests_that_call_wechat_take_more_of_the_bucket(
    limited: tuple[FlaskClient, FakeFlow],
) -> None:
    client, flow = limited
    who = as_client("203.0.113.3")
    for _ in range(2):  # 2 x 10 tokens: the whole burst of 20
        url = f"/authorize/{APPID}/callback?auth_code={GOOD_CODE}"
        assert client.get(url, **who).status_code == 400
    assert (
        client.get(f"/authorize/{APPID}/callback?auth_code={GOOD_CODE}", **who).status_code == 429
    )
    assert len(flow.exchanged) == 2


def test_the_limit_covers_the_link_route(limited: tuple[FlaskClient, FakeFlow]) -> None:
    client, flow = limited
    who = as_client("203.0.113.4")
    href = links_of(client.get(f"/authorize/{APPID}?auth_type=3", **who).text)["pc"]
    parts = urlsplit(href)
    statuses = [client.get(f"{parts.path}?{parts.query}", **who).status_code for _ in range(4)]
    assert statuses[0] == 302 and statuses[-1] == 429
    assert len(flow.issued) < 3
