"""A Pub/Sub outage longer than WeChat's three tries: what is answered, delivered and lost.

Mock WeChat sends one menu click a second to an authorized account, as WeChat does (three
tries, 5 s each, a non-200 answer retried at once), to a gateway whose ``pubsub`` route
publishes everything. After 10 s the Pub/Sub emulator is stopped for 40 s, then started
again on the same port, its topic and subscription made again (the emulator keeps nothing),
as they would still exist in the cloud. Every message published is then pulled.

Counted: messages answered ``success`` (acknowledged to WeChat), those WeChat gave up on
after three refused tries (the user saw "该公众号暂时无法提供服务"), those that got through
on a later try, those delivered, and acknowledged ones never delivered (must be 0). Also
tries still refused more than 0.5 s after Pub/Sub answered again (the gateway's recovery),
and the longest a refused try took (at most MESSAGE_PUBLISH_DEADLINE, 3 s).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

from bench.stack import BenchError, BenchStack, progress
from devstack.pubsub_emulator import start_pubsub_emulator

TOPIC = "bench-outage"
KEPT = TOPIC + "-kept"
BEFORE, OUTAGE, AFTER = 10.0, 40.0, 20.0


def _pull_all(stack: BenchStack) -> set[str]:
    keys: set[str] = set()
    admin = stack.pubsub_admin()
    while batch := admin.pull(KEPT, 1000):
        for message in batch:
            envelope = json.loads(base64.b64decode(message["data"]))
            keys.add(envelope["fields"]["EventKey"])
    return keys


def _make_topic(stack: BenchStack) -> None:
    admin = stack.pubsub_admin()
    admin.create_topic(TOPIC)
    admin.create_pull_subscription(KEPT, TOPIC)


def run() -> dict[str, Any]:
    routes = json.dumps([{"name": "everything", "pubsub": TOPIC}])
    settings = {"MESSAGE_ROUTES": routes}
    with BenchStack("outage", service_settings=settings, pubsub=True) as stack:
        _make_topic(stack)
        [seeded] = stack.seed(1)
        account = seeded["authorizer_appid"]
        records: dict[str, dict[str, Any]] = {}
        sent_at: dict[str, float] = {}
        lock = threading.Lock()

        def send(key: str) -> None:
            record = stack.mock.send_message(
                account,
                stack.component.appid,
                msg_type="event",
                event="CLICK",
                fields={"EventKey": key},
            )
            with lock:
                records[key] = record

        threads: list[threading.Thread] = []
        delivered: set[str] = set()
        started = time.monotonic()
        stopped_at = back_at = 0.0
        progress(f"{BEFORE:g} s of messages, {OUTAGE:g} s of Pub/Sub outage, {AFTER:g} s after")
        for second in range(int(BEFORE + OUTAGE + AFTER)):
            now = time.monotonic() - started
            if second == int(BEFORE):
                delivered |= _pull_all(stack)  # the emulator forgets them when it stops
                assert stack.pubsub is not None
                port = int(stack.pubsub_host.rsplit(":", 1)[1])
                stack.pubsub.stop()
                stopped_at = now
                progress("Pub/Sub emulator stopped")
            if second == int(BEFORE + OUTAGE):
                stack.pubsub, _ = start_pubsub_emulator(stack.logs / "pubsub-2.log", port=port)
                back_at = time.monotonic() - started  # it answers again
                stack._processes.append(stack.pubsub)
                _make_topic(stack)
                progress(f"Pub/Sub emulator back after {back_at - stopped_at:.1f} s")
            key = f"m{second:03d}"
            sent_at[key] = now
            thread = threading.Thread(target=send, args=(key,))
            thread.start()
            threads.append(thread)
            time.sleep(max(0.0, started + second + 1 - time.monotonic()))
        for thread in threads:
            thread.join(60)
        time.sleep(2)
        delivered |= _pull_all(stack)
    if len(records) != len(sent_at):
        raise BenchError(f"{len(sent_at) - len(records)} sends never finished")
    acknowledged = {k for k, r in records.items() if r["outcome"] == "success"}
    given_up = {k for k, r in records.items() if r["outcome"] == "no_answer"}
    retried_through = {k for k in acknowledged if len(records[k]["tries"]) > 1}
    lost = acknowledged - delivered
    during = {k for k, t in sent_at.items() if stopped_at <= t < back_at}
    # When each refused try ended (the mock tries again at once): any after Pub/Sub was
    # back means the gateway was slow to see it.
    refused_after_back = 0
    for key, record in records.items():
        ended = sent_at[key]
        for attempt in record["tries"]:
            ended += attempt["seconds"]
            refused_after_back += attempt["http_status"] == 503 and ended > back_at + 0.5
    seconds_per_try = [
        t["seconds"] for k in given_up for t in records[k]["tries"] if t["http_status"] == 503
    ]
    row = {
        "outage_s": round(back_at - stopped_at, 1),
        "sent": len(records),
        "sent_during_outage": len(during),
        "acknowledged": len(acknowledged),
        "wechat_gave_up": len(given_up),
        "got_through_on_a_retry": len(retried_through),
        "delivered": len(delivered),
        "acknowledged_not_delivered": len(lost),
        "refused_after_back": refused_after_back,
        "refusal_s_max": round(max(seconds_per_try, default=0), 2),
    }
    if lost:
        raise BenchError(f"acknowledged but never delivered: {sorted(lost)}")
    return {
        "name": "a Pub/Sub outage longer than WeChat's three tries (1 message/s)",
        "unit": "messages",
        "baseline": "none: counts",
        "rows": [row],
    }
