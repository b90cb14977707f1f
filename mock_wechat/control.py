"""The control plane under ``/_mock/``: set up components, faults and the clock, read logs.

JSON in and out. Bad input is HTTP 400 ``{"error": "<field>: <reason>"}``; an unknown
component is 404. Handlers parse with ``inputs`` and call the model.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from mock_wechat.config import InvalidField
from mock_wechat.ext import services
from mock_wechat.inputs import (
    json_object,
    parse_advance,
    parse_component,
    parse_component_patch,
    parse_fault_rules,
)
from mock_wechat.models import API_NAMES, UnknownComponentError

bp = Blueprint("mock_control", __name__, url_prefix="/_mock")


@bp.errorhandler(InvalidField)
def bad_input(exc: InvalidField) -> tuple[Response, int]:
    return jsonify(error=str(exc)), 400


@bp.errorhandler(UnknownComponentError)
def unknown_component(exc: UnknownComponentError) -> tuple[Response, int]:
    return jsonify(error=f"unknown component: {exc.appid}"), 404


def _body() -> dict[str, Any]:
    return json_object(request.get_data(cache=False))


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.post("/components")
def register_component() -> tuple[Response, int]:
    config = parse_component(_body())
    return jsonify(services().state.register_component(config)), 201


@bp.get("/components")
def list_components() -> Response:
    return jsonify(components=services().state.list_components())


@bp.get("/components/<appid>")
def get_component(appid: str) -> Response:
    return jsonify(services().state.get_component(appid))


@bp.patch("/components/<appid>")
def update_component(appid: str) -> Response:
    patch = parse_component_patch(_body())
    return jsonify(services().state.update_component(appid, patch))


@bp.post("/components/<appid>/push-ticket")
def push_ticket(appid: str) -> Response:
    return jsonify(services().pusher.push_ticket(appid).to_dict())


@bp.get("/calls")
def calls() -> Response:
    return jsonify(calls=services().state.calls(request.args.get("api")))


@bp.get("/pushes")
def pushes() -> Response:
    return jsonify(pushes=services().state.pushes())


@bp.get("/faults")
def list_faults() -> Response:
    return jsonify(rules=services().state.list_faults())


@bp.post("/faults")
def set_faults() -> Response:
    state = services().state
    state.set_faults(parse_fault_rules(_body(), API_NAMES))
    return jsonify(rules=state.list_faults())


@bp.delete("/faults")
def clear_faults() -> Response:
    services().state.clear_faults()
    return jsonify(rules=[])


@bp.get("/clock")
def get_clock() -> Response:
    return jsonify(now=services().state.now())


@bp.post("/clock")
def advance_clock() -> Response:
    return jsonify(now=services().state.advance_clock(parse_advance(_body())))


@bp.post("/reset")
def reset() -> Response:
    services().state.reset()
    return jsonify(status="ok")
