"""``make smoke`` against a stand-in for a deployed stack, without Google Cloud.

``pulumi`` and ``gcloud`` are small scripts first on PATH that answer the commands the smoke
test runs from JSON fixtures (and fail on any other). The two "Cloud Run services" are local
HTTPS servers with a certificate from a test CA, trusted through REQUESTS_CA_BUNDLE, that
answer as Cloud Run would: Google's HTML pages for what IAM or ingress refuses, the service's
JSON for the rest. The local target (make dev) runs in tests/devstack/test_make_dev.py.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devstack.processes import free_port
from devstack.stack import REPO
from ops.smoke import (
    Answer,
    DevState,
    LocalTarget,
    Stack,
    Unreachable,
    _domain_fix,
    health_result,
    ingress_refused,
)

APPID = "wx0123456789abcdef"
PROJECT = "my-project"
REGION = "asia-east2"
SERVICE = "wcg-test-internal"
JOB = "wcg-test-refresh"
TOKEN = "fake-identity-token-5c1e0a7d"  # must never be printed
REVISION = f"{SERVICE}-00003-abc"

GOOGLE_403 = (
    "<html><head><title>403 Forbidden</title></head><body><h1>Error: Forbidden</h1>"
    "<h2>Your client does not have permission to get URL from this server.</h2></body></html>"
)
GOOGLE_404 = (
    "<!DOCTYPE html><html lang=en><title>Error 404 (Not Found)!!1</title>"
    "<p><b>404.</b> The requested URL was not found on this server.</html>"
)
HEALTHY = {
    "status": "ok",
    "components": {
        APPID: {
            "ticket_age_seconds": 312.0,
            "ticket_stale": False,
            "component_token_expires_in_seconds": 6840,
            "last_error": None,
        }
    },
}


# --- certificates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path  # what REQUESTS_CA_BUNDLE trusts
    server: tuple[Path, Path]  # cert and key, signed by that CA
    rogue: tuple[Path, Path]  # the same names, signed by a CA nobody trusts


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, directory: Path, stem: str
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = _ca("smoke test CA")
    rogue_key, rogue_cert = _ca("nobody trusts this CA")
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return Pki(
        ca_path,
        _leaf(ca_key, ca_cert, directory, "server"),
        _leaf(rogue_key, rogue_cert, directory, "rogue"),
    )


# --- the "Cloud Run services" -----------------------------------------------------------------

Reply = tuple[int, str, str]  # status, content type, body
Responder = Callable[[str, str, dict[str, str]], Reply]


def _json(status: int, body: dict[str, Any]) -> Reply:
    return status, "application/json", json.dumps(body)


def _html(status: int, body: str) -> Reply:
    return status, "text/html; charset=UTF-8", body


@dataclass
class FakeService:
    url: str
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, auth


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.record.seen.append((self.command, self.path, headers.get("authorization")))
        status, content_type, body = self.server.respond(self.command, self.path, headers)
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, respond: Responder, record: FakeService) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.respond = respond
        self.record = record

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that refuses our certificate is one of the cases


@pytest.fixture
def serve(pki: Pki) -> Iterator[Callable[..., FakeService]]:
    servers: list[_Server] = []

    def start(respond: Responder, rogue: bool = False) -> FakeService:
        port = free_port()
        record = FakeService(f"https://127.0.0.1:{port}")
        server = _Server(port, respond, record)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*(pki.rogue if rogue else pki.server))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return record

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def public_service(method: str, path: str, headers: dict[str, str]) -> Reply:
    if method == "GET" and path == "/healthz":
        return _json(200, {"status": "ok", "role": "public"})
    if method == "GET" and path == f"/authorize/{APPID}":
        return _html(200, "<html><title>授权</title></html>")
    if method == "POST" and path == f"/wechat/{APPID}/events":
        return _json(400, {"error": "missing query parameter(s): msg_signature, timestamp, nonce"})
    return _json(404, {"error": "not found"})


def internal_service(mode: str, health: dict[str, Any] = HEALTHY) -> Responder:
    """``iam``: Cloud Run's invoker check in front; ``ingress``: Google refuses everything
    from outside the VPC; ``open``: no check at all (the misconfiguration to catch)."""

    def respond(method: str, path: str, headers: dict[str, str]) -> Reply:
        if mode == "ingress":
            return _html(404, GOOGLE_404)
        if mode == "iam" and headers.get("authorization") != f"Bearer {TOKEN}":
            return _html(403, GOOGLE_403)
        if path == "/healthz":
            return _json(200, health)
        return _json(200, {"authorizers": [], "next_page_token": None})

    return respond


# --- fake pulumi and gcloud -------------------------------------------------------------------

FAKE_CLI = """#!{python}
import json, os, sys
name = os.path.basename(sys.argv[0])
command = " ".join([name, *sys.argv[1:]])
with open(os.environ["SMOKE_FAKE_LOG"], "a") as log:
    log.write(command + "\\n")
