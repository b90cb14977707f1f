"""POST /tasks/refresh: the periodic sweep, for Cloud Scheduler."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from service.web import runtime
from service.web.auth import require_api_key

bp = Blueprint("tasks", __name__)


@bp.post("/tasks/refresh")
@require_api_key
def refresh() -> Response:
    rt = runtime()
    report = rt.sweep.run(rt.settings.components)
    return jsonify(report.to_json())
