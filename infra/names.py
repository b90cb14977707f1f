"""The GCP names of the stack's resources, all derived from ``name_prefix`` in one place.

Explicit names (not Pulumi's random suffixes) keep URLs and secret ids predictable: the public
service's deterministic URL is built from its name before the service exists.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from infra.config import DEAD_LETTER_SUFFIX, SecretKind

ACCOUNT_ID_MAX = 30  # GCP's limit on a service account id
ACCOUNT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")


@dataclass(frozen=True)
class ResourceNames:
    prefix: str

    @property
    def repository(self) -> str:
        return self.prefix

    @property
    def runtime_account(self) -> str:
        return f"{self.prefix}-runtime"

    @property
    def scheduler_account(self) -> str:
        return f"{self.prefix}-scheduler"

    @property
    def sweep_push_account(self) -> str:
        """Whose ID token Pub/Sub sends with each shard push (at most 20 characters)."""
        return f"{self.prefix}-sweep"

    @property
    def shard_topic(self) -> str:
        """The fan-out sweep's shards of due authorizers (and its push subscription's id)."""
        return f"{self.prefix}-refresh-shards"

    @property
    def public_service(self) -> str:
        return f"{self.prefix}-public"

    @property
    def internal_service(self) -> str:
        return f"{self.prefix}-internal"

    @property
    def network(self) -> str:
        return f"{self.prefix}-vpc"

    @property
    def subnetwork(self) -> str:
        return f"{self.prefix}-egress"

    @property
    def router(self) -> str:
        return f"{self.prefix}-router"

    @property
    def nat(self) -> str:
        return f"{self.prefix}-nat"

    @property
    def egress_address(self) -> str:
        return f"{self.prefix}-egress-ip"

    @property
    def refresh_job(self) -> str:
        return f"{self.prefix}-refresh"

    # The load balancer in front of the public service (with public_domain).
    @property
    def public_neg(self) -> str:
        return f"{self.prefix}-public-neg"

    @property
    def public_backend(self) -> str:
        return f"{self.prefix}-public-backend"

    @property
    def public_url_map(self) -> str:
        return f"{self.prefix}-public-lb"

    @property
    def http_redirect_map(self) -> str:
        return f"{self.prefix}-http-redirect"

    @property
    def https_proxy(self) -> str:
        return f"{self.prefix}-https-proxy"

    @property
    def http_proxy(self) -> str:
        return f"{self.prefix}-http-proxy"

    @property
    def public_address(self) -> str:
        return f"{self.prefix}-public-ip"

    @property
    def https_rule(self) -> str:
        return f"{self.prefix}-https"

    @property
    def http_rule(self) -> str:
        return f"{self.prefix}-http"

    @property
    def security_policy(self) -> str:
        return f"{self.prefix}-armor"

    def certificate(self, domain: str) -> str:
        """Named after its domain: a new domain gets a new certificate, created while the
        proxy still holds the old one (one fixed name could not be replaced in use)."""
        return f"{self.prefix}-cert-{hashlib.sha256(domain.encode()).hexdigest()[:8]}"

    def secret(self, appid: str, kind: SecretKind) -> str:
        return f"{self.prefix}-{appid}-{kind.id_suffix}"

    def log_metric(self, alert: str) -> str:
        return f"{self.prefix}-{alert}"

    def dead_letter_topic(self, topic: str) -> str:
        """Where a route topic's undeliverable messages go (the id is not prefixed: route
        topics are named by the service's MESSAGE_ROUTES, in the stack's project)."""
        return f"{topic}{DEAD_LETTER_SUFFIX}"

    def dead_letter_subscription(self, topic: str) -> str:
        """The subscription that keeps the dead letters of ``topic`` for someone to read."""
        return f"{topic}{DEAD_LETTER_SUFFIX}"

    def push_account(self, subscription: str) -> str:
        """The service account id whose ID token a push subscription sends.

        ``<prefix>-push-<subscription>`` when that is a valid id; otherwise (too long, or
        characters an account id cannot have) a shortened, lowercased form with six hex
        digits of the name's SHA-256, so distinct subscriptions keep distinct accounts.
        """
        head = f"{self.prefix}-push-"
        plain = f"{head}{subscription}"
        if len(plain) <= ACCOUNT_ID_MAX and ACCOUNT_ID.match(plain):
            return plain
        digest = hashlib.sha256(subscription.encode()).hexdigest()[:6]
        slug = re.sub(r"[^a-z0-9]+", "-", subscription.lower())
        room = ACCOUNT_ID_MAX - len(head) - len(digest) - 1
        slug = slug[:room].strip("-")
        return f"{head}{slug}-{digest}" if slug else f"{head}{digest}"
