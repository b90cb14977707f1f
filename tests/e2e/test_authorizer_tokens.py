"""The authorizer-token service's guarantees, end to end over real processes.

The emulator, mock WeChat over HTTP and gunicorn with 2 workers (4 connections each), as
in production but for WeChat. The service's clock is real: a token is made due by
rewriting its record in Firestore. WeChat's clock is the mock's: it is advanced to make
WeChat's own tokens expire. Upstream calls are counted in the mock's call log.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from devstack.processes import ManagedProcess, free_port
from devstack.stack import service_env, start_service
from tests.e2e.helpers import (
    advance_mock_clock,
    authorized_merchant,
    authorizer_url,
    log_entries,
    make_due,
    proxy,
    refresh,
    request_token,
    seed_authorizers,
    stored_authorizer,
    sync,
    token_calls,
    token_of,
    wait_for,
    wechat_refresh_tokens,
)
from tests.stack import API_KEY, E2E_PROJECT, Stack

pytestmark = pytest.mark.e2e

SWEEP_CONCURRENCY = 16  # the service's default (SWEEP_CONCURRENCY)
QUOTA_BACKOFF = 300  # the service's default first pause after 45009 (QUOTA_BACKOFF)
WORKER_CONNECTIONS = 4  # tests/stack.py: what one gunicorn worker serves at a time


def set_token_faults(stack: Stack, *rules: dict[str, object]) -> None:
    stack.mock.set_faults([{"api": "api_authorizer_token", **rule} for rule in rules])


def component_detail(stack: Stack, report: dict[str, object]) -> dict[str, int]:
    components = report["components"]
    assert isinstance(components, dict)
    detail: dict[str, int] = components[stack.demo.appid]["authorizers"]
    return detail


# ----- 1. one refresher ---------------------------------------------------------------


def test_24_concurrent_requests_for_an_expired_token_make_one_upstream_call(
    ready: Stack, merchant: str
) -> None:
    ready.mock.update_component(ready.demo.appid, {"authorizer_token_latency": 0.5})
    old = stored_authorizer(ready, merchant).access_token
    make_due(ready, merchant)

    with ThreadPoolExecutor(24) as pool:
        responses = list(pool.map(lambda _: request_token(ready, merchant), range(24)))

    assert [r.status_code for r in responses] == [200] * 24, [r.text for r in responses]
    bodies = [r.json() for r in responses]
    calls = token_calls(ready)
    assert len(calls) == 1, f"expected one api_authorizer_token call, the mock saw {calls}"
    tokens = {b["access_token"] for b in bodies}
    assert len(tokens) == 1 and old not in tokens, "callers got different tokens"
    assert stored_authorizer(ready, merchant).access_token in tokens
    outcomes = Counter(b["outcome"] for b in bodies)
    assert outcomes["renewed"] == 1 and set(outcomes) <= {"renewed", "waited", "fresh"}
    # Every "waited" caller was in flight when the renewer stored the token. One worker
    # serves 4 connections at a time, so more than 4 in flight means both workers served.
    assert outcomes["waited"] + 1 > WORKER_CONNECTIONS, f"not concurrent enough: {outcomes}"


def test_callers_reporting_the_same_rejected_token_get_one_new_token(
    ready: Stack, merchant: str
) -> None:
    ready.mock.update_component(ready.demo.appid, {"authorizer_token_latency": 0.5})
    stale = stored_authorizer(ready, merchant).access_token
    assert stale
    mark = len(ready.service.log_text())

    with ThreadPoolExecutor(24) as pool:
        bodies = list(pool.map(lambda _: token_of(ready, merchant, invalid_token=stale), range(24)))

    assert len(token_calls(ready)) == 1
    tokens = {b["access_token"] for b in bodies}
    assert len(tokens) == 1 and stale not in tokens
    assert Counter(b["outcome"] for b in bodies)["renewed"] == 1
    reports = log_entries(ready.service.log_text()[mark:], "authorizer token rejected by WeChat")
    assert len(reports) == 24
    assert sum(1 for r in reports if r["invalidated"]) == 1, "the token was forgotten twice"
    assert len({r["pid"] for r in reports}) == 2, "the requests did not reach both workers"

    # A caller reporting the older token again gets the current one, without a call.
    late = token_of(ready, merchant, invalid_token=stale)
    assert late["access_token"] in tokens and late["outcome"] == "fresh"
    assert len(token_calls(ready)) == 1


def test_a_token_valid_for_less_than_min_ttl_is_renewed_before_it_is_handed_out(
    ready: Stack, merchant: str
) -> None:
    old = stored_authorizer(ready, merchant).access_token
    make_due(ready, merchant, expires_at=time.time() + 400)  # more than the 300 s minimum
    assert token_of(ready, merchant) | {"expires_at": 0} == {
        "access_token": old,
        "expires_at": 0,
        "outcome": "fresh",
    }
    assert token_calls(ready) == []
    make_due(ready, merchant, expires_at=time.time() + 200)  # less
    renewed = token_of(ready, merchant)
    assert renewed["outcome"] == "renewed" and renewed["access_token"] != old
    assert renewed["expires_at"] > time.time() + 7000
    assert len(token_calls(ready)) == 1


# ----- 2. the refresh token first: rotation loses nothing -----------------------------


def test_rotated_refresh_tokens_are_stored_and_survive_the_overlap(
    ready: Stack, merchant: str
) -> None:
    ready.mock.update_component(ready.demo.appid, {"rotate_refresh_tokens": True})
    seen = [stored_authorizer(ready, merchant).refresh_token]
    for _ in range(3):
        make_due(ready, merchant)
        assert token_of(ready, merchant)["outcome"] == "renewed"
        current = stored_authorizer(ready, merchant).refresh_token
        assert current not in seen, "WeChat's rotated refresh token was not stored"
        assert wechat_refresh_tokens(ready)[merchant] == current
        seen.append(current)

    # Every superseded refresh token dies 300 s after its successor was issued.
    advance_mock_clock(ready, 301)
    make_due(ready, merchant)
    assert token_of(ready, merchant)["outcome"] == "renewed"
    assert [c["errcode"] for c in token_calls(ready)] == [0] * 4
    record = stored_authorizer(ready, merchant)
    assert record.status == "authorized"
    assert record.refresh_token == wechat_refresh_tokens(ready)[merchant]
    report = sync(ready)
    assert (report["unchanged"], report["updated"], report["recovered"]) == (1, [], [])


def test_an_answer_lost_after_rotation_loses_nothing(ready: Stack, merchant: str) -> None:
    ready.mock.update_component(ready.demo.appid, {"rotate_refresh_tokens": True})
    before = stored_authorizer(ready, merchant)
    # WeChat rotates the refresh token, then the answer is lost on the wire.
    set_token_faults(ready, {"delay_after": 0.1, "drop": True, "times": 1})
    make_due(ready, merchant)
    assert token_of(ready, merchant)["outcome"] == "renewed"
    calls = token_calls(ready)
    assert [(c["errcode"], c["http_status"]) for c in calls] == [(0, None), (0, 200)]
    record = stored_authorizer(ready, merchant)
    assert record.refresh_token != before.refresh_token
    assert record.refresh_token == wechat_refresh_tokens(ready)[merchant]

    advance_mock_clock(ready, 301)
    make_due(ready, merchant)
    assert token_of(ready, merchant)["outcome"] == "renewed"
    assert token_calls(ready)[-1]["errcode"] == 0


# ----- 3. crash safety ----------------------------------------------------------------


@dataclass(frozen=True)
class Instance:
    """One more service instance, sharing the stack's emulator and mock."""

    url: str
    process: ManagedProcess

    def token(self, stack: Stack, appid: str) -> requests.Response:
        url = authorizer_url(stack, appid, "/token").replace(stack.service_url, self.url)
        return requests.post(url, headers=stack.auth, timeout=60)


