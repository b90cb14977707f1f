"""The GCP names of the stack's resources, all derived from ``name_prefix`` in one place.

Explicit names (not Pulumi's random suffixes) keep URLs and secret ids predictable: the public
service's deterministic URL is built from its name before the service exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.config import SecretKind


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

    def secret(self, appid: str, kind: SecretKind) -> str:
        return f"{self.prefix}-{appid}-{kind.id_suffix}"

    def log_metric(self, alert: str) -> str:
        return f"{self.prefix}-{alert}"
