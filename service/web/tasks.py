"""POST /tasks/refresh: the periodic sweep, for Cloud Scheduler."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from service.web import runtime
from service.web.auth import require_api_key
from service.web.console_log import record_sweep

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