@contextmanager
def more_services(stack: Stack, logs: Path, count: int, **env: str) -> Iterator[list[Instance]]:
    """``count`` more service instances (1 worker each) on the same emulator and mock."""
    started: list[Instance] = []

    def start(number: int) -> None:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        environment = service_env(
            [stack.demo], url, stack.mock_url, E2E_PROJECT, stack.firestore_host, API_KEY
        )
        process = start_service(port, environment | env, logs / f"instance-{number}.log", workers=1)
        started.append(Instance(url, process))

    try:
        with ThreadPoolExecutor(count) as pool:  # started side by side: quicker
            for future in [pool.submit(start, number) for number in range(count)]:
                future.result()
        yield sorted(started, key=lambda instance: instance.process.log_path.name)
    finally:
        for instance in started:
            instance.process.stop()


def test_a_refresher_killed_mid_call_is_taken_over_and_nothing_is_lost(
    ready: Stack, merchant: str, tmp_path: Path
) -> None:
    ready.mock.update_component(ready.demo.appid, {"rotate_refresh_tokens": True})
    before = stored_authorizer(ready, merchant)
    with more_services(ready, tmp_path, 2, REFRESH_LEASE_SECONDS="3") as (a, b):
        # WeChat processes A's call (rotating the refresh token), then answers 2 s later.
        set_token_faults(ready, {"delay_after": 2.0, "times": 1})
        make_due(ready, merchant)
        with ThreadPoolExecutor(1) as pool:
            doomed = pool.submit(a.token, ready, merchant)
            wait_for(lambda: len(token_calls(ready)) == 1, 10, "asked by instance A")
            os.killpg(a.process.pid, signal.SIGKILL)
            with pytest.raises(requests.RequestException):
                doomed.result()
        orphan = stored_authorizer(ready, merchant)
        assert orphan.refresh_lease_owner and orphan.refresh_lease_until
        assert orphan.refresh_token == before.refresh_token  # A never stored WeChat's answer
        assert wechat_refresh_tokens(ready)[merchant] != before.refresh_token

        answer = b.token(ready, merchant)
        assert answer.status_code == 200, answer.text
        assert time.time() >= orphan.refresh_lease_until, "B did not wait for A's lease"
        assert answer.json()["outcome"] == "renewed"
        calls = token_calls(ready)
        assert len(calls) == 2 and calls[1]["errcode"] == 0
        record = stored_authorizer(ready, merchant)
        assert record.refresh_lease_owner is None
        assert record.access_token == answer.json()["access_token"]
        assert record.refresh_token == wechat_refresh_tokens(ready)[merchant]

        # Every refresh token but the stored one is dead now: the stored one must work.
        advance_mock_clock(ready, 301)
        make_due(ready, merchant)
        again = b.token(ready, merchant)
        assert again.status_code == 200, again.text
        assert again.json()["outcome"] == "renewed"
        assert [c["errcode"] for c in token_calls(ready)] == [0, 0, 0]


