"""The component both push URLs' tests use: mid-rotation, so both keys are accepted."""

from __future__ import annotations

import json

APPID = "wx0123456789abcdef"
TOKEN = "msgtoken"
KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # the previous EncodingAESKey
NEW_KEY = "ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlk0"  # the current one


def service_env(project: str) -> dict[str, str]:
    """The service's environment, with WeChat unreachable (127.0.0.1:9)."""
    return {
        "WECHAT_COMPONENTS": json.dumps(
            [
                {
                    "appid": APPID,
                    "secret": "appsecret",
                    "token": TOKEN,
                    "encoding_aes_key": NEW_KEY,
                    "previous_encoding_aes_key": KEY,
                }
            ]
        ),
        "GOOGLE_CLOUD_PROJECT": project,
        "WECHAT_API_BASE": "http://127.0.0.1:9",
        "SERVICE_API_KEYS": "k1",
    }
