"""Helpers shared by the end-to-end tests."""

from __future__ import annotations

import time
from typing import Any

import requests

from service.wechat.crypto import MessageCrypto
from service.wechat.messages import build_envelope
from tests.stack import Stack


def refresh(stack: Stack) -> dict[str, Any]:
    response = requests.post(f"{stack.service_url}/tasks/refresh", headers=stack.auth, timeout=60)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def signed_push(
    stack: Stack, xml: str, token: str | None = None, appid: str | None = None
) -> requests.Response:
    """A push built and signed here, as WeChat would (to replay or tamper with it)."""
    demo = stack.demo
    crypto = MessageCrypto(token or demo.token, demo.encoding_aes_key, appid or demo.appid)
    sealed = crypto.seal(xml, str(int(time.time())), "42")
    return requests.post(
        stack.events_url,
        params={
            "signature": sealed.signature,
            "timestamp": sealed.timestamp,
            "nonce": sealed.nonce,
            "encrypt_type": "aes",
            "msg_signature": sealed.msg_signature,
        },
        data=build_envelope(demo.appid, sealed.encrypt).encode(),
        headers={"Content-Type": "text/xml"},
        timeout=10,
    )
