"""The message-and-event URL under load: messages/s and latency at 1, 16 and 64 senders.

A plain text message to an ordinary authorized account (held in Firestore, with its gh_
id): what the bulk of a provider's traffic is. Two gateways, each under gunicorn as
``devstack`` starts it, 2 workers x 8 threads, on the Firestore emulator: one with no route
(answered ``success`` after the checks), one whose ``pubsub`` route publishes every message
to the Pub/Sub emulator and waits for its acknowledgement before answering. The emulator
shares the machine's cores with the load and the servers; Pub/Sub itself would not.

A second table compares the publisher's batching wait (MESSAGE_PUBLISH_MAX_LATENCY: 0, the
default 5 ms, 10 ms) at 16 senders.

Baseline, from the same run and measured the same way, level by level: a minimal Flask
handler under the same gunicorn settings that does what a peer SDK does per message,
wechatpy's ``WeChatCrypto.decrypt_message`` then its reply encryption (``bench.wechatpy_app``).
CPU per message is each server's process-group CPU time over a run divided by the
messages it answered, warm-up included (``cpu_ms``).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import urlencode

import requests

from bench.load import LoadResult, run_load
from bench.stack import BenchError, BenchStack, authorizer_record, group_cpu_seconds, progress
from bench.timing import percentile
from service.wechat.crypto import MessageCrypto
from service.wechat.messages import build_xml

LEVELS = (1, 16, 64)
WARMUP = 1.0
DURATION = 4.0
WORKERS, THREADS = 2, 8
USER_NAME = "gh_0123456789ab"
OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
BASELINE = "wechatpy decrypt + encrypt reply (baseline)"
OURS = "gateway: no route -> success"
PUBSUB = "gateway: pubsub route -> published, success"
BASELINE_WHAT = "minimal Flask + wechatpy decrypt_message and encrypt_message, same gunicorn"
TOPIC = "bench-messages"
BATCH_LEVEL = 16
BATCH_LATENCIES = (0.0, 0.005, 0.010)


def signed_message(stack: BenchStack) -> tuple[str, bytes]:
    """The query string and body of one text message, sealed as WeChat seals it."""
    component = stack.component
    xml = build_xml(
        {
            "ToUserName": USER_NAME,
            "FromUserName": OPENID,
            "CreateTime": int(time.time()),
            "MsgType": "text",
            "Content": "你好，请问今天营业到几点？",
            "MsgId": "6427251175451672521",
        }
    )
    crypto = MessageCrypto(component.token, component.encoding_aes_key, component.appid)
    sealed = crypto.seal(xml, str(int(time.time())), "1556906150")
    query = urlencode(
        {
            "signature": sealed.signature,
            "timestamp": sealed.timestamp,
            "nonce": sealed.nonce,
            "openid": OPENID,
            "encrypt_type": "aes",
            "msg_signature": sealed.msg_signature,
        }
    )
    body = build_xml({"ToUserName": USER_NAME, "Encrypt": sealed.encrypt}).encode()
    return query, body


def _measure(
    url: str, senders: int, body: bytes, headers: dict[str, str], pid: int
) -> tuple[LoadResult, float]:
    """The load result and the server's CPU milliseconds per message."""
    cpu_before = group_cpu_seconds(pid)
    result = run_load(url, senders, DURATION, WARMUP, headers=headers, body=body)
    answered = result.per_second * (WARMUP + DURATION)
    return result, (group_cpu_seconds(pid) - cpu_before) / answered * 1000


