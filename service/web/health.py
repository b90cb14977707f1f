"""GET /healthz: per component, how old the ticket is and when the token expires.

On the public service (SERVICE_ROLE=public) only that it is up. GET /readyz: whether this
instance reaches Firestore and WeChat (service.readiness), for Cloud Run's startup probe.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify

from service.store.records import ComponentRecord, StoreError
from service.web import runtime
from service.web.errors import error_response

bp = Blueprint("health", __name__)


def _iso(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat()


def component_health(record: ComponentRecord, now: float, stale_after: float) -> dict[str, Any]:
    received = record.ticket_received_at
    expires = record.component_token_expires_at if record.component_token else None
    ticket_age = None if received is None or not record.ticket else round(now - received, 1)
    return {
        "ticket_age_seconds": ticket_age,
        "ticket_create_time": record.ticket_create_time,
        "ticket_stale": ticket_age is None or ticket_age > stale_after,
        "component_token_expires_at": _iso(expires),
        "component_token_expires_in_seconds": None if expires is None else round(expires - now),
        "last_error": record.last_error,
        "last_error_at": _iso(record.last_error_at),
    }


@bp.get("/healthz")
def healthz() -> Response | tuple[Response, int]:
    rt = runtime()
    if not rt.settings.serves("internal"):
        # The public service answers anyone: it says it is up, and nothing about the state.
        return jsonify(status="ok", role="public")
    now = time.time()
    try:
        components = {
            appid: component_health(
                rt.store.get_component(appid), now, rt.settings.ticket_stale_after
            )
            for appid in rt.settings.components
        }
    except StoreError as exc:
        return error_response(503, str(exc))
    healthy = all(
        c["component_token_expires_in_seconds"] is not None
        and c["component_token_expires_in_seconds"] > 0
        and not c["ticket_stale"]
        for c in components.values()
    )
    extra: dict[str, Any] = {}
    if rt.settings.sweep_mode == "fanout":
        extra["sweep"] = _last_sweep()
    return jsonify(status="ok" if healthy else "degraded", components=components, **extra)


def _last_sweep() -> dict[str, Any] | None:
    """The last fanned-out sweep: its id, shards done and pending, counts by outcome."""
    try:
        state = runtime().sweep_progress.latest()
    except StoreError as exc:
        return {"error": str(exc)}
    return None if state is None else state.to_json()


@bp.get("/readyz")
def readyz() -> Response | tuple[Response, int]:
    """200 once Firestore answered and WeChat's API host was reached; 503 with the reason."""
    result = runtime().readiness.run()
    if not result.ready:
        return error_response(503, result.problem or "not ready")
    return jsonify(status="ready", firestore_ms=result.firestore_ms, egress_ms=result.egress_ms)
