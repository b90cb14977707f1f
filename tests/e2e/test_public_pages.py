"""What anonymous traffic costs on the public pages, on the real stack (mock WeChat, gunicorn
with 2 workers, the emulator), with the service's default rate limit.

Entry pages, links of ours that no entry page signed and callbacks with codes of another
shape cost nothing; well-shaped random codes and replays of a signed link cost a WeChat call
each, until the client's bucket is empty. And WeChat's error details stay in the log.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from service.config import PublicRateLimit
from service.web.authorize import WECHAT_COST
from tests.e2e.helpers import confirm_authorization, create_merchant, log_entries
from tests.stack import Stack

pytestmark = pytest.mark.e2e

WORKERS = 2  # the stack's gunicorn workers: each has its own buckets
DEFAULT = PublicRateLimit()
IP_ADDRESS = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")


def as_client(address: str) -> dict[str, str]:
    """Headers as Cloud Run passes a request on: it appends the address it saw to whatever
    X-Forwarded-For the client sent (here: a made-up one the client cannot choose by)."""
    return {"X-Forwarded-For": f"10.{secrets.randbelow(255)}.0.1, {address}"}


def entry_page(stack: Stack, client: str, **query: Any) -> requests.Response:
    return requests.get(
        f"{stack.service_url}/authorize/{stack.demo.appid}",
        params=query,
        headers=as_client(client),
        timeout=30,
    )


def signed_link(stack: Stack, client: str, page: str = "pc") -> str:
    entry = entry_page(stack, client, auth_type=3)
    assert entry.status_code == 200, entry.text
    found = re.search(rf'id="{page}-link" href="([^"]+)"', entry.text)
    assert found, entry.text
    return found.group(1).replace("&amp;", "&")


def callback(stack: Stack, client: str, code: str) -> requests.Response:
    return requests.get(
        f"{stack.service_url}/authorize/{stack.demo.appid}/callback",
        params={"auth_code": code, "expires_in": 3600},
        headers=as_client(client),
        timeout=60,
    )


def documents(stack: Stack) -> dict[str, Any]:
    """What the requests could have written: the code records, the authorizers, and the
    component's own document (its update time changes with any write)."""
    component = stack.store.client.collection("components").document(stack.demo.appid)
    return {
        "authorization_codes": sum(1 for _ in component.collection("authorization_codes").stream()),
        "authorizers": sum(1 for _ in component.collection("authorizers").stream()),
        "components": sum(1 for _ in stack.store.client.collection("components").stream()),
        "component_updated": component.get().update_time,
    }