def test_a_slow_refresher_overtaken_by_another_loses_no_refresh_token(
    ready: Stack, merchant: str, tmp_path: Path
) -> None:
    """A's answer comes after its lease ran out and B took over, but before B's answer.

    WeChat saw A's call first and B's second, so B's refresh token is the current one
    and A's dies 300 s after B's call: the store must end with B's.
    """
    ready.mock.update_component(ready.demo.appid, {"rotate_refresh_tokens": True})
    with more_services(ready, tmp_path, 2, REFRESH_LEASE_SECONDS="3") as (a, b):
        set_token_faults(ready, {"delay_after": 4.5, "times": 1}, {"delay_after": 3.0, "times": 1})
        make_due(ready, merchant)
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(a.token, ready, merchant)
            wait_for(lambda: len(token_calls(ready)) == 1, 10, "asked by instance A")
            second = pool.submit(b.token, ready, merchant)
            wait_for(lambda: len(token_calls(ready)) == 2, 10, "asked by instance B")
            current_at_wechat = wechat_refresh_tokens(ready)[merchant]
            answers = [first.result(), second.result()]
        assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
        record = stored_authorizer(ready, merchant)
        assert record.refresh_token == current_at_wechat, (
            "the store kept the refresh token of the call WeChat answered first, "
            "not the one it issued last"
        )

        advance_mock_clock(ready, 301)
        make_due(ready, merchant)
        again = b.token(ready, merchant)
        assert again.status_code == 200, again.text


# ----- 4. transient errors ------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [{"errcode": -1}, {"http_status": 503}, {"drop": True}],
    ids=["system busy (-1)", "HTTP 503", "dropped connection"],
)
def test_a_transient_failure_is_retried_and_keeps_the_refresh_token(
    ready: Stack, merchant: str, fault: dict[str, object]
) -> None:
    before = stored_authorizer(ready, merchant)
    set_token_faults(ready, {**fault, "times": 1})
    make_due(ready, merchant)
    body = token_of(ready, merchant)
    assert body["outcome"] == "renewed" and body["access_token"] != before.access_token
    calls = token_calls(ready)
    assert len(calls) == 2 and calls[0]["fault"] is True
    assert (calls[1]["errcode"], calls[1]["http_status"]) == (0, 200)
    after = stored_authorizer(ready, merchant)
    assert after.status == "authorized" and after.last_error is None
    assert after.refresh_token == before.refresh_token
    assert after.access_token == body["access_token"]


