"""Decrypt and verify a ticket push: this gateway against wechatpy's ``WeChatCrypto``.

Both sides do the same work on the same bytes: parse the envelope XML, check
msg_signature, AES-decrypt and check the AppId. Ours also refuses DTDs (defusedxml) and
compares in constant time; wechatpy uses xmltodict and ``!=``.
"""

from __future__ import annotations

from typing import Any

from bench.timing import best_rates
from service.wechat.crypto import MessageCrypto
from service.wechat.messages import build_envelope, build_xml, parse_envelope, parse_message

APPID = "wx0123456789abcdef"
TOKEN = "benchtoken"
KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def run() -> dict[str, Any]:
    from wechatpy.crypto import WeChatCrypto

    ours = MessageCrypto(TOKEN, KEY, APPID)
    xml = build_xml(
        {
            "AppId": APPID,
            "CreateTime": 1_700_000_000,
            "InfoType": "component_verify_ticket",
            "ComponentVerifyTicket": "ticket@@@" + "x" * 86,
        }
    )
    sealed = ours.seal(xml, "1700000000", "619113215")
    body = build_envelope(APPID, sealed.encrypt)
    theirs = WeChatCrypto(TOKEN, KEY, APPID)
    assert theirs.decrypt_message(body, sealed.msg_signature, "1700000000", "619113215") == xml

    def ours_open() -> object:
        envelope = parse_envelope(body)
        return ours.verify_and_decrypt(
            sealed.msg_signature, "1700000000", "619113215", envelope.encrypt
        )

    def ours_open_and_parse() -> object:
        return parse_message(ours_open().message)  # type: ignore[attr-defined]

    def wechatpy_open() -> object:
        return theirs.decrypt_message(body, sealed.msg_signature, "1700000000", "619113215")

    rates = best_rates(
        {"wechatpy": wechatpy_open, "ours": ours_open, "ours+typed": ours_open_and_parse}
    )
    baseline = rates["wechatpy"]
    return {
        "name": "crypto: decrypt + verify a ticket push",
        "unit": "ops/s",
        "baseline": "wechatpy WeChatCrypto.decrypt_message",
        "rows": [
            {
                "case": "wechatpy WeChatCrypto (baseline)",
                "ops_per_s": round(baseline),
                "ratio": 1.0,
            },
            {
                "case": "gateway: envelope + verify + decrypt",
                "ops_per_s": round(rates["ours"]),
                "ratio": round(rates["ours"] / baseline, 2),
            },
            {
                "case": "gateway: ... + typed message",
                "ops_per_s": round(rates["ours+typed"]),
                "ratio": round(rates["ours+typed"] / baseline, 2),
            },
        ],
    }
