"""Run the Pulumi program (infra/__main__.py) against recording mocks, and keep what it did.

Each run resets Pulumi's process-global runtime (root stack, mocks, config), records every
resource registration (type, name, inputs, dependencies) and invoke, and resolves the stack
outputs, so tests assert synchronously over plain data instead of inside `.apply`.
"""

from __future__ import annotations

import itertools
import logging
import runpy
import threading
import warnings
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_gcp as gcp
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor

from infra.config import PROJECT

with warnings.catch_warnings():
    # pulumi_gcp warns about its own deprecated aliases when a module is first loaded: load
    # the ones the program uses here, quietly, rather than inside a test.
    warnings.simplefilter("ignore", DeprecationWarning)
    _ = (gcp.compute.Network, gcp.monitoring.AlertPolicy)

INFRA_DIR = Path(__file__).resolve().parents[2] / "infra"
GCP_PROJECT = "wcg-test-project"
REGION = "asia-east2"
PROJECT_NUMBER = "123456789012"
EGRESS_ADDRESS = "203.0.113.10"
LB_ADDRESS = "198.51.100.80"  # the load balancer's global address, with public_domain
STACK = "dev"

APPID_A = "wx0123456789abcdef"
APPID_B = "wxfedcba9876543210"
# Distinct and recognisable, so a leak of any of them anywhere is easy to find.
SECRET_VALUES: dict[str, str] = {
    f"{APPID_A}_appsecret": "appsecretAAAA0123456789abcdef0123",
    f"{APPID_A}_token": "tokenAAAAsecret42",
    f"{APPID_A}_encoding_aes_key": "aeskeyAAAA" + "a1" * 16 + "A",
    f"{APPID_A}_previous_encoding_aes_key": "prevkeyAAA" + "b2" * 16 + "B",
    f"{APPID_B}_appsecret": "appsecretBBBB0123456789abcdef0123",
    f"{APPID_B}_token": "tokenBBBBsecret42",
    f"{APPID_B}_encoding_aes_key": "aeskeyBBBB" + "c3" * 16 + "C",
}
# As `make image` sets it: pinned to the pushed digest.
IMAGE = f"{REGION}-docker.pkg.dev/{GCP_PROJECT}/wcg-dev/gateway@sha256:{'ab12' * 16}"


def base_config(**overrides: str | None) -> dict[str, str]:
    """Short keys (namespace added by `full`); an override of None removes the key."""
    values: dict[str, str | None] = {
        "gcp:project": GCP_PROJECT,
        "gcp:region": REGION,
        "components": f'["{APPID_A}", "{APPID_B}"]',
        "image": IMAGE,
        "alert_email": "ops@example.com",
        **SECRET_VALUES,
    }
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not None}


def full(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"


@dataclass(frozen=True)
class Registration:
    type: str
    name: str
    urn: str
    custom: bool
    inputs: dict[str, Any]
    dependencies: tuple[str, ...]
    id: str
    state: dict[str, Any]  # what the mocks answered: the inputs plus computed outputs
    protect: bool = False  # Pulumi refuses to delete it (`pulumi destroy` stops at it)
    import_id: str = ""  # adopted from the cloud rather than created


# The fan-out sweep's queue (infra/sweep_queue.py), there in every stack: tests of the
# message routes' delivery set its resources aside (tests/infra/test_sweep_queue.py has them).
SWEEP_QUEUE_COMPONENTS = ("wcg:gateway:ShardTopic", "wcg:gateway:ShardDelivery")


def in_sweep_queue(resource: Registration) -> bool:
    """The queue's components and their children (a child's URN names its parent's type)."""
    return any(component in resource.urn for component in SWEEP_QUEUE_COMPONENTS)


@dataclass
class Deployment:
    """Everything one run of the program did."""

    resources: list[Registration] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_]

    def outside_sweep_queue(self, type_: str | None = None) -> list[Registration]:
        """The resources (of ``type_``) that are not the fan-out sweep's queue."""
        return [
            r
            for r in self.resources
            if (type_ is None or r.type == type_) and not in_sweep_queue(r)
        ]

    def one(
        self, type_: str, predicate: Callable[[Registration], bool] = lambda r: True
    ) -> Registration:
        found = [r for r in self.of_type(type_) if predicate(r)]
        assert len(found) == 1, f"expected one {type_}, found {[r.name for r in found]}"
        return found[0]

    def named(self, type_: str, gcp_name: str, key: str = "name") -> Registration:
        """The resource of ``type_`` whose input ``key`` is ``gcp_name``."""
        return self.one(type_, lambda r: r.inputs.get(key) == gcp_name)

    def by_urn(self, urn: str) -> Registration:
        return next(r for r in self.resources if r.urn == urn)

    def depends_on(self, resource: Registration, target: Registration) -> bool:
        """Whether ``resource`` waits for ``target``, directly or through other resources."""
        seen: set[str] = set()
        todo = list(resource.dependencies)
        while todo:
            urn = todo.pop()
            if urn == target.urn:
                return True
            if urn not in seen:
                seen.add(urn)
                todo.extend(self.by_urn(urn).dependencies)
        return False