def test_a_persistent_failure_answers_503_or_serves_the_valid_token(
    ready: Stack, merchant: str
) -> None:
    before = stored_authorizer(ready, merchant)
    set_token_faults(ready, {"errcode": -1})
    make_due(ready, merchant)

    failed = request_token(ready, merchant)
    assert failed.status_code == 503, failed.text
    assert "access_token" not in failed.json() and failed.json()["error"]
    assert {c["errcode"] for c in token_calls(ready)} == {-1}
    record = stored_authorizer(ready, merchant)
    assert record.status == "authorized" and record.refresh_token == before.refresh_token
    assert record.last_error and record.refresh_lease_owner is None

    # Valid for 100 s more: too short to hand out normally, but better than nothing.
    make_due(ready, merchant, expires_at=time.time() + 100)
    kept = token_of(ready, merchant)
    assert (kept["outcome"], kept["access_token"]) == ("kept", before.access_token)

    ready.mock.set_faults([])
    make_due(ready, merchant)
    renewed = token_of(ready, merchant)
    assert renewed["outcome"] == "renewed" and renewed["access_token"] != before.access_token
    after = stored_authorizer(ready, merchant)
    assert after.refresh_token == before.refresh_token and after.last_error is None
    assert token_calls(ready)[-1]["errcode"] == 0


# ----- 5. 61023: the refresh token refused ---------------------------------------------


def test_a_refused_refresh_token_marks_the_authorizer_and_is_logged_loudly(
    ready: Stack,
) -> None:
    by_request, by_sweep = authorized_merchant(ready), authorized_merchant(ready)
    set_token_faults(ready, {"errcode": 61023})
    mark = len(ready.service.log_text())

    make_due(ready, by_request)
    refused = request_token(ready, by_request)
    assert refused.status_code == 409, refused.text
    assert refused.json()["status"] == "needs_reauthorization"

    make_due(ready, by_sweep)
    report = refresh(ready)
    assert report["needs_reauthorization"] == 1
    assert component_detail(ready, report)["needs_reauthorization"] == 1
    assert len(token_calls(ready)) == 2

    for appid in (by_request, by_sweep):
        shown = requests.get(authorizer_url(ready, appid), headers=ready.auth, timeout=10)
        assert shown.json()["status"] == "needs_reauthorization"
        assert shown.json()["has_refresh_token"] is True  # kept: sync may recover it
        again = request_token(ready, appid)
        assert (again.status_code, again.json()["status"]) == (409, "needs_reauthorization")
        assert proxy(ready, appid, "cgi-bin/account/getaccountbasicinfo").status_code == 409
    assert len(token_calls(ready)) == 2  # no further call for a refused refresh token

    errors = [
        e
        for e in log_entries(ready.service.log_text()[mark:])
        if e["severity"] == "ERROR" and "61023" in e["message"]
    ]
    assert sorted(e["authorizer_appid"] for e in errors) == sorted([by_request, by_sweep])


# ----- 6. quota 45009 -----------------------------------------------------------------


def test_45009_stops_the_sweep_and_pauses_every_call_until_the_quota_is_cleared(
    ready: Stack,
) -> None:
    due = seed_authorizers(ready, 40, expires_at=time.time() - 1)
    set_token_faults(ready, {"errcode": 45009})

    first = refresh(ready)
    asked = len(token_calls(ready))
    assert 1 <= asked <= SWEEP_CONCURRENCY, f"{asked} calls: the sweep did not stop early"
    assert first["quota_exceeded"] == 40 and first["renewed"] == 0
    assert component_detail(ready, first)["due"] == 40

    second = refresh(ready)
    assert second["quota_exceeded"] == 40
    paused = request_token(ready, due[0])
    assert paused.status_code == 429, paused.text
    assert paused.json()["errcode"] == 45009 and int(paused.headers["Retry-After"]) >= 1
    assert len(token_calls(ready)) == asked  # not one call during the pause

    # WeChat would answer again, but the pause holds until the quota is cleared.
    ready.mock.set_faults([])
    assert request_token(ready, due[1]).status_code == 429
    assert len(token_calls(ready)) == asked
    cleared = requests.post(
        f"{ready.service_url}/api/v1/components/{ready.demo.appid}/clear_quota",
        headers=ready.auth,
        timeout=30,
    )
    assert cleared.status_code == 200, cleared.text
    assert [c["errcode"] for c in ready.mock.calls("component_clear_quota_v2")] == [0]
    assert token_of(ready, due[0])["outcome"] == "renewed"
    assert len(token_calls(ready)) == asked + 1


def test_during_a_quota_pause_a_still_valid_token_is_served_without_a_call(
    ready: Stack, merchant: str
) -> None:
    expired = seed_authorizers(ready, 1, expires_at=time.time() - 1)[0]
    set_token_faults(ready, {"errcode": 45009})
    assert request_token(ready, expired).status_code == 429  # 45009: the pause begins
    asked = len(token_calls(ready))
    assert asked == 1
    # Valid for 100 s more: renewing it would need the quota; the token still works.
    make_due(ready, merchant, expires_at=time.time() + 100)
    served = request_token(ready, merchant)
    assert served.status_code == 200, served.text
    assert served.json()["access_token"] == stored_authorizer(ready, merchant).access_token
    assert len(token_calls(ready)) == asked, "api_authorizer_token was called during the pause"


