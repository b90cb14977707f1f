"""Faults on the wire, end to end (gunicorn with 2 workers, the mock, the emulator).

- Sync never writes older data over newer: a rotation and a revocation made while its walk
  of WeChat's list is slow are left as they are.
- A call that must not run twice is sent once: a code exchange whose answer is lost is
  recovered from WeChat (no authorization lost), a customer-service message or a quota
  reset whose answer is lost is not sent again.
- Drops, lost answers and 5xx on every kind of WeChat call leave no credential in the
  service's log, whichever library wrote the line (urllib3 logs the URLs it retries).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.e2e.helpers import (
    authorized_merchant,
    confirm_authorization,
    create_merchant,
    make_due,
    request_token,
    stored_authorizer,
    sync,
    token_of,
    wechat_refresh_tokens,
)
from tests.stack import Stack

pytestmark = pytest.mark.e2e

LOSE_ANSWER = {"delay_after": 0.05, "drop": True, "times": 1}  # processed, then dropped
BASIC_INFO = "cgi-bin/account/getaccountbasicinfo"
CUSTOM_SEND = "cgi-bin/message/custom/send"


def proxy(stack: Stack, appid: str, path: str, method: str = "GET", **kw: Any) -> Any:
    url = f"{stack.service_url}/api/v1/components/{stack.demo.appid}/authorizers/{appid}"
    return requests.request(method, f"{url}/proxy/{path}", headers=stack.auth, timeout=60, **kw)


def callback_url(stack: Stack, code: str) -> str:
    """Where WeChat sends the merchant's browser back with the code."""
    base = f"{stack.service_url}/authorize/{stack.demo.appid}/callback"
    return f"{base}?auth_code={code}&expires_in=3600"


# ----- calls that must not run twice --------------------------------------------------------


def test_a_lost_code_exchange_answer_loses_no_authorization_push_first(ready: Stack) -> None:
    merchant = create_merchant(ready)
    ready.mock.set_faults([{"api": "api_query_auth", **LOSE_ANSWER}])
    confirmed = confirm_authorization(ready, merchant)  # the push comes first, then we call
    assert confirmed["push"]["delivered"], confirmed
    record = stored_authorizer(ready, merchant)
    assert record.status == "authorized" and record.refresh_token
    assert len(ready.mock.calls("api_query_auth")) == 1  # never sent twice
    callback = requests.get(callback_url(ready, confirmed["auth_code"]), timeout=30)
    assert callback.status_code == 200 and "授权成功" in callback.text
    # The recovered authorization has no access token yet: the first request renews it.
    assert token_of(ready, merchant)["outcome"] == "renewed"


def test_a_lost_code_exchange_answer_loses_no_authorization_callback_first(
    ready: Stack,
) -> None:
    ready.mock.update_component(ready.demo.appid, {"auth_push": "hold"})
    merchant = create_merchant(ready)
    ready.mock.set_faults([{"api": "api_query_auth", **LOSE_ANSWER}])
    confirmed = confirm_authorization(ready, merchant)
    callback = requests.get(callback_url(ready, confirmed["auth_code"]), timeout=60)
    assert callback.status_code == 200 and "授权成功" in callback.text, callback.text
    assert stored_authorizer(ready, merchant).refresh_token
    released = ready.mock.release_held()["pushes"]
    assert [p["delivered"] for p in released] == [True]
    assert len(ready.mock.calls("api_query_auth")) == 1


def test_a_customer_message_whose_answer_is_lost_is_not_sent_twice(
    ready: Stack, merchant: str
) -> None:
    user = "o-user-lost"
    assert ready.mock.send_message(merchant, ready.demo.appid, content="hi", from_user=user)
    ready.mock.set_faults([{"api": "message_custom_send", **LOSE_ANSWER}])
    message = {"touser": user, "msgtype": "text", "text": {"content": "hello"}}
    answer = proxy(ready, merchant, CUSTOM_SEND, "POST", json=message)
    assert answer.status_code in (502, 504), answer.text
    sent = ready.mock._call("GET", "/messages")["messages"]
    assert [m["text"]["content"] for m in sent] == ["hello"]  # WeChat sent it, once
    assert len(ready.mock.calls("message_custom_send")) == 1