# The load balancer's global resources, by type: their ids' collection, as GCP names them.
GLOBAL_COMPUTE = {
    "gcp:compute/backendService:BackendService": "backendServices",
    "gcp:compute/uRLMap:URLMap": "urlMaps",
    "gcp:compute/managedSslCertificate:ManagedSslCertificate": "sslCertificates",
    "gcp:compute/targetHttpsProxy:TargetHttpsProxy": "targetHttpsProxies",
    "gcp:compute/targetHttpProxy:TargetHttpProxy": "targetHttpProxies",
    "gcp:compute/globalForwardingRule:GlobalForwardingRule": "forwardingRules",
    "gcp:compute/securityPolicy:SecurityPolicy": "securityPolicies",
}


class RecordingMocks(pulumi.runtime.Mocks):
    """Answers like GCP would (ids, emails, URIs, addresses); records every invoke."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.versions = itertools.count(3)  # distinct per secret, so a mixed-up ref shows
        self.lock = threading.Lock()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        project = inputs.get("project", GCP_PROJECT)
        name = inputs.get("name", args.name)
        outputs: dict[str, Any] = {}
        resource_id = f"{args.name}-id"
        if args.typ == "gcp:serviceaccount/account:Account":
            email = f"{inputs['accountId']}@{project}.iam.gserviceaccount.com"
            resource_id = f"projects/{project}/serviceAccounts/{email}"
            outputs = {"email": email, "member": f"serviceAccount:{email}", "name": resource_id}
        elif args.typ == "gcp:cloudrunv2/service:Service":
            outputs = {"uri": f"https://{name}-x7k2m9q3ra-df.a.run.app"}
            resource_id = f"projects/{project}/locations/{inputs['location']}/services/{name}"
        elif args.typ == "gcp:compute/address:Address":
            outputs = {
                "address": EGRESS_ADDRESS,
                "selfLink": f"https://www.googleapis.com/compute/v1/projects/{project}"
                f"/regions/{inputs['region']}/addresses/{name}",
            }
        elif args.typ == "gcp:compute/globalAddress:GlobalAddress":
            outputs = {"address": LB_ADDRESS}
            resource_id = f"projects/{project}/global/addresses/{name}"
        elif args.typ in GLOBAL_COMPUTE:
            resource_id = f"projects/{project}/global/{GLOBAL_COMPUTE[args.typ]}/{name}"
        elif args.typ == "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup":
            region = inputs["region"]
            resource_id = f"projects/{project}/regions/{region}/networkEndpointGroups/{name}"
        elif args.typ == "gcp:compute/network:Network":
            resource_id = f"projects/{project}/global/networks/{name}"
        elif args.typ == "gcp:compute/subnetwork:Subnetwork":
            resource_id = f"projects/{project}/regions/{inputs['region']}/subnetworks/{name}"
        elif args.typ == "gcp:secretmanager/secret:Secret":
            resource_id = f"projects/{project}/secrets/{inputs['secretId']}"
            outputs = {"name": f"projects/{PROJECT_NUMBER}/secrets/{inputs['secretId']}"}
        elif args.typ == "gcp:secretmanager/secretVersion:SecretVersion":
            with self.lock:
                version = str(next(self.versions))
            resource_id = f"{inputs['secret']}/versions/{version}"
            outputs = {"version": version, "name": resource_id}
        elif args.typ == "gcp:pubsub/topic:Topic":
            resource_id = f"projects/{project}/topics/{name}"
        elif args.typ == "gcp:pubsub/subscription:Subscription":
            resource_id = f"projects/{project}/subscriptions/{name}"
        elif args.typ == "gcp:monitoring/notificationChannel:NotificationChannel":
            outputs = {"name": f"projects/{project}/notificationChannels/4242"}
        return resource_id, {**inputs, **outputs}

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self.deployment.calls.append((args.token, dict(args.args)))
        if args.token == "gcp:organizations/getProject:getProject":
            return {"projectId": args.args.get("projectId"), "number": PROJECT_NUMBER}, []
        raise AssertionError(f"unexpected invoke {args.token}")


class RecordingMonitor(MockMonitor):
    """Records each registration with its inputs and the URNs it depends on."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.deployment = mocks.deployment
        self.lock = threading.Lock()

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (the gRPC method's name)
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            registration = Registration(
                type=request.type,
                name=request.name,
                urn=response.urn,
                custom=bool(request.custom),
                inputs=rpc.deserialize_properties(request.object),
                dependencies=tuple(request.dependencies),
                id=self.resources[response.urn].id,
                state=self.resources[response.urn].state,
                protect=bool(request.protect),
                import_id=request.importId,
            )
            with self.lock:
                self.deployment.resources.append(registration)
        return response


class _WarningRecorder(logging.Handler):
    def __init__(self, deployment: Deployment) -> None:
        super().__init__(logging.WARNING)
        self.deployment = deployment

    def emit(self, record: logging.LogRecord) -> None:
        self.deployment.warnings.append(record.getMessage())


def run_program(
    config: Mapping[str, str],
    secret_keys: Collection[str] | None = None,
    stack: str = STACK,
) -> Deployment:
    """Run infra/__main__.py as `pulumi up` would, with fresh global runtime state."""
    deployment = Deployment()
    # pulumi.log.warn reaches the mock engine's logger: this run's warnings go to this run.
    logger = logging.getLogger("tests.infra.pulumi")
    logger.propagate = False
    logger.handlers = [_WarningRecorder(deployment)]
    if secret_keys is None:
        secret_keys = [key for key in config if key in SECRET_VALUES]
    # A new root stack (the old one holds the previous run's outputs), mocks and config.
    pulumi.runtime.reset_options(project=PROJECT, stack=stack)
    monitor = RecordingMonitor(RecordingMocks(deployment))
    pulumi.runtime.set_mocks(
        monitor.mocks, project=PROJECT, stack=stack, preview=False, logger=logger, monitor=monitor
    )
    pulumi.runtime.set_all_config(
        {full(key): value for key, value in config.items()},
        [full(key) for key in secret_keys],
    )

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> pulumi.Output[None]:
        runpy.run_path(str(INFRA_DIR), run_name="__main__")
        root = pulumi.runtime.get_root_resource()
        assert root is not None
        outputs: dict[str, Any] = root.outputs  # type: ignore[attr-defined]
        # Returned, so the test waits for every output (and every registration) to resolve.
        return pulumi.Output.from_input(outputs).apply(deployment.outputs.update)

    program()
    return deployment


def is_secret(value: Any) -> bool:
    """Whether a recorded input was marked secret (Pulumi then encrypts it in its state)."""
    return isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig
