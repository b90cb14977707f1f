"""The public domain: a global external Application Load Balancer with Cloud Armor in front
of the public service (infra/public_domain.py), and the config keys behind it."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from flask import Flask
from werkzeug.exceptions import NotFound

from infra.config import ConfigError
from service.config import Settings
from service.web.authorization_events_url import bp as events_blueprint
from service.web.authorize import bp as authorize_blueprint
from service.web.message_url import bp as messages_blueprint
from tests.infra.pulumi_mocks import (
    APPID_A,
    GCP_PROJECT,
    LB_ADDRESS,
    REGION,
    Deployment,
    Registration,
    base_config,
    run_program,
)
from tests.infra.test_config import P, parse, problems_of
from tests.infra.test_services import resolved_env

DOMAIN = "auth.example.com"  # the with_domain fixture's
PUBLIC = "wcg-dev-public"
SERVICE = "gcp:cloudrunv2/service:Service"
NEG = "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup"
BACKEND = "gcp:compute/backendService:BackendService"
URL_MAP = "gcp:compute/uRLMap:URLMap"
CERTIFICATE = "gcp:compute/managedSslCertificate:ManagedSslCertificate"
HTTPS_PROXY = "gcp:compute/targetHttpsProxy:TargetHttpsProxy"
HTTP_PROXY = "gcp:compute/targetHttpProxy:TargetHttpProxy"
ADDRESS = "gcp:compute/globalAddress:GlobalAddress"
FORWARDING_RULE = "gcp:compute/globalForwardingRule:GlobalForwardingRule"
ARMOR = "gcp:compute/securityPolicy:SecurityPolicy"
LB_TYPES = {
    NEG,
    BACKEND,
    URL_MAP,
    CERTIFICATE,
    HTTPS_PROXY,
    HTTP_PROXY,
    ADDRESS,
    FORWARDING_RULE,
    ARMOR,
}
LB_OUTPUTS = {"public_domain_dns_record", "public_domain_address", "public_domain_certificate"}
DEFAULT_RULE_PRIORITY = 2147483647  # Cloud Armor's default rule, evaluated last


@pytest.fixture(scope="module")
def limited() -> Deployment:
    """Another domain and a stricter limit on the merchant's pages."""
    return run_program(base_config(public_domain="wx.example.com.cn", authorize_rate_limit="30"))


def plain_env(service: Registration) -> dict[str, Any]:
    (container,) = service.inputs["template"]["containers"]
    return {e["name"]: e.get("value") for e in container["envs"] if "valueSource" not in e}


def forwarding_rule(run: Deployment, port: str) -> Registration:
    return run.one(FORWARDING_RULE, lambda r: r.inputs["portRange"] == port)


def url_map(run: Deployment, redirect: bool) -> Registration:
    return run.one(URL_MAP, lambda r: ("defaultUrlRedirect" in r.inputs) == redirect)


def armor_rules(run: Deployment) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = run.one(ARMOR).inputs["rules"]
    return sorted(rules, key=lambda rule: int(rule["priority"]))


def expression(rule: dict[str, Any]) -> str:
    text: str = rule["match"]["expr"]["expression"]
    return text


# ----- without a domain ------------------------------------------------------------------


def test_without_a_domain_no_load_balancer(deployment: Deployment) -> None:
    assert not {r.type for r in deployment.resources} & LB_TYPES
    assert not set(deployment.outputs) & LB_OUTPUTS
    public = deployment.named(SERVICE, PUBLIC)
    assert public.inputs["ingress"] == "INGRESS_TRAFFIC_ALL"
    # The service's default (1): Cloud Run's front end alone appends to X-Forwarded-For.
    assert "PUBLIC_CLIENT_IP_HOPS" not in plain_env(public)


def test_before_the_first_image_no_load_balancer() -> None:
    """Without services there is nothing to route to: the domain waits for `make image`."""
    run = run_program(base_config(image=None, public_domain=DOMAIN))
    assert not {r.type for r in run.resources} & LB_TYPES
    assert not set(run.outputs) & LB_OUTPUTS


# ----- with a domain: the resources and their wiring ------------------------------------