answer = json.load(open(os.environ["SMOKE_FAKE_FIXTURES"])).get(command)
if answer is None:
    sys.stderr.write("error: the fake has no answer for: " + command + "\\n")
    sys.exit(3)
sys.stdout.write(answer.get("stdout", ""))
sys.stderr.write(answer.get("stderr", ""))
sys.exit(answer.get("rc", 0))
"""


def describe_service(ingress: str, ready: bool = True, probe: bool = True) -> dict[str, Any]:
    """``gcloud run services describe --format json``: Cloud Run's v1 (Knative) shape."""
    container: dict[str, Any] = {"image": "asia-east2-docker.pkg.dev/p/r/gateway:abc"}
    if probe:
        container["startupProbe"] = {
            "httpGet": {"path": "/readyz", "port": 8080},
            "periodSeconds": 3,
            "timeoutSeconds": 3,
            "failureThreshold": 40,
        }
    created = REVISION if ready else f"{SERVICE}-00004-xyz"
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {
            "name": SERVICE,
            "annotations": {
                "run.googleapis.com/ingress": ingress,
                "run.googleapis.com/ingress-status": ingress,
            },
        },
        "spec": {"template": {"spec": {"containers": [container]}}},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True"}
                if ready
                else {
                    "type": "Ready",
                    "status": "False",
                    "reason": "HealthCheckContainerError",
                    "message": "The user-provided container failed the configured startup "
                    "probe checks.",
                },
                {"type": "ConfigurationsReady", "status": "True" if ready else "False"},
                {"type": "RoutesReady", "status": "True"},
            ],
            "latestCreatedRevisionName": created,
            "latestReadyRevisionName": REVISION,
            "traffic": [{"revisionName": REVISION, "percent": 100, "latestRevision": True}],
        },
    }


def scheduler_job(**fields: Any) -> dict[str, Any]:
    """``gcloud scheduler jobs describe --format json``; by default, ran 2 min ago, fine."""
    job: dict[str, Any] = {
        "name": f"projects/{PROJECT}/locations/{REGION}/jobs/{JOB}",
        "schedule": "*/5 * * * *",
        "state": "ENABLED",
        "lastAttemptTime": (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)).isoformat(),
        "scheduleTime": (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=3)).isoformat(),
        "status": {},
    }
    job.update(fields)
    return {k: v for k, v in job.items() if v is not None}