def test_one_burst_of_45009_answers_is_one_strike(ready: Stack) -> None:
    """The first pause after 45009 is QUOTA_BACKOFF, however many calls hit it at once."""
    seed_authorizers(ready, 20, expires_at=time.time() - 1)
    set_token_faults(ready, {"errcode": 45009})
    refresh(ready)
    assert len(token_calls(ready)) > 1  # several calls were in flight when 45009 came
    until = ready.store.get_component(ready.demo.appid).authorizer_token_quota_until
    assert until is not None
    assert until - time.time() <= QUOTA_BACKOFF, (
        f"paused {until - time.time():.0f} s after one sweep: each concurrent 45009 "
        "counted as a further strike"
    )


# ----- 7. stale tokens are never served -----------------------------------------------


def test_after_unauthorize_neither_token_nor_proxy_is_served(ready: Stack, merchant: str) -> None:
    assert token_of(ready, merchant)["outcome"] == "fresh"
    assert ready.mock.unauthorize(merchant, ready.demo.appid)["push"]["delivered"] is True
    refused = request_token(ready, merchant)
    assert refused.status_code == 409 and refused.json()["status"] == "revoked"
    assert "access_token" not in refused.json()
    proxied = proxy(ready, merchant, "cgi-bin/account/getaccountbasicinfo")
    assert proxied.status_code == 409 and proxied.json()["status"] == "revoked"
    assert token_calls(ready) == [] and ready.mock.calls("getaccountbasicinfo") == []


def test_a_renewal_racing_an_unauthorize_is_not_handed_out(ready: Stack, merchant: str) -> None:
    set_token_faults(ready, {"delay_after": 1.0, "times": 1})
    make_due(ready, merchant)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(request_token, ready, merchant)
        wait_for(lambda: len(token_calls(ready)) == 1, 10, "asked WeChat")
        # WeChat has issued the new token; its answer is on its way when the merchant leaves.
        assert ready.mock.unauthorize(merchant, ready.demo.appid)["push"]["delivered"] is True
        assert not pending.done()
        response = pending.result()
    assert response.status_code == 409, response.text
    assert response.json()["status"] == "revoked" and "access_token" not in response.json()
    record = stored_authorizer(ready, merchant)
    assert record.status == "revoked"
    assert (record.access_token, record.refresh_token) == (None, None)
    assert record.refresh_lease_owner is None
    assert request_token(ready, merchant).status_code == 409
    assert len(token_calls(ready)) == 1


# ----- 8. the sweep -------------------------------------------------------------------


def test_the_sweep_renews_due_tokens_and_leaves_fresh_ones(ready: Stack) -> None:
    now = time.time()
    expired = seed_authorizers(ready, 4, expires_at=now - 1)
    expiring = seed_authorizers(ready, 2, expires_at=now + 600)  # within the 900 s margin
    fresh = seed_authorizers(ready, 3, expires_at=now + 7000)

    report = refresh(ready)
    detail = component_detail(ready, report)
    assert (detail["due"], detail["renewed"]) == (6, 6), detail
    assert report["failed"] == 0
    assert [c["errcode"] for c in token_calls(ready)] == [0] * 6
    for appid in expired + expiring:
        record = stored_authorizer(ready, appid)
        assert record.access_token and not record.access_token.startswith("seeded-")
        assert record.access_token_expires_at and record.access_token_expires_at > now + 7000
    for appid in fresh:
        record = stored_authorizer(ready, appid)
        assert record.access_token and record.access_token.startswith("seeded-")
        assert record.access_token_expires_at == now + 7000

    again = refresh(ready)
    assert component_detail(ready, again)["due"] == 0
    assert len(token_calls(ready)) == 6


def test_two_sweeps_at_once_renew_each_due_token_once(ready: Stack) -> None:
    due = seed_authorizers(ready, 8, expires_at=time.time() - 1)
    ready.mock.update_component(ready.demo.appid, {"authorizer_token_latency": 0.3})
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda _: refresh(ready), range(2)))
    details = [component_detail(ready, r) for r in reports]
    assert all(d["due"] > 0 for d in details), f"the sweeps did not overlap: {details}"
    assert sum(d.get("renewed", 0) for d in details) == 8, details
    assert len(token_calls(ready)) == 8
    tokens = {stored_authorizer(ready, appid).access_token for appid in due}
    assert len(tokens) == 8 and not any(t and t.startswith("seeded-") for t in tokens)