def test_every_part_exists_once_named_from_the_prefix(with_domain: Deployment) -> None:
    counts = {t: len(with_domain.of_type(t)) for t in LB_TYPES}
    # Two URL maps and two forwarding rules: HTTPS, and HTTP redirecting to it.
    assert counts == {t: 2 if t in (URL_MAP, FORWARDING_RULE) else 1 for t in LB_TYPES}
    names = {r.inputs["name"] for t in LB_TYPES for r in with_domain.of_type(t)}
    assert names >= {
        "wcg-dev-public-neg",
        "wcg-dev-public-backend",
        "wcg-dev-public-lb",
        "wcg-dev-http-redirect",
        "wcg-dev-https-proxy",
        "wcg-dev-http-proxy",
        "wcg-dev-public-ip",
        "wcg-dev-https",
        "wcg-dev-http",
        "wcg-dev-armor",
    }
    assert all(name.startswith("wcg-dev-") for name in names)
    for t in LB_TYPES:
        for resource in with_domain.of_type(t):
            assert resource.inputs["project"] == GCP_PROJECT, resource.name


def test_the_serverless_neg_is_the_public_service(with_domain: Deployment) -> None:
    neg = with_domain.one(NEG)
    assert neg.inputs["networkEndpointType"] == "SERVERLESS"
    assert neg.inputs["region"] == REGION
    assert neg.inputs["cloudRun"] == {"service": PUBLIC}
    # It names the service the program created, so it waits for it.
    assert with_domain.depends_on(neg, with_domain.named(SERVICE, PUBLIC))


def test_the_backend_serves_the_neg_behind_armor_with_logs(with_domain: Deployment) -> None:
    backend = with_domain.one(BACKEND)
    assert backend.inputs["loadBalancingScheme"] == "EXTERNAL_MANAGED"
    assert backend.inputs["backends"] == [{"group": with_domain.one(NEG).id}]
    assert backend.inputs["securityPolicy"] == with_domain.one(ARMOR).id
    assert backend.inputs["logConfig"] == {"enable": True, "sampleRate": 1}
    # Serverless NEGs take no health check, port or timeout (Cloud Run's own timeout rules).
    for unsupported in ("healthChecks", "portName", "timeoutSec"):
        assert unsupported not in backend.inputs, unsupported


def test_https_chain(with_domain: Deployment) -> None:
    backend = with_domain.one(BACKEND)
    lb_map = url_map(with_domain, redirect=False)
    assert lb_map.inputs["defaultService"] == backend.id
    certificate = with_domain.one(CERTIFICATE)
    proxy = with_domain.one(HTTPS_PROXY)
    assert proxy.inputs["urlMap"] == lb_map.id
    assert proxy.inputs["sslCertificates"] == [certificate.id]
    rule = forwarding_rule(with_domain, "443")
    assert rule.inputs["target"] == proxy.id
    assert rule.inputs["ipAddress"] == LB_ADDRESS
    assert rule.inputs["ipProtocol"] == "TCP"
    assert rule.inputs["loadBalancingScheme"] == "EXTERNAL_MANAGED"
    assert with_domain.depends_on(rule, with_domain.one(ADDRESS))


def test_the_address_is_a_reserved_global_ipv4(with_domain: Deployment) -> None:
    address = with_domain.one(ADDRESS)
    assert address.inputs["addressType"] == "EXTERNAL"
    assert address.inputs["ipVersion"] == "IPV4"
    assert address.state["address"] == LB_ADDRESS


def test_the_certificate_covers_exactly_the_domain(
    with_domain: Deployment, limited: Deployment
) -> None:
    for run, domain in ((with_domain, DOMAIN), (limited, "wx.example.com.cn")):
        certificate = run.one(CERTIFICATE)
        assert certificate.inputs["type"] == "MANAGED"
        assert certificate.inputs["managed"] == {"domains": [domain]}
    # Named after its domain: a new domain makes a new certificate before the old one goes
    # (an explicit name shared by both could never be replaced while the proxy holds it).
    a, b = (run.one(CERTIFICATE).inputs["name"] for run in (with_domain, limited))
    assert a != b and a.startswith("wcg-dev-cert-") and b.startswith("wcg-dev-cert-")
    assert len(a) <= 63


def test_http_redirects_to_https_keeping_the_method(with_domain: Deployment) -> None:
    redirect = url_map(with_domain, redirect=True)
    assert redirect.inputs["defaultUrlRedirect"] == {
        "httpsRedirect": True,
        # 308: a POST stays a POST (WeChat's pushes are POSTs); 301 may turn it into a GET.
        "redirectResponseCode": "PERMANENT_REDIRECT",
        "stripQuery": False,
    }
    assert "defaultService" not in redirect.inputs
    proxy = with_domain.one(HTTP_PROXY)
    assert proxy.inputs["urlMap"] == redirect.id
    rule = forwarding_rule(with_domain, "80")
    assert rule.inputs["target"] == proxy.id
    # The same address as the HTTPS rule: one A record serves both.
    assert rule.inputs["ipAddress"] == forwarding_rule(with_domain, "443").inputs["ipAddress"]
    assert rule.inputs["loadBalancingScheme"] == "EXTERNAL_MANAGED"