@dataclass
class Cloud:
    """The world the smoke test sees: fixtures for the fake CLIs, and where they are."""

    tmp: Path
    public: FakeService
    internal: FakeService
    stack: str | None = None
    describe: dict[str, Any] = field(default_factory=lambda: describe_service("all"))
    job: dict[str, Any] = field(default_factory=scheduler_job)
    outputs: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    tools: tuple[str, ...] = ("pulumi", "gcloud")

    def __post_init__(self) -> None:
        base = self.public.url
        self.outputs = {
            "egress_ip": "203.0.113.7",
            "public_url": base,
            "internal_url": self.internal.url,
            "internal_audience": f"https://{SERVICE}-123456789012.{REGION}.run.app",
            "authorization_entry_urls": {APPID: f"{base}/authorize/{APPID}"},
            "authorization_event_urls": {APPID: f"{base}/wechat/{APPID}/events"},
            "message_event_urls": {APPID: f"{base}/wechat/{APPID}/messages/$APPID$"},
            "authorization_callback_urls": {APPID: f"{base}/authorize/{APPID}/callback"},
            "scheduler_job": JOB,
            # With public_domain (the servers here stand for the load balancer).
            "public_domain_certificate": "wcg-test-cert-1a2b3c4d",
            "public_domain_dns_record": {"name": "127.0.0.1", "type": "A", "value": "203.0.113.9"},
        }

    def fixtures(self) -> dict[str, dict[str, Any]]:
        pulumi = "pulumi" + (f" --stack {self.stack}" if self.stack else "")
        where = f"--region {REGION} --project {PROJECT} --format json"
        answers: dict[str, dict[str, Any]] = {
            "pulumi stack --show-name": {"stdout": "test\n"},
            f"{pulumi} stack output --json": {"stdout": json.dumps(self.outputs)},
            f"{pulumi} config get gcp:project": {"stdout": PROJECT + "\n"},
            f"{pulumi} config get gcp:region": {"stdout": REGION + "\n"},
            "gcloud auth print-identity-token": {"stdout": TOKEN + "\n"},
            f"gcloud run services describe {SERVICE} {where}": {
                "stdout": json.dumps(self.describe)
            },
            f"gcloud scheduler jobs describe {JOB} --location {REGION} --project {PROJECT} "
            "--format json": {"stdout": json.dumps(self.job)},
        }
        answers.update(self.overrides)
        return answers

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        bin_dir = self.tmp / "bin"
        bin_dir.mkdir(exist_ok=True)
        for tool in self.tools:
            script = bin_dir / tool
            script.write_text(FAKE_CLI.format(python=sys.executable))
            script.chmod(0o755)
        fixtures = self.tmp / "fixtures.json"
        fixtures.write_text(json.dumps(self.fixtures()))
        env = {
            "PATH": str(bin_dir),  # nothing else: a real pulumi or gcloud is never found
            "HOME": str(self.tmp),
            "REQUESTS_CA_BUNDLE": str(self.tmp / "ca.pem"),
            "SMOKE_FAKE_FIXTURES": str(fixtures),
            "SMOKE_FAKE_LOG": str(self.commands_log),
            "DEV_LOG_DIR": str(self.tmp / "no-make-dev"),
        }
        return subprocess.run(
            [sys.executable, "-m", "ops.smoke", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    @property
    def commands_log(self) -> Path:
        return self.tmp / "commands.log"

    def commands(self) -> list[str]:
        return self.commands_log.read_text().splitlines() if self.commands_log.exists() else []


@pytest.fixture
def cloud(tmp_path: Path, pki: Pki, serve: Callable[..., FakeService]) -> Callable[..., Cloud]:
    (tmp_path / "ca.pem").write_bytes(pki.ca.read_bytes())

    def make(mode: str = "iam", rogue_public: bool = False, **kwargs: Any) -> Cloud:
        public = serve(public_service, rogue=rogue_public)
        health = kwargs.pop("health", HEALTHY)
        internal = serve(internal_service(mode, health))
        return Cloud(tmp_path, public, internal, **kwargs)

    return make


def lines(result: subprocess.CompletedProcess[str], status: str) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith(f"{status}  ")]


def line(result: subprocess.CompletedProcess[str], status: str, what: str) -> str:
    found = [text for text in lines(result, status) if text.startswith(f"{status}  {what}:")]
    assert len(found) == 1, f"no single {status} {what!r} line in:\n{result.stdout}"
    return found[0]


def assert_no_token(result: subprocess.CompletedProcess[str]) -> None:
    assert TOKEN not in result.stdout + result.stderr


# --- the deployed stack -----------------------------------------------------------------------


@pytest.mark.parametrize("stack", [None, "prod"])
def test_a_healthy_stack_passes_every_check(cloud: Callable[..., Cloud], stack: str | None) -> None:
    world = cloud("iam", stack=stack)
    result = world.run(*(["--stack", stack] if stack else []))

    assert result.returncode == 0, result.stdout + result.stderr
    assert not lines(result, "FAIL") and not lines(result, "WARN"), result.stdout
    checked = [text.split(":")[0].removeprefix("PASS  ") for text in lines(result, "PASS")]
    assert checked == [
        "public /healthz",
        f"entry page {APPID}",
        f"events URL {APPID}",
        "internal revision",
        "internal /healthz",
        "internal API without identity",
        "scheduler job",
    ]
    assert f"the deployed stack {stack or 'test'!r} (project {PROJECT}" in result.stdout
    assert "over HTTPS" in line(result, "PASS", f"entry page {APPID}")
    assert "refused with its own 400" in line(result, "PASS", f"events URL {APPID}")
    assert "ticket 312 s old" in line(result, "PASS", "internal /healthz")
    assert "Cloud Run IAM (403)" in line(result, "PASS", "internal API without identity")
    assert "7 passed, 0 warned, 0 failed" in result.stdout
    # The identity went to the internal /healthz only; the anonymous call carried none.
    assert ("GET", "/healthz", f"Bearer {TOKEN}") in world.internal.seen
    assert ("GET", f"/api/v1/components/{APPID}/authorizers", None) in world.internal.seen
    assert all(auth is None for _, _, auth in world.public.seen)
    assert ("POST", f"/wechat/{APPID}/events", None) in world.public.seen
    assert_no_token(result)
    if stack:  # as the Makefile's deploy targets: pulumi --stack <name> ...
        assert f"pulumi --stack {stack} stack output --json" in world.commands()
        assert "pulumi stack --show-name" not in world.commands()


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        (
            {"lastAttemptTime": None},
            [
                f"{JOB} has never run yet",
                f"gcloud scheduler jobs run {JOB} --location {REGION} --project {PROJECT}",
            ],
        ),
        (
            {"status": {"code": 14, "message": "HTTP 503"}},
            [
                "failed: code 14 (UNAVAILABLE): HTTP 503",
                f'resource.labels.job_id="{JOB}"',
                'jsonPayload.event="refresh_sweep_done"',
            ],
        ),
        ({"state": "PAUSED"}, [f"{JOB} is PAUSED", f"gcloud scheduler jobs resume {JOB}"]),
    ],
    ids=["never-ran", "last-run-failed", "paused"],
)
def test_a_scheduler_job_that_did_not_succeed_fails_with_what_to_do(
    cloud: Callable[..., Cloud], job: dict[str, Any], expected: list[str]
) -> None:
    result = cloud("iam", job=scheduler_job(**job)).run()

    assert result.returncode == 1, result.stdout + result.stderr
    failure = line(result, "FAIL", "scheduler job")
    for text in expected:
        assert text in failure
    assert len(lines(result, "FAIL")) == 1


def test_an_internal_service_answering_without_identity_fails_loudly(
    cloud: Callable[..., Cloud],
) -> None:
    result = cloud("open").run()

    assert result.returncode == 1
    failure = line(result, "FAIL", "internal API without identity")
    assert "!!!" in failure and "WITHOUT ANY IDENTITY (200)" in failure
    assert f"gcloud run services remove-iam-policy-binding {SERVICE}" in failure


def test_an_ingress_refused_internal_service_is_checked_through_its_revision(
    cloud: Callable[..., Cloud],
) -> None:
    result = cloud("ingress", describe=describe_service("internal")).run()

    assert result.returncode == 0, result.stdout + result.stderr
    revision = line(result, "PASS", "internal revision")
    assert f"{REVISION} is Ready and serves 100% of traffic" in revision
    assert "/readyz" in revision
    note = line(result, "WARN", "internal /healthz")
    assert "unreachable from here by design" in note
    assert "Google answered 404 (Error 404 (Not Found)!!1)" in note
    assert "wcg-test-vpc network (Cloud Shell is not inside it)" in note
    assert "internal_ingress all" in note
    assert "refused by ingress (404" in line(result, "PASS", "internal API without identity")
    assert_no_token(result)


@pytest.mark.parametrize(
    ("describe", "status", "expected"),
    [
        (
            describe_service("internal", ready=False),
            "FAIL",
            f"the latest revision {SERVICE}-00004-xyz of {SERVICE} is not Ready: The "
            "user-provided container failed the configured startup probe checks.; traffic "
            f"stays on {REVISION}",
        ),
        (describe_service("internal", probe=False), "WARN", "has no /readyz startup probe"),
    ],
    ids=["not-ready", "no-probe"],
)
def test_a_revision_that_is_not_proven_ready_is_reported(
    cloud: Callable[..., Cloud], describe: dict[str, Any], status: str, expected: str
) -> None:
    result = cloud("ingress", describe=describe).run()

    assert expected in line(result, status, "internal revision")
    assert result.returncode == (1 if status == "FAIL" else 0)