def test_500_anonymous_requests_cost_a_bounded_handful(ready: Stack) -> None:
    client = "203.0.113.50"
    replayed = signed_link(ready, client)  # a real link, replayed by a script
    calls_before, stored_before = len(ready.mock.calls()), documents(ready)
    base = f"{ready.service_url}/authorize/{ready.demo.appid}"

    def anonymous(i: int) -> requests.Response:
        kind = i % 5
        headers = as_client(client)
        if kind == 0:  # entry pages with auth_type
            return requests.get(base, params={"auth_type": 3}, headers=headers, timeout=30)
        if kind == 1:  # our link route, without a signature from an entry page
            forged = {"go": "pc", "auth_type": 3, "sig": f"9999999999.{secrets.token_hex(8)}"}
            if i % 2:
                forged.pop("sig")
            return requests.get(
                base, params=forged, headers=headers, allow_redirects=False, timeout=30
            )
        if kind == 2:  # the same signed link again and again
            return requests.get(replayed, headers=headers, allow_redirects=False, timeout=30)
        if kind == 3:  # random codes of WeChat's shape
            return callback(ready, client, "queryauthcode@@@" + secrets.token_urlsafe(63))
        return callback(ready, client, secrets.token_urlsafe(30))  # another shape

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(anonymous, range(500)))
    elapsed = time.monotonic() - started

    statuses = [a.status_code for a in answers]
    calls = ready.mock.calls()[calls_before:]
    stored = documents(ready)
    # Each worker's bucket: the burst, plus what refilled meanwhile; a call takes WECHAT_COST.
    tokens = DEFAULT.burst + DEFAULT.per_minute * elapsed / 60
    bound = WORKERS * int(tokens // WECHAT_COST)
    print(
        f"\n500 anonymous requests in {elapsed:.1f} s: {statuses.count(429)} answered 429, "
        f"{len(calls)} WeChat calls (bound {bound}), "
        f"{stored['authorization_codes']} code records written"
    )

    assert 0 < len(calls) <= bound <= 2 * WORKERS * DEFAULT.burst // WECHAT_COST
    assert {c["api"] for c in calls} <= {"api_query_auth", "api_create_preauthcode"}
    # Nothing but the refused codes' records (one each) was written.
    query_auth = sum(1 for c in calls if c["api"] == "api_query_auth")
    assert stored["authorization_codes"] == stored_before["authorization_codes"] + query_auth
    for unchanged in ("authorizers", "components", "component_updated"):
        assert stored[unchanged] == stored_before[unchanged], unchanged
    # Beyond the buckets (each answer took at least a token) all were refused, told when
    # to come back.
    assert 500 - statuses.count(429) <= WORKERS * tokens
    assert statuses.count(429) >= 400
    refused = next(a for a in reversed(answers) if a.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1
    assert "Too many requests" in refused.text and "请求过于频繁" in refused.text
    # The cheap ones that got through cost nothing: forged links 403, odd codes 400.
    assert {statuses[i] for i in range(1, 500, 5)} <= {403, 429}
    assert {statuses[i] for i in range(4, 500, 5)} <= {400, 429}
    # Another client is not affected. The flood made a log line per worker, not one per
    # refused request.
    assert entry_page(ready, "203.0.113.51", auth_type=3).status_code == 200
    limited = log_entries(ready.service.log_text(), "public rate limit reached")
    assert 1 <= len([e for e in limited if e["client"] == client]) <= WORKERS


# ----- WeChat's error details stay in the log -------------------------------------------


def wechat_warnings(stack: Stack, message: str, api: str) -> list[dict[str, Any]]:
    return [
        e
        for e in log_entries(stack.service.log_text(), message)
        if e["severity"] == "WARNING"
        and e["component_appid"] == stack.demo.appid
        and e["errcode"] == 61004
        and "access clientip is not registered" in e["errmsg"]
        and (api in e["errmsg"] or e.get("api") == api)
    ]


def assert_generic(page: requests.Response) -> None:
    text = page.text
    for detail in ("clientip", "requestIP", "rid:", "61004", "not registered"):
        assert detail not in text, detail
    assert not IP_ADDRESS.search(text), IP_ADDRESS.search(text)


def test_61004_on_the_link_shows_a_generic_reason_and_logs_the_detail(ready: Stack) -> None:
    ready.mock.set_faults([{"api": "api_create_preauthcode", "errcode": 61004}])
    link = signed_link(ready, "203.0.113.60")
    page = requests.get(link, headers=as_client("203.0.113.60"), timeout=30)
    assert page.status_code == 502, page.text
    assert 'data-outcome="wechat_error"' in page.text
    assert_generic(page)
    assert len(ready.mock.calls("api_create_preauthcode")) == 1
    logged = wechat_warnings(
        ready, "authorization link not issued: WeChat error", "api_create_preauthcode"
    )
    assert len(logged) == 1, logged


def test_61004_on_the_callback_shows_a_generic_reason_and_logs_the_detail(ready: Stack) -> None:
    ready.mock.set_faults([{"api": "api_query_auth", "errcode": 61004}])
    page = callback(ready, "203.0.113.61", "queryauthcode@@@" + secrets.token_urlsafe(63))
    assert page.status_code == 502, page.text
    assert 'data-outcome="error"' in page.text
    assert_generic(page)
    assert len(ready.mock.calls("api_query_auth")) == 1
    logged = wechat_warnings(ready, "authorization callback: WeChat error", "api_query_auth")
    assert len(logged) == 1, logged


# ----- the real flow through our link --------------------------------------------------


def test_a_signed_link_redirects_to_wechat_with_one_fresh_code(ready: Stack) -> None:
    calls: Callable[[], int] = lambda: len(ready.mock.calls("api_create_preauthcode"))  # noqa: E731
    link = signed_link(ready, "203.0.113.70", page="h5")
    assert calls() == 0
    answer = requests.get(
        link, headers=as_client("203.0.113.70"), allow_redirects=False, timeout=30
    )
    assert answer.status_code == 302 and calls() == 1
    location = answer.headers["Location"]
    assert location.startswith(f"{ready.mock_url}/wxaopen/safe/bindcomponent?")
    assert "pre_auth_code=preauthcode%40%40%40" in location
    assert answer.headers["Referrer-Policy"] == "origin"
    assert urlsplit(link).netloc == urlsplit(ready.service_url).netloc


def test_a_callback_url_shows_the_account_once_then_only_that_it_is_done(ready: Stack) -> None:
    merchant = create_merchant(ready)
    code = confirm_authorization(ready, merchant)["auth_code"]  # the push exchanged it
    first = callback(ready, "198.51.100.7", code)
    assert first.status_code == 200 and merchant in first.text and "测试" in first.text
    for _ in range(2):  # a leaked or shared URL, opened again
        again = callback(ready, "198.51.100.8", code)
        assert again.status_code == 200 and 'data-outcome="authorized"' in again.text
        assert merchant not in again.text and "测试公司" not in again.text
