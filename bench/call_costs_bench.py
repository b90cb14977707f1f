"""The CPU of one call on a renewal's and a token hit's path, the gateway's way against the
library's usual way, measured in this process one after the other.

- Firestore read of an authorizer document: ``DocumentReference.get`` (baseline) against
  the store's plain-protobuf GetDocument (``service.store.wire``), decoding included.
- Firestore conditional update of two fields: ``DocumentReference.update`` with a
  ``last_update_time`` option (baseline) against ``DocumentWire.update``.
- A POST to an HTTP/1.1 keep-alive server (gunicorn with the service's settings serving a
  fixed JSON body, standing in for WeChat's API): a ``requests`` session (baseline)
  against the client's urllib3 pool (``service.wechat.client.build_http``).
- The same pool's POST to the mock (gunicorn, keeping connections alive as WeChat does):
  the benchmarks' renewals pay what they would pay WeChat (baseline: the pool's POST to
  the keep-alive stand-in).
- Conditional updates from 16 threads at once, each of its own document, as a shard's
  renewals make them: ``DocumentReference.update`` (baseline) against ``DocumentWire.update``,
  whose updates made at the same time share one BatchWrite.

``cpu_ms``: this process's CPU (all its threads, gRPC's included) per call, over
``CALLS`` calls after a warm-up. The emulator and the server's CPU are not counted.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from bench.stack import PROJECT, BenchStack, authorizer_record
from service.store.firestore import AUTHORIZERS, COMPONENTS, FirestoreStore
from service.wechat.client import build_http

CALLS = 2000
WARMUP = 200
THREADS = 16  # a shard's renewals at SWEEP_CONCURRENCY=16


def cpu_ms_per_call(call: Callable[[], object]) -> float:
    for _ in range(WARMUP):
        call()
    started = time.process_time()
    for _ in range(CALLS):
        call()
    return (time.process_time() - started) * 1000 / CALLS


def cpu_ms_per_update_in_threads(store: FirestoreStore, paths: list[str], library: bool) -> float:
    """Each thread updates its own document, all at once; this process's CPU per update."""
    start = threading.Barrier(len(paths) + 1)

    def updates(path: str) -> None:
        ref = store.client.document(path)
        version = ref.get().update_time
        start.wait()
        for _ in range(CALLS // len(paths)):  # the channel is warm from the calls before
            if library:
                option = store.client.write_option(last_update_time=version)
                version = ref.update(_lease(), option=option).update_time
            else:
                version = store.wire.update(path, _lease(), version)

    threads = [threading.Thread(target=updates, args=(p,)) for p in paths]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.process_time()
    for thread in threads:
        thread.join()
    return (time.process_time() - started) * 1000 / (len(paths) * (CALLS // len(paths)))


def _own_documents(stack: BenchStack, store: FirestoreStore, component: str) -> list[str]:
    records = [
        authorizer_record(component, f"wxcallcosts{i:07d}", "refresh@@@x", 7200)
        for i in range(1, THREADS + 1)
    ]
    stack.write_authorizers(records)
    return [f"{COMPONENTS}/{component}/{AUTHORIZERS}/{r.appid}" for r in records]


def run() -> dict[str, Any]:
    with BenchStack("call-costs", workers=1, threads=4) as stack:
        server = stack.start_gunicorn("wechat-stand-in", "bench.hello_app:app")
        os.environ["FIRESTORE_EMULATOR_HOST"] = stack.firestore_host
        store = FirestoreStore(project=PROJECT)
        component = stack.component.appid
        record = authorizer_record(component, "wxcallcosts0000001", "refresh@@@x", 7200)
        stack.write_authorizers([record])
        path = f"{COMPONENTS}/{component}/{AUTHORIZERS}/{record.appid}"
        ref = store.client.document(path)
        version = {"now": ref.get().update_time}

        def library_update() -> None:
            option = store.client.write_option(last_update_time=version["now"])
            version["now"] = ref.update(_lease(), option=option).update_time

        def wire_update() -> None:
            version["now"] = store.wire.update(path, _lease(), version["now"])

        session = requests.Session()
        pool = build_http(server)
        body = json.dumps({"component_appid": component, "authorizer_appid": record.appid})
        url = f"{server}/cgi-bin/component/api_authorizer_token?component_access_token=x"

        def requests_post() -> None:
            session.post(url, data=body, headers={"Content-Type": "application/json"}).json()

        def pool_post() -> None:
            answer = pool.request("POST", url, body=body.encode(), headers=_JSON)
            json.loads(answer.data)

        mock_pool = build_http(stack.mock_url)
        mock_url = f"{stack.mock_url}/cgi-bin/component/api_create_preauthcode?access_token=x"

        def mock_post() -> None:
            answer = mock_pool.request("POST", mock_url, body=body.encode(), headers=_JSON)
            json.loads(answer.data)

        pairs = [
            ("Firestore read", ref.get, lambda: store.wire.get(path)),
            ("Firestore conditional update", library_update, wire_update),
            ("POST to a keep-alive server", requests_post, pool_post),
            ("the pool's POST: to the mock instead (keep-alive too)", pool_post, mock_post),
        ]
        measured = [(c, cpu_ms_per_call(b), cpu_ms_per_call(g)) for c, b, g in pairs]
        paths = _own_documents(stack, store, component)
        measured.append(
            (
                f"Firestore conditional update, {THREADS} threads at once",
                cpu_ms_per_update_in_threads(store, paths, library=True),
                cpu_ms_per_update_in_threads(store, paths, library=False),
            )
        )
        rows = []
        for case, before, after in measured:
            print(f"  {case}: {before:.3f} ms, gateway {after:.3f} ms", flush=True)
            rows.append(
                {
                    "case": case,
                    "library_cpu_ms": round(before, 3),
                    "gateway_cpu_ms": round(after, 3),
                    "ratio_vs_library": round(after / before, 2),
                }
            )
    return {
        "name": "CPU per call on the hot paths",
        "unit": "ms of CPU per call (this process)",
        "baseline": "the library's usual call (DocumentReference.get/update, a requests session)",
        "rows": rows,
    }


_JSON = {"Content-Type": "application/json"}


def _lease() -> dict[str, Any]:
    return {"refresh_lease_owner": f"bench:{time.monotonic_ns()}", "refresh_lease_until": 1.0}
