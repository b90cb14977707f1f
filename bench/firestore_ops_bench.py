"""Firestore documents read and written per token request, per refresh and per push.

The service runs in this process (werkzeug's threaded server on a free port), so its
store's own counter is read before and after each operation; the emulator and the mock
are the real processes. Operations are driven the way production drives them: the mock
pushes over HTTP, the token API and the sweep are called over HTTP.

The baseline ("floor") is the fewest documents any design with one durable record per
credential must touch: a cache hit reads one; a refresh with one refresher reads the
record and writes the lease and the result; a push writes its record once.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from google.cloud import firestore
from werkzeug.serving import make_server

from devstack.emulator import start_emulator
from devstack.processes import free_port
from devstack.stack import MockControl, demo_component, mock_registration, service_env, start_mock
from service import create_app
from service.console_pushlog import PushLog
from service.runtime import Runtime
from service.store.firestore import FirestoreStore
from service.store.records import AuthorizerRecord
from service.sweep_shards import Shard, due_pages, new_sweep_id
from service.web.console_log import push_log

PROJECT = "gateway-bench-ops"
API_KEY = "bench-key"
SAMPLES = 20


def run() -> dict[str, Any]:
    logs = Path(tempfile.mkdtemp(prefix="bench-ops-"))
    emulator, host = start_emulator(logs / "emulator.log")
    mock_port, service_port = free_port(), free_port()
    mock_process = start_mock(mock_port, logs / "mock.log")
    server = None
    try:
        os.environ["FIRESTORE_EMULATOR_HOST"] = host
        demo = demo_component()
        mock_url, service_url = f"http://127.0.0.1:{mock_port}", f"http://127.0.0.1:{service_port}"
        env = service_env([demo], service_url, mock_url, PROJECT, host, API_KEY)
        app = create_app({**env, "LOG_LEVEL": "WARNING", "SWEEP_JITTER": "0"})
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access lines
        store: FirestoreStore = app.extensions["gateway"].store
        with app.app_context():
            log = push_log()  # the console's push log of this process
        server = make_server("127.0.0.1", service_port, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        runtime: Runtime = app.extensions["gateway"]
        rows = measure(store, demo.appid, service_url, MockControl(mock_url), demo, log, runtime)
    finally:
        if server is not None:
            server.shutdown()
        mock_process.stop()
        emulator.stop()
    return {
        "name": "Firestore documents per operation",
        "unit": "documents read / written",
        "baseline": "floor: the fewest documents a design with one record per credential needs",
        "rows": rows,
    }


def measure(
    store: FirestoreStore,
    component: str,
    service_url: str,
    mock: MockControl,
    demo: Any,
    log: PushLog,
    runtime: Runtime,
) -> list[dict[str, Any]]:
    auth = {"Authorization": f"Bearer {API_KEY}"}
    session = requests.Session()
    session.headers.update(auth)
    api = f"{service_url}/api/v1/components/{component}"
    rows: list[dict[str, Any]] = []

    def row(case: str, floor: int, action: Callable[[], object], times: int = 1) -> None:
        before = store.ops.snapshot()
        for _ in range(times):
            action()
        reads, writes = (b - a for a, b in zip(before, store.ops.snapshot(), strict=True))
        per_read, per_write = reads / times, writes / times
        rows.append(
            {
                "case": case,
                "reads": round(per_read, 2),
                "writes": round(per_write, 2),
                "floor": floor,
                "ratio_vs_floor": round((per_read + per_write) / floor, 2) if floor else "-",
            }
        )
        print(f"  {case}: {per_read:.2f} reads, {per_write:.2f} writes", flush=True)

    mock.register_component(
        mock_registration(
            demo,
            event_url=f"{service_url}/wechat/{component}/events",
            auth_domain="127.0.0.1",
            message_url=f"{service_url}/wechat/{component}/messages/$APPID$",
            auto_push=False,
        )
    )
    row("ticket push (component_verify_ticket)", 1, lambda: mock.push_ticket(component))
    sweep_url = f"{service_url}/tasks/refresh"
    row("first sweep: component token renewed", 3, lambda: post(session, sweep_url))
    merchant = mock.create_account(
        {
            "type": "official_account",
            "nick_name": "基准",
            "principal_name": "基准公司",
            "admin": "a",
        }
    )["appid"]

    def authorize() -> None:
        code = post(session, f"{api}/authorize-links", {"auth_type": 1})["pre_auth_code"]
        mock.authorize(
            {"component_appid": component, "pre_auth_code": code, "authorizer_appid": merchant}
        )

    row("authorization: links, push, code exchanged, profile", 3, authorize)

    def message() -> None:
        delivery = mock.send_message(merchant, component, content="营业到几点？")
        if delivery["outcome"] != "success":
            raise RuntimeError(f"the message was not answered success: {delivery}")

    # The floor of an ordinary message is 0: nothing needs storing, and the account's gh_
    # id is read once per process (then cached) to check it against ToUserName.
    row("message to an account, first in this process", 1, message)
    row("message to an account, cached (the bulk)", 0, message, times=SAMPLES)
    # The console's push log holds those messages in memory; once PUSH_LOG_FLUSH_INTERVAL
    # (60 s) is up, the next request writes them all as one document: at most 1,440 writes a
    # day per process, whatever the volume. Played here by calling the flush itself.
    held = len(log.recent([component], 0))
    interval, log.flush_interval = log.flush_interval, 0.0
    row(f"push log flush: {held} messages held, one document", 1, log.flush_if_due)
    log.flush_interval = interval
    last_push = len(mock.pushes()) - 1
    row("duplicate push (redelivered)", 1, lambda: mock.redeliver(last_push))
    token_url = f"{api}/authorizers/{merchant}/token"
    row("token request, cache hit", 1, lambda: post(session, token_url), times=SAMPLES)

    writer = firestore.Client(project=PROJECT)  # not counted: plays the passing of time
    ref = writer.document(f"components/{component}/authorizers/{merchant}")

    def expired_then_requested() -> None:
        ref.update({"access_token_expires_at": time.time() - 1})
        post(session, token_url)

    row("token request that renews", 3, expired_then_requested, times=5)
    row(
        "proxied call (getaccountbasicinfo)",
        1,
        lambda: session.get(
            f"{api}/authorizers/{merchant}/proxy/cgi-bin/account/getaccountbasicinfo", timeout=30
        ).raise_for_status(),
        times=5,
    )
    seeded = mock._call(  # noqa: SLF001 - the mock's bulk seeding has no wrapper yet
        "POST", f"/components/{component}/authorizers/seed", {"count": SAMPLES}
    )["authorizers"]
    batch = writer.batch()
    for item in seeded:
        record = AuthorizerRecord(
            component_appid=component,
            appid=item["authorizer_appid"],
            refresh_token=item["refresh_token"],
            access_token="seed",
            access_token_expires_at=time.time() + 3600,  # fresh until made due below
            account_type="official_account",
        )
        batch.set(
            writer.document(f"components/{component}/authorizers/{record.appid}"),
            record.to_document(),
        )
    batch.commit()
    row("sweep with nothing due (fixed cost)", 2, lambda: post(session, sweep_url))
    ref_all = [
        writer.document(f"components/{component}/authorizers/{i['authorizer_appid']}")
        for i in seeded
    ]
    for doc in ref_all:
        doc.update({"access_token_expires_at": time.time() + 60})
    before = store.ops.snapshot()
    report = post(session, sweep_url)
    reads, writes = (b - a for a, b in zip(before, store.ops.snapshot(), strict=True))
    if report["renewed"] != SAMPLES:
        raise RuntimeError(f"sweep renewed {report['renewed']} of {SAMPLES}: {report}")
    fixed = rows[-1]
    per_read = (reads - fixed["reads"]) / SAMPLES
    per_write = (writes - fixed["writes"]) / SAMPLES
    rows.append(
        {
            "case": "sweep: per authorizer renewed",
            "reads": round(per_read, 2),
            "writes": round(per_write, 2),
            "floor": 3,
            "ratio_vs_floor": round((per_read + per_write) / 3, 2),
        }
    )
    print(f"  sweep per authorizer: {per_read:.2f} reads, {per_write:.2f} writes", flush=True)
    rows.append(fanned_out(store, runtime, component, ref_all))
    return rows


def fanned_out(
    store: FirestoreStore, runtime: Runtime, component: str, refs: list[Any]
) -> dict[str, Any]:
    """SWEEP_MODE=fanout per authorizer renewed, in one shard of them all: what the sweep
    reads to publish (its paged query) and what the shard reads and writes, its progress
    included. Pub/Sub is left out (it is no Firestore operation): the shard is handed to
    the runner as the push would hand it."""
    for doc in refs:
        doc.update({"access_token_expires_at": time.time() + 60})
    before = store.ops.snapshot()
    sweep_id = new_sweep_id(time.time())
    runtime.sweep_progress.begin(sweep_id)
    margin = runtime.settings.authorizer_token_refresh_margin
    appids = [a for page in due_pages(store, component, time.time() + margin) for a in page]
    shard = Shard(sweep_id, component, 0, tuple(appids), margin, time.time() + 600)
    runtime.sweep_progress.published(sweep_id, 1, Counter())
    result = runtime.shard_runner.run(shard)
    reads, writes = (b - a for a, b in zip(before, store.ops.snapshot(), strict=True))
    if result.counts.get("renewed") != len(refs):
        raise RuntimeError(f"the shard renewed {result.counts} of {len(refs)}")
    per_read, per_write = reads / len(refs), writes / len(refs)
    print(f"  fan-out per authorizer: {per_read:.2f} reads, {per_write:.2f} writes", flush=True)
    return {
        "case": f"fan-out sweep: per authorizer renewed (one shard of {len(refs)}, "
        "its progress included)",
        "reads": round(per_read, 2),
        "writes": round(per_write, 2),
        "floor": 3,
        "ratio_vs_floor": round((per_read + per_write) / 3, 2),
    }


def post(session: requests.Session, url: str, body: Any = None) -> dict[str, Any]:
    response = session.post(url, json=body or {}, timeout=60)
    if response.status_code >= 400:
        raise RuntimeError(f"POST {url}: {response.status_code} {response.text[:300]}")
    result: dict[str, Any] = response.json()
    return result
