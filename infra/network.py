"""A fixed egress IP: Cloud Run leaves through a subnet whose Cloud NAT uses one reserved address.

WeChat only answers component API calls from IPs on the platform's whitelist (errcode 61004),
so every outbound call must come from the one address exported as `egress_ip`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_gcp as gcp

from infra.config import GatewayConfig
from infra.names import ResourceNames

# Direct VPC egress takes about two addresses per instance (more during a rollout) for each
# of the two services: a /20 fits max_instances up to 1000 with room to spare.
EGRESS_SUBNET_RANGE = "10.8.0.0/20"


class EgressNetwork(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        config: GatewayConfig,
        depends_on: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("wcg:gateway:EgressNetwork", name, None, opts)
        names = ResourceNames(config.name_prefix)
        first = pulumi.ResourceOptions(parent=self, depends_on=list(depends_on))
        child = pulumi.ResourceOptions(parent=self)
        self.network = gcp.compute.Network(
            "network",
            project=config.project,
            name=names.network,
            auto_create_subnetworks=False,
            opts=first,
        )
        self.subnetwork = gcp.compute.Subnetwork(
            "egress",
            project=config.project,
            region=config.region,
            name=names.subnetwork,
            network=self.network.id,
            ip_cidr_range=EGRESS_SUBNET_RANGE,
            # Firestore and Secret Manager are reached over Google's network, not the NAT.
            private_ip_google_access=True,
            opts=child,
        )
        self.router = gcp.compute.Router(
            "router",
            project=config.project,
            region=config.region,
            name=names.router,
            network=self.network.id,
            opts=child,
        )
        self.address = gcp.compute.Address(
            "egress-ip",
            project=config.project,
            region=config.region,
            name=names.egress_address,
            address_type="EXTERNAL",
            description="The gateway's outbound IP: whitelist it in the WeChat open platform",
            opts=first,
        )
        self.nat = gcp.compute.RouterNat(
            "nat",
            project=config.project,
            region=config.region,
            name=names.nat,
            router=self.router.name,
            # MANUAL_ONLY: never an automatic (changing) IP that WeChat would refuse.
            nat_ip_allocate_option="MANUAL_ONLY",
            nat_ips=[self.address.self_link],
            source_subnetwork_ip_ranges_to_nat="LIST_OF_SUBNETWORKS",
            subnetworks=[
                gcp.compute.RouterNatSubnetworkArgs(
                    name=self.subnetwork.id,
                    source_ip_ranges_to_nats=["ALL_IP_RANGES"],
                )
            ],
            log_config=gcp.compute.RouterNatLogConfigArgs(enable=True, filter="ERRORS_ONLY"),
            opts=child,
        )
        self.egress_ip: pulumi.Output[str] = self.address.address
        self.register_outputs({"egress_ip": self.egress_ip})