def test_everything_waits_for_the_apis(with_domain: Deployment) -> None:
    apis = with_domain.of_type("gcp:projects/service:Service")
    parts = [r for t in LB_TYPES for r in with_domain.of_type(t)]
    assert len(parts) == len(LB_TYPES) + 2
    for resource in parts:
        for api in apis:
            assert with_domain.depends_on(resource, api), (resource.name, api.name)


# ----- Cloud Armor ------------------------------------------------------------------------


def test_armor_policy_rules_in_order(with_domain: Deployment) -> None:
    policy = with_domain.one(ARMOR)
    assert policy.inputs["type"] == "CLOUD_ARMOR"
    push, throttle, default = armor_rules(with_domain)
    # WeChat's pushes first, before any throttle: they come from many addresses, and a push
    # refused is a ticket or a message lost until WeChat retries.
    assert push["action"] == "allow"
    assert expression(push) == "request.path.startsWith('/wechat/')"
    assert throttle["action"] == "throttle"
    assert int(push["priority"]) < int(throttle["priority"])
    assert default["priority"] == DEFAULT_RULE_PRIORITY
    assert default["action"] == "allow"
    assert default["match"] == {"versionedExpr": "SRC_IPS_V1", "config": {"srcIpRanges": ["*"]}}


def test_the_throttle_is_per_client_ip_on_the_merchants_pages(
    with_domain: Deployment, limited: Deployment
) -> None:
    for run, limit in ((with_domain, 120), (limited, 30)):
        (throttle,) = [r for r in armor_rules(run) if r["action"] == "throttle"]
        assert throttle["rateLimitOptions"] == {
            "rateLimitThreshold": {"count": limit, "intervalSec": 60},
            "conformAction": "allow",
            "exceedAction": "deny(429)",
            "enforceOnKey": "IP",
        }


def armor_path_pattern(rule: dict[str, Any]) -> str:
    """The regular expression of the throttle's match, as written in the rule."""
    found = re.fullmatch(
        r"request\.path\.urlDecode\(\)\.lower\(\)\.matches\('([^']+)'\)", expression(rule)
    )
    assert found, expression(rule)
    return found.group(1)


def throttled(pattern: str, raw_path: str) -> bool:
    """What Cloud Armor does with the rule: decode, lower, then match (RE2; this pattern
    means the same in Python's re)."""
    return re.search(pattern, unquote(raw_path).lower()) is not None


def test_the_throttle_covers_every_path_flask_routes_to_the_merchants_pages(
    with_domain: Deployment,
) -> None:
    (throttle,) = [r for r in armor_rules(with_domain) if r["action"] == "throttle"]
    pattern = armor_path_pattern(throttle)
    app = Flask(__name__)
    for blueprint in (authorize_blueprint, events_blueprint, messages_blueprint):
        app.register_blueprint(blueprint)
    routes = app.url_map.bind("gateway.test")
    # Raw paths as a client may send them; Cloud Run hands Flask the decoded path.
    for raw in (
        f"/authorize/{APPID_A}",
        f"/authorize/{APPID_A}/callback",
        f"//authorize/{APPID_A}",  # Flask merges the slashes and still routes it
        f"/%61uthorize/{APPID_A}",
        f"/%2Fauthorize/{APPID_A}",
        f"/%41UTHORIZE/{APPID_A}",  # not routed (case matters to Flask), throttled anyway
    ):
        try:
            endpoint, _ = routes.match(unquote(raw), method="GET")
        except NotFound:
            endpoint = ""
        if endpoint.startswith("authorize."):
            assert throttled(pattern, raw), raw
    assert throttled(pattern, f"/%41UTHORIZE/{APPID_A}")
    # Pushes are never throttled.
    for raw in (f"/wechat/{APPID_A}/events", f"/wechat/{APPID_A}/messages/{APPID_A}"):
        assert routes.match(raw, method="POST")[0].startswith(("events.", "messages."))
        assert not throttled(pattern, raw)


# ----- the public service behind it --------------------------------------------------------


