"""The message benchmark's baseline: what a peer SDK does for each message, and no more.

A minimal Flask handler that opens the push with wechatpy's ``WeChatCrypto.decrypt_message``
and answers with its reply encryption (``encrypt_message``), served by gunicorn with the
service's own settings. The component comes from ``BENCH_TOKEN``, ``BENCH_AES_KEY`` and
``BENCH_APPID``.
"""

from __future__ import annotations

import os
import time

from flask import Flask, Response, request
from wechatpy.crypto import WeChatCrypto

REPLY = (
    "<xml><ToUserName><![CDATA[o_user]]></ToUserName><FromUserName><![CDATA[gh_account]]>"
    "</FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
    "<Content><![CDATA[ok]]></Content></xml>"
)

app = Flask(__name__)
crypto = WeChatCrypto(
    os.environ["BENCH_TOKEN"], os.environ["BENCH_AES_KEY"], os.environ["BENCH_APPID"]
)


@app.get("/")
def ready() -> str:
    return "ok"


@app.post("/wechat/<component>/messages/<account>")
def message(component: str, account: str) -> Response:
    args = request.args
    crypto.decrypt_message(
        request.get_data(), args["msg_signature"], args["timestamp"], args["nonce"]
    )
    now = int(time.time())
    body = crypto.encrypt_message(REPLY.format(now=now), args["nonce"], now)
    return Response(body, mimetype="text/xml")