def _row(case: str, result: LoadResult, cpu_ms: float, baseline: LoadResult) -> dict[str, Any]:
    if result.errors:
        raise BenchError(
            f"{case} at {result.clients} senders: {result.errors} failed requests; "
            f"first: {result.first_error}"
        )
    return {
        "case": case,
        "senders": result.clients,
        "msg_per_s": round(result.per_second),
        "p50_ms": round(percentile(result.latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(result.latencies, 0.99) * 1000, 2),
        "cpu_ms": round(cpu_ms, 2),
        "ratio_vs_wechatpy": round(result.per_second / baseline.per_second, 3),
    }


def run() -> list[dict[str, Any]]:
    with BenchStack("messages", workers=WORKERS, threads=THREADS, pubsub=True) as stack:
        component = stack.component
        baseline_url, baseline_process = stack.start_gunicorn_process(
            "baseline-wechatpy",
            "bench.wechatpy_app:app",
            {
                "BENCH_TOKEN": component.token,
                "BENCH_AES_KEY": component.encoding_aes_key,
                "BENCH_APPID": component.appid,
            },
        )
        admin = stack.pubsub_admin()
        admin.create_topic(TOPIC)
        admin.create_pull_subscription(TOPIC + "-kept", TOPIC)  # a topic nobody reads drops
        routes = json.dumps([{"name": "everything", "pubsub": TOPIC}])
        publishers = {
            latency: stack.start_gateway(
                {"MESSAGE_ROUTES": routes, "MESSAGE_PUBLISH_MAX_LATENCY": str(latency)}
            )
            for latency in BATCH_LATENCIES
        }
        [seeded] = stack.seed(1)
        account = seeded["authorizer_appid"]
        record = authorizer_record(component.appid, account, seeded["refresh_token"], 7200)
        stack.write_authorizers([record.but(user_name=USER_NAME)])
        query, body = signed_message(stack)
        path = f"/wechat/{component.appid}/messages/{account}?{query}"
        headers = {"Content-Type": "text/xml"}
        for url in (stack.service_url, *(url for url, _ in publishers.values())):
            first = requests.post(url + path, data=body, headers=headers, timeout=30)
            if (first.status_code, first.text) != (200, "success"):
                raise BenchError(f"{url} answered {first.status_code}: {first.text[:300]}")
        published = admin.pull(TOPIC + "-kept", 1)
        if not published or "dedup_key" not in base64.b64decode(published[0]["data"]).decode():
            raise BenchError(f"the pubsub route published no envelope: {published}")
        assert stack.service is not None and stack.pubsub is not None
        pubsub_url, pubsub_process = publishers[0.005]
        rows, batching = [], []
        for senders in LEVELS:
            progress(f"{senders} sender(s): wechatpy baseline, the gateway, its pubsub route")
            baseline, baseline_cpu = _measure(
                baseline_url + path, senders, body, headers, baseline_process.pid
            )
            ours, ours_cpu = _measure(
                stack.service_url + path, senders, body, headers, stack.service.pid
            )
            emulator_before = group_cpu_seconds(stack.pubsub.pid)
            routed, routed_cpu = _measure(
                pubsub_url + path, senders, body, headers, pubsub_process.pid
            )
            emulator_ms = (group_cpu_seconds(stack.pubsub.pid) - emulator_before) * 1000
            rows.append(_row(BASELINE, baseline, baseline_cpu, baseline))
            rows.append(_row(OURS, ours, ours_cpu, baseline))
            rows.append(
                {
                    **_row(PUBSUB, routed, routed_cpu, baseline),
                    "emulator_cpu_ms": round(
                        emulator_ms / (routed.per_second * (WARMUP + DURATION)), 2
                    ),
                }
            )
            if senders == BATCH_LEVEL:
                for latency, (url, process) in publishers.items():
                    progress(f"{senders} senders: batching wait {latency * 1000:g} ms")
                    result, cpu = _measure(url + path, senders, body, headers, process.pid)
                    batching.append(
                        {
                            "max_latency_ms": latency * 1000,
                            **_row(PUBSUB, result, cpu, baseline),
                        }
                    )
    for row in rows:
        row.setdefault("emulator_cpu_ms", "")
    return [
        {
            "name": "message URL: a plain text message (2 workers x 8 threads)",
            "unit": "messages/s, ms",
            "baseline": BASELINE_WHAT,
            "rows": rows,
        },
        {
            "name": f"pubsub route: the publisher's batching wait, {BATCH_LEVEL} senders",
            "unit": "messages/s, ms",
            "baseline": "the wechatpy baseline at the same level, same run",
            "rows": [{k: v for k, v in row.items() if k != "case"} for row in batching],
        },
    ]