def test_the_public_service_takes_traffic_from_the_load_balancer_only(
    with_domain: Deployment,
) -> None:
    public = with_domain.named(SERVICE, PUBLIC)
    # Internal and Cloud Load Balancing: the run.app URL no longer answers from the
    # internet, so nothing goes around Cloud Armor.
    assert public.inputs["ingress"] == "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
    env = plain_env(public)
    # X-Forwarded-For: <what the client sent>,<client>,<load balancer's address>.
    assert env["PUBLIC_CLIENT_IP_HOPS"] == "2"
    settings = Settings.from_env(resolved_env(with_domain, public))
    assert settings.public_rate_limit.client_ip_hops == 2
    # The internal service rate-limits no one and is not behind the load balancer.
    assert "PUBLIC_CLIENT_IP_HOPS" not in plain_env(with_domain.named(SERVICE, "wcg-dev-internal"))


# ----- outputs ----------------------------------------------------------------------------


def test_outputs_the_dns_record_and_the_certificate(
    with_domain: Deployment, limited: Deployment
) -> None:
    for run, domain in ((with_domain, DOMAIN), (limited, "wx.example.com.cn")):
        out = run.outputs
        assert out["public_domain_dns_record"] == {
            "name": domain,
            "type": "A",
            "value": LB_ADDRESS,
        }
        assert out["public_domain_address"] == LB_ADDRESS
        assert out["public_domain_certificate"] == run.one(CERTIFICATE).inputs["name"]


CONSOLE_OUTPUTS = (
    "authorization_event_urls",
    "message_event_urls",
    "authorization_entry_urls",
    "authorization_callback_urls",
)


def test_every_console_url_is_on_the_domain(with_domain: Deployment, limited: Deployment) -> None:
    for run, domain in ((with_domain, DOMAIN), (limited, "wx.example.com.cn")):
        assert run.outputs["authorization_domain"] == domain
        for output in CONSOLE_OUTPUTS:
            for url in run.outputs[output].values():
                parts = urlsplit(url)
                assert (parts.scheme, parts.hostname) == ("https", domain), url
        for name in (PUBLIC, "wcg-dev-internal"):
            assert plain_env(run.named(SERVICE, name))["PUBLIC_BASE_URL"] == f"https://{domain}"


# ----- configuration ----------------------------------------------------------------------


def test_authorize_rate_limit_default_and_value() -> None:
    assert parse(base_config()).authorize_rate_limit == 120
    assert parse(base_config(authorize_rate_limit="600")).authorize_rate_limit == 600
    assert parse(base_config(authorize_rate_limit="1")).authorize_rate_limit == 1
    assert parse(base_config(authorize_rate_limit="1000000")).authorize_rate_limit == 1_000_000


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("0", "must be from 1 to 1000000 requests a minute per client IP (Cloud Armor's range)"),
        ("-5", "must be from 1 to 1000000"),
        ("1000001", "must be from 1 to 1000000"),
        ("fast", "'fast' is not a whole number"),
        ("1.5", "'1.5' is not a whole number"),
    ],
)
def test_bad_authorize_rate_limit(value: str, why: str) -> None:
    message = problems_of(base_config(authorize_rate_limit=value))
    assert f"invalid config '{P}:authorize_rate_limit': " in message
    assert why in message
    assert "set it with  pulumi config set authorize_rate_limit 120" in message


@pytest.mark.parametrize(
    ("domain", "why"),
    [
        ("1.2.3.4", "an IP address"),
        ("203.0.113.10", "an IP address"),
        ("auth.example.123", "ends in a number"),
        ("wcg-dev-public-123456789012.asia-east2.run.app", "a Cloud Run (run.app) host"),
        ("wcg-dev-public-x7k2m9q3ra-df.a.run.app", "Google controls run.app, not you"),
        ("run.app", "a Cloud Run (run.app) host"),
        ("*.example.com", "a wildcard"),
        ("*.example.com", "a Google-managed certificate covers named hosts only"),
        ("auth.*.example.com", "a wildcard"),
    ],
)
def test_public_domain_refusals(domain: str, why: str) -> None:
    message = problems_of(base_config(public_domain=domain))
    assert f"invalid config '{P}:public_domain': {domain!r}" in message
    assert why in message
    assert "set it with  pulumi config set public_domain auth.example.com" in message


@pytest.mark.parametrize(
    "domain",
    [
        "auth.example.com",
        "wx.example.com.cn",
        "a1.b-2.example.co",
        "auth.xn--fiqs8s",
        "run.app.example",
    ],
)
def test_public_domain_accepted(domain: str) -> None:
    assert parse(base_config(public_domain=domain)).public_domain == domain


def test_all_domain_and_limit_problems_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        parse(base_config(public_domain="1.2.3.4", authorize_rate_limit="0"))
    keys = [line for line in caught.value.problems if "public_domain" in line or "rate" in line]
    assert len(keys) == 2