def test_a_degraded_internal_health_is_a_warning_naming_the_component(
    cloud: Callable[..., Cloud],
) -> None:
    stale = {
        "status": "degraded",
        "components": {
            APPID: {
                "ticket_age_seconds": 4000.0,
                "ticket_stale": True,
                "component_token_expires_in_seconds": 900,
                "last_error": "61004 api unauthorized",
            }
        },
    }
    result = cloud("iam", health=stale).run()

    assert result.returncode == 0
    warning = line(result, "WARN", "internal /healthz")
    assert f"degraded: {APPID}: ticket 4000 s old (stale)" in warning
    assert "last error: 61004 api unauthorized" in warning
    assert "授权事件接收URL" in warning


def test_an_untrusted_certificate_fails_naming_the_certificate_check(
    cloud: Callable[..., Cloud],
) -> None:
    result = cloud("iam", rogue_public=True).run()

    assert result.returncode == 1
    failure = line(result, "FAIL", f"entry page {APPID}")
    assert "certificate not trusted" in failure
    certificate = "wcg-test-cert-1a2b3c4d --global --project my-project"
    describe = f"gcloud compute ssl-certificates describe {certificate}"
    assert describe in failure
    assert "must resolve to 203.0.113.9 (the A record in pulumi stack output" in failure
    assert "certificate not trusted" in line(result, "FAIL", "public /healthz")


def test_a_stack_without_services_says_to_build_and_deploy(cloud: Callable[..., Cloud]) -> None:
    world = cloud("iam")
    world.outputs = {"egress_ip": "203.0.113.7", "next_step": "No `image` is configured ..."}
    result = world.run()

    assert result.returncode == 2
    assert "has no services yet" in result.stderr
    assert "make image && make deploy" in result.stderr


def test_gcloud_not_logged_in_is_said_clearly(cloud: Callable[..., Cloud]) -> None:
    world = cloud("iam")
    world.overrides["gcloud auth print-identity-token"] = {
        "rc": 1,
        "stderr": "ERROR: (gcloud.auth.print-identity-token) You do not currently have an "
        "active account selected.\n",
    }
    result = world.run()

    assert result.returncode == 2
    assert "You do not currently have an active account selected" in result.stderr
    assert "run gcloud auth login" in result.stderr
    assert result.stdout == ""


def test_pulumi_missing_is_said_clearly(cloud: Callable[..., Cloud]) -> None:
    world = cloud("iam", tools=("gcloud",))

    named = world.run("--stack", "prod")
    assert named.returncode == 2
    assert "the Pulumi CLI is not installed" in named.stderr

    # No stack named, no make dev running: both ways are explained.
    neither = world.run()
    assert neither.returncode == 2
    assert "no Pulumi CLI here, and make dev is not running" in neither.stderr
    assert "make smoke STACK=<name>" in neither.stderr
    assert "make smoke LOCAL=1" in neither.stderr
    assert world.commands() == []


