"""POST /tasks/refresh: the periodic sweep, for Cloud Scheduler; POST /tasks/refresh-shard:
one shard of a fanned-out sweep (SWEEP_MODE=fanout), pushed by Pub/Sub (service.sweep_shards).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from service.store.records import StoreError
from service.sweep_shards import Shard, ShardError
from service.web import runtime
from service.web.auth import require_api_key
from service.web.console_log import record_sweep
from service.web.errors import error_response

bp = Blueprint("tasks", __name__)


@bp.post("/tasks/refresh")
@require_api_key
def refresh() -> tuple[Response, int]:
    rt = runtime()
    report = rt.sweep.run(rt.settings.components)
    record_sweep(report.to_json())  # for the console's overview
    # 503 when something failed that a retry may fix, so Cloud Scheduler retries with
    # backoff; 61023, 61003 and 45009 are not retried (a retry cannot help).
    return jsonify(report.to_json()), 503 if report.failed else 200


@bp.post("/tasks/refresh-shard")
@require_api_key
def refresh_shard() -> Response | tuple[Response, int]:
    """2xx: the shard is done (renewed, skipped, or left to the next sweep: 45009, its
    deadline passed). 503: Pub/Sub redelivers it (a failure or a lease a retry may get
    past). 400: not a shard (Pub/Sub retries it until the subscription's dead letter takes it)."""
    rt = runtime()
    try:
        shard = Shard.from_push(request.get_json(force=True, silent=True))
    except ShardError as exc:
        return error_response(400, str(exc))
    if shard.component not in rt.settings.components:
        return error_response(400, f"unknown component {shard.component}")
    try:
        result = rt.shard_runner.run(shard)
    except StoreError as exc:
        return error_response(503, str(exc))
    body = jsonify(
        sweep_id=shard.sweep_id, shard=shard.key, counts=result.counts, recorded=result.recorded
    )
    return body, 503 if result.retry else 200