def test_a_quota_reset_whose_answer_is_lost_is_spent_once(ready: Stack) -> None:
    ready.mock.set_faults([{"api": "component_clear_quota_v2", **LOSE_ANSWER}])
    response = requests.post(
        f"{ready.service_url}/api/v1/components/{ready.demo.appid}/clear_quota",
        headers=ready.auth,
        timeout=60,
    )
    assert response.status_code >= 500, response.text
    assert len(ready.mock.calls("component_clear_quota_v2")) == 1


# ----- no credential in any log line -------------------------------------------------------


def test_faults_on_every_kind_of_call_leave_no_credential_in_the_log(e2e: Stack) -> None:
    e2e.mock.set_faults(
        [
            {"api": "api_component_token", "drop": True, "times": 1},
            {"api": "api_create_preauthcode", "drop": True, "times": 1},
            {"api": "api_query_auth", **LOSE_ANSWER},
            {"api": "api_authorizer_token", "drop": True, "times": 1},
            {"api": "api_authorizer_token", "http_status": 503, "times": 1},
            {"api": "getaccountbasicinfo", "drop": True, "times": 1},
            {"api": "getaccountbasicinfo", "http_status": 502, "times": 1},
            {"api": "message_custom_send", **LOSE_ANSWER},
        ]
    )
    assert e2e.mock.push_ticket(e2e.demo.appid)["delivered"]
    merchant = create_merchant(e2e)
    assert confirm_authorization(e2e, merchant)["push"]["delivered"]  # the answer is lost
    assert stored_authorizer(e2e, merchant).refresh_token  # recovered all the same
    assert request_token(e2e, merchant).status_code == 200  # renewed after a drop and a 503
    assert proxy(e2e, merchant, BASIC_INFO).status_code == 502  # dropped: not repeated
    assert proxy(e2e, merchant, BASIC_INFO).status_code == 502  # WeChat's own 502
    assert proxy(e2e, merchant, BASIC_INFO).status_code == 200
    e2e.mock.send_message(merchant, e2e.demo.appid, content="hi", from_user="o-user")
    message = {"touser": "o-user", "msgtype": "text", "text": {"content": "hello"}}
    proxy(e2e, merchant, CUSTOM_SEND, "POST", json=message)
    assert e2e.mock._call("GET", "/faults")["rules"] == [
        rule for rule in e2e.mock._call("GET", "/faults")["rules"] if rule["times"] == 0
    ], "every fault should have fired"

    log = e2e.service.log_text()
    assert "Retrying" in log  # urllib3 did log its retries: the lines exist, masked
    for secret in issued_credentials(e2e, merchant):
        assert secret not in log, f"{secret[:16]}... is in the service log"


def issued_credentials(stack: Stack, merchant: str) -> list[str]:
    """Every credential of this run: the mock's issued ones, the stored ones, the config."""
    issued = stack.mock._call("GET", "/credentials")["credentials"]
    values = [value for values in issued.values() for value in values]
    component = stack.store.get_component(stack.demo.appid)
    record = stored_authorizer(stack, merchant)
    for value in (component.ticket, component.component_token):
        assert value
        values.append(value)
    values += [record.access_token or "", record.refresh_token or ""]
    values += [stack.demo.secret, stack.demo.token, stack.demo.encoding_aes_key]
    assert all(values) and len(values) > 10
    return values


# ----- sync never writes older data over newer ------------------------------------------------


def test_sync_leaves_alone_what_changed_while_its_walk_was_slow(ready: Stack) -> None:
    rotated, revoked = authorized_merchant(ready), authorized_merchant(ready)
    ready.mock.update_component(ready.demo.appid, {"rotate_refresh_tokens": True})
    # WeChat reads its list at once and sends the page 3 s later: the page is old on arrival.
    ready.mock.set_faults([{"api": "api_get_authorizer_list", "delay_after": 3, "times": 1}])
    with ThreadPoolExecutor(max_workers=1) as pool:
        walking = pool.submit(sync, ready)
        time.sleep(1)  # the page has been read at WeChat; now the world changes
        make_due(ready, rotated)
        assert token_of(ready, rotated)["outcome"] == "renewed"  # a new refresh token
        assert ready.mock.unauthorize(revoked, ready.demo.appid)["push"]["delivered"]
        report = walking.result(30)
    assert report["updated"] == [] and report["recovered"] == [], report
    held_by_wechat = wechat_refresh_tokens(ready)[rotated]
    assert stored_authorizer(ready, rotated).refresh_token == held_by_wechat
    assert stored_authorizer(ready, revoked).status == "revoked"