def test_without_pulumi_a_running_make_dev_is_checked_instead(
    cloud: Callable[..., Cloud], tmp_path: Path
) -> None:
    world = cloud("iam", tools=("gcloud",))
    # "make dev" here is this test's own process (alive), its service on a dead port.
    state = DevState(f"http://127.0.0.1:{free_port()}", APPID, "dev-local-key", os.getpid(), 300)
    state.refreshed(True, "renewed=1").write(tmp_path / "no-make-dev" / "stack.json")
    result = world.run()

    assert "No Pulumi CLI here" in result.stdout and "checking it" in result.stdout
    assert f"the local stack (make dev, pid {os.getpid()})" in result.stdout
    assert "connection refused" in line(result, "FAIL", "/healthz")
    assert result.returncode == 1


def test_no_stack_selected_explains_both_ways(cloud: Callable[..., Cloud]) -> None:
    world = cloud("iam")
    world.overrides["pulumi stack --show-name"] = {
        "rc": 255,
        "stderr": "error: no stack selected; please use `pulumi stack select` to choose one\n",
    }
    result = world.run()

    assert result.returncode == 2
    assert "no Pulumi stack is selected (error: no stack selected;" in result.stderr
    assert "make smoke LOCAL=1" in result.stderr


# --- pieces ---------------------------------------------------------------------------------


def test_google_pages_are_told_apart_from_the_services_answers() -> None:
    page = Answer(404, GOOGLE_404, None)
    assert ingress_refused(page, "internal") and ingress_refused(page, None)
    assert not ingress_refused(page, "all")
    service_404 = Answer(404, '{"error": "x"}', {"error": "x"})
    assert not ingress_refused(service_404, "internal")
    assert page.shown() == "Error 404 (Not Found)!!1"


def test_a_dns_failure_on_the_domain_says_to_check_the_record_and_the_certificate() -> None:
    stack = Stack("dev", "p", REGION, {})  # outputs without the domain's: found by listing
    failure = Unreachable("dns", "auth.example.com", "")
    fix = _domain_fix("https://auth.example.com/x", failure, stack)
    assert fix.startswith("check the DNS record: auth.example.com must resolve to the load")
    assert "gcloud compute ssl-certificates list --project p" in fix
    assert "--filter='managed.domains:auth.example.com'" in fix
    assert "gcloud compute ssl-certificates describe <name> --global --project p" in fix
    run_app = _domain_fix("https://x.run.app/", Unreachable("tls", "x.run.app", ""), stack)
    assert "ssl-certificates" not in run_app


def test_health_lists_each_problem_of_a_degraded_component() -> None:
    result = health_result(
        "internal /healthz",
        "https://i/healthz",
        {
            "status": "degraded",
            "components": {
                "wxa": {"ticket_age_seconds": None, "ticket_stale": True},
                "wxb": {
                    "ticket_age_seconds": 10.0,
                    "ticket_stale": False,
                    "component_token_expires_in_seconds": -30,
                },
            },
        },
        "fix it.",
    )
    assert result.status == "WARN"
    assert "wxa: no ticket received, no component token" in result.detail
    assert "wxb: ticket 10 s old, component token expired 30 s ago" in result.detail


def test_make_devs_state_file_round_trips_and_only_its_owner_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "dev" / "stack.json"
    state = DevState("http://127.0.0.1:8080", APPID, "dev-local-key", 4242, 300.0)
    state.refreshed(False, "refresh failed: ConnectionError").write(path)

    read = DevState.read(path)
    assert read.last_refresh is not None and read.last_refresh.ok is False
    assert read.last_refresh.outcome == "refresh failed: ConnectionError"
    assert read.service_url == state.service_url and read.pid == 4242
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["stack.json"]  # no temporary left


def test_a_stalled_refresh_loop_fails(tmp_path: Path) -> None:
    path = tmp_path / "stack.json"
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=700)
    DevState("http://127.0.0.1:1", APPID, "k", os.getpid(), 300.0).refreshed(
        True, "renewed=0", at=long_ago
    ).write(path)

    result = LocalTarget(path).refresh_loop()
    assert result.status == "FAIL"
    assert "but it runs every 300 s" in result.detail
