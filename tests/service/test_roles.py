"""SERVICE_ROLE splits the routes: every route of the whole app belongs to exactly one role,
except /healthz and /readyz (Cloud Run's startup probe), which both serve."""

from __future__ import annotations

from devstack.stack import component_variables, demo_component
from service import create_app

SHARED = {"/healthz", "/readyz", "/static/<path:filename>"}


def rules(role: str) -> set[str]:
    env = {
        **component_variables(demo_component()),
        "WECHAT_COMPONENTS": "",
        "WECHAT_COMPONENTS_FILE": "",
        "SERVICE_ROLE": role,
    }
    if role == "internal":
        env["INTERNAL_AUTH"] = "cloud_run_iam"
        env["INTERNAL_AUDIENCE"] = "https://wcg-dev-internal-123456789012.asia-east2.run.app"
        env["INTERNAL_INVOKERS"] = "wcg-dev-scheduler@p.iam.gserviceaccount.com"
    return {rule.rule for rule in create_app(env).url_map.iter_rules()}


def test_each_route_belongs_to_one_role() -> None:
    public, internal, everything = rules("public"), rules("internal"), rules("all")
    assert public & internal == SHARED
    assert public | internal == everything
    assert public - SHARED == {
        "/wechat/<component_appid>/events",
        "/wechat/<component_appid>/messages/<authorizer_appid>",
        "/authorize/<component_appid>",
        "/authorize/<component_appid>/callback",
    }
    assert "/tasks/refresh" in internal
    assert "/console/" in internal  # the operators' console: never on the public service
    assert all(r.startswith(("/api/v1/", "/tasks/", "/console")) for r in internal - SHARED)
