"""The public domain: a global external Application Load Balancer with Cloud Armor in front of
the public Cloud Run service, created only with `public_domain`.

WeChat's push servers and merchants' browsers are in mainland China, where `*.run.app` hosts
are reported unreliable, and the 授权发起页域名 must be a domain the provider controls. The
domain's DNS A record (the `public_domain_dns_record` output) points at one reserved global
address; HTTPS there carries a Google-managed certificate for the domain, and HTTP answers
308 to HTTPS (a POST stays a POST). The service then takes traffic from the load balancer
only, so Cloud Armor cannot be gone around: WeChat's pushes are always let through, and the
merchant's pages are throttled per client IP (`authorize_rate_limit` a minute).
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_gcp as gcp

from infra.config import GatewayConfig
from infra.names import ResourceNames

# The public service's ingress: internal and Cloud Load Balancing with a domain, else all.
LOAD_BALANCER_INGRESS = "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
OPEN_INGRESS = "INGRESS_TRAFFIC_ALL"
# The load balancer appends "<client>,<its own address>" to X-Forwarded-For, and Cloud Run
# adds nothing behind a serverless NEG: the client is the second address from the right
# (service/web/rate_limit.py client_address).
CLIENT_IP_HOPS_VAR = "PUBLIC_CLIENT_IP_HOPS"
CLIENT_IP_HOPS = 2

# WeChat's pushes (the event URL and the message URL), as WeChat sends them.
PUSH_PATHS = "request.path.startsWith('/wechat/')"
# The merchant's pages (entry, signed links, callback). Decoded and lowered first, and any
# run of slashes, so /%61uthorize/ and //authorize/ (which Flask routes too) are throttled.
MERCHANT_PAGES = "request.path.urlDecode().lower().matches('^/+authorize/')"
PUSH_RULE_PRIORITY = 1000
THROTTLE_RULE_PRIORITY = 2000
DEFAULT_RULE_PRIORITY = 2147483647  # Cloud Armor's default rule: the last one evaluated
RATE_INTERVAL_SEC = 60  # authorize_rate_limit is a count a minute


def public_ingress(config: GatewayConfig) -> str:
    return LOAD_BALANCER_INGRESS if config.public_domain is not None else OPEN_INGRESS


class PublicEntry(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        config: GatewayConfig,
        public_service: gcp.cloudrunv2.Service,
        depends_on: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("wcg:gateway:PublicEntry", name, None, opts)
        if config.public_domain is None:
            raise ValueError("PublicEntry needs config.public_domain")
        domain = config.public_domain
        names = ResourceNames(config.name_prefix)
        first = pulumi.ResourceOptions(parent=self, depends_on=list(depends_on))
        child = pulumi.ResourceOptions(parent=self)
        project = config.project

        self.neg = gcp.compute.RegionNetworkEndpointGroup(
            "neg",
            project=project,
            region=config.region,
            name=names.public_neg,
            network_endpoint_type="SERVERLESS",
            cloud_run=gcp.compute.RegionNetworkEndpointGroupCloudRunArgs(
                service=public_service.name
            ),
            opts=first,
        )
        self.security_policy = gcp.compute.SecurityPolicy(
            "armor",
            project=project,
            name=names.security_policy,
            type="CLOUD_ARMOR",
            description="WeChat's pushes always; the merchant's pages per client IP",
            rules=self._rules(config.authorize_rate_limit),
            opts=first,
        )
        self.backend = gcp.compute.BackendService(
            "backend",
            project=project,
            name=names.public_backend,
            load_balancing_scheme="EXTERNAL_MANAGED",
            # No health check, port or timeout: serverless NEGs take none (Cloud Run's own
            # request timeout applies).
            backends=[gcp.compute.BackendServiceBackendArgs(group=self.neg.id)],
            security_policy=self.security_policy.id,
            log_config=gcp.compute.BackendServiceLogConfigArgs(enable=True, sample_rate=1.0),
            opts=child,
        )
        self.url_map = gcp.compute.URLMap(
            "url-map",
            project=project,
            name=names.public_url_map,
            default_service=self.backend.id,
            opts=child,
        )
        self.certificate = gcp.compute.ManagedSslCertificate(
            "certificate",
            project=project,
            name=names.certificate(domain),
            type="MANAGED",
            managed=gcp.compute.ManagedSslCertificateManagedArgs(domains=[domain]),
            opts=first,
        )
        self.https_proxy = gcp.compute.TargetHttpsProxy(
            "https-proxy",
            project=project,
            name=names.https_proxy,
            url_map=self.url_map.id,
            ssl_certificates=[self.certificate.id],
            opts=child,
        )
        self.address = gcp.compute.GlobalAddress(
            "address",
            project=project,
            name=names.public_address,
            address_type="EXTERNAL",
            ip_version="IPV4",
            description=f"{domain}: point its DNS A record here",
            opts=first,
        )
        self.https_rule = gcp.compute.GlobalForwardingRule(
            "https",
            project=project,
            name=names.https_rule,
            load_balancing_scheme="EXTERNAL_MANAGED",
            ip_protocol="TCP",
            ip_address=self.address.address,
            port_range="443",
            target=self.https_proxy.id,
            opts=child,
        )
        self.redirect_map = gcp.compute.URLMap(
            "http-redirect",
            project=project,
            name=names.http_redirect_map,
            default_url_redirect=gcp.compute.URLMapDefaultUrlRedirectArgs(
                https_redirect=True,
                # 308: the method is kept (WeChat pushes POSTs); 301 lets clients turn a
                # POST into a GET.
                redirect_response_code="PERMANENT_REDIRECT",
                strip_query=False,
            ),
            opts=first,
        )
        self.http_proxy = gcp.compute.TargetHttpProxy(
            "http-proxy",
            project=project,
            name=names.http_proxy,
            url_map=self.redirect_map.id,
            opts=child,
        )
        self.http_rule = gcp.compute.GlobalForwardingRule(
            "http",
            project=project,
            name=names.http_rule,
            load_balancing_scheme="EXTERNAL_MANAGED",
            ip_protocol="TCP",
            ip_address=self.address.address,
            port_range="80",
            target=self.http_proxy.id,
            opts=child,
        )

        self.ip_address: pulumi.Output[str] = self.address.address
        self.certificate_name: pulumi.Output[str] = self.certificate.name
        # What to create at the domain's DNS provider.
        self.dns_record: pulumi.Output[dict[str, str]] = self.address.address.apply(
            lambda address: {"name": domain, "type": "A", "value": address}
        )
        self.register_outputs(
            {
                "ip_address": self.ip_address,
                "certificate_name": self.certificate_name,
                "dns_record": self.dns_record,
            }
        )

    @staticmethod
    def _rules(authorize_rate_limit: int) -> list[gcp.compute.SecurityPolicyRuleArgs]:
        Rule = gcp.compute.SecurityPolicyRuleArgs
        Match = gcp.compute.SecurityPolicyRuleMatchArgs
        Expr = gcp.compute.SecurityPolicyRuleMatchExprArgs
        return [
            # First: pushes come from many WeChat addresses, and a refused push is a ticket
            # or a message late until WeChat retries. Never throttled.
            Rule(
                priority=PUSH_RULE_PRIORITY,
                action="allow",
                description="WeChat's pushes (event and message URLs)",
                match=Match(expr=Expr(expression=PUSH_PATHS)),
            ),
            Rule(
                priority=THROTTLE_RULE_PRIORITY,
                action="throttle",
                description="The merchant's pages: authorize_rate_limit a minute per client IP",
                match=Match(expr=Expr(expression=MERCHANT_PAGES)),
                rate_limit_options=gcp.compute.SecurityPolicyRuleRateLimitOptionsArgs(
                    rate_limit_threshold=gcp.compute.SecurityPolicyRuleRateLimitOptionsRateLimitThresholdArgs(
                        count=authorize_rate_limit, interval_sec=RATE_INTERVAL_SEC
                    ),
                    conform_action="allow",
                    exceed_action="deny(429)",
                    enforce_on_key="IP",
                ),
            ),
            Rule(
                priority=DEFAULT_RULE_PRIORITY,
                action="allow",
                description="Everything else (the service answers what it does not serve)",
                match=Match(
                    versioned_expr="SRC_IPS_V1",
                    config=gcp.compute.SecurityPolicyRuleMatchConfigArgs(src_ip_ranges=["*"]),
                ),
            ),
        ]
