"""The fixed egress IP: Cloud NAT with the one reserved address, used by both services."""

from __future__ import annotations

from tests.infra.pulumi_mocks import EGRESS_ADDRESS, REGION, Deployment

NAT = "gcp:compute/routerNat:RouterNat"
ADDRESS = "gcp:compute/address:Address"
SUBNET = "gcp:compute/subnetwork:Subnetwork"
NETWORK = "gcp:compute/network:Network"
ROUTER = "gcp:compute/router:Router"
SERVICE = "gcp:cloudrunv2/service:Service"


def test_nat_uses_only_the_reserved_address(deployment: Deployment) -> None:
    nat = deployment.one(NAT)
    address = deployment.one(ADDRESS)
    assert address.inputs["addressType"] == "EXTERNAL"
    assert address.inputs["region"] == REGION
    assert nat.inputs["natIpAllocateOption"] == "MANUAL_ONLY"
    assert nat.inputs["natIps"] == [address.state["selfLink"]]
    assert nat.inputs["logConfig"]["enable"] is True


def test_egress_ip_output_is_the_nat_address(
    deployment: Deployment, foundation: Deployment
) -> None:
    for run in (deployment, foundation):
        assert run.one(ADDRESS).state["address"] == EGRESS_ADDRESS
        assert run.outputs["egress_ip"] == EGRESS_ADDRESS


def test_nat_covers_the_egress_subnet(deployment: Deployment) -> None:
    nat = deployment.one(NAT)
    subnet = deployment.one(SUBNET)
    network = deployment.one(NETWORK)
    router = deployment.one(ROUTER)
    assert network.inputs["autoCreateSubnetworks"] is False
    assert subnet.inputs["network"] == router.inputs["network"] == network.id
    assert subnet.inputs["privateIpGoogleAccess"] is True
    assert subnet.inputs["region"] == REGION
    assert router.inputs["name"] == nat.inputs["router"]
    assert nat.inputs["region"] == router.inputs["region"] == REGION
    assert nat.inputs["sourceSubnetworkIpRangesToNat"] == "LIST_OF_SUBNETWORKS"
    assert nat.inputs["subnetworks"] == [
        {"name": subnet.id, "sourceIpRangesToNats": ["ALL_IP_RANGES"]}
    ]


def test_both_services_send_all_traffic_through_the_subnet(deployment: Deployment) -> None:
    subnet = deployment.one(SUBNET)
    network = deployment.one(NETWORK)
    services = deployment.of_type(SERVICE)
    assert len(services) == 2
    for service in services:
        vpc = service.inputs["template"]["vpcAccess"]
        assert vpc["egress"] == "ALL_TRAFFIC"
        assert "connector" not in vpc
        assert vpc["networkInterfaces"] == [
            {"network": network.inputs["name"], "subnetwork": subnet.inputs["name"]}
        ]
