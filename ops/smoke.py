"""``make smoke``: a smoke test of a deployed stack, or of the local ``make dev`` stack.

It pushes nothing to WeChat and changes nothing. Each check prints one line, PASS, WARN or
FAIL, what it checked and, for a FAIL, the fix. The exit status is 1 when a check failed, 2
when nothing could be checked (a tool missing or not logged in, no services yet).

The deployed stack is read with ``pulumi stack output --json`` and ``pulumi config get``;
the checks run as the caller's gcloud identity (``gcloud auth print-identity-token``, sent
only to the internal service and never printed):

1. ``/healthz`` on both services. With ``internal_ingress: internal`` (the default) the
   internal one cannot be reached from outside the project's VPC: Google refuses the request
   before the service sees it. Then ``gcloud run services describe`` says whether its latest
   revision is Ready (its startup probe, ``/readyz``, reached Firestore and WeChat's API
   host) and serving, and the line says how to read ``/healthz`` itself.
2. The public URLs over HTTPS: each entry page answers 200 with a certificate ``requests``
   trusts, and each 授权事件接收URL refuses a bare POST with the service's own 4xx.
3. The internal API refuses a request without an identity.
4. The refresh job exists and its last run succeeded (``gcloud scheduler jobs describe``).

The local stack is described by the state file ``make dev`` writes (``DevState``); the same
checks run against its one service, with its API key in place of IAM and its refresh loop in
place of Cloud Scheduler.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import NameResolutionError

REPO = Path(__file__).resolve().parent.parent
DEV_STATE_FILE = "stack.json"
HTTP_TIMEOUT = 20.0  # a cold start of a Cloud Run instance (and its /readyz probe) included
TOOL_TIMEOUT = 120.0

Status = Literal["PASS", "WARN", "FAIL"]


@dataclass(frozen=True)
class Result:
    status: Status
    what: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        fix = f" Fix: {self.fix}" if self.fix else ""
        return f"{self.status}  {self.what}: {self.detail}{fix}"


def passed(what: str, detail: str) -> Result:
    return Result("PASS", what, detail)


def warned(what: str, detail: str) -> Result:
    return Result("WARN", what, detail)


def failed(what: str, detail: str, fix: str) -> Result:
    return Result("FAIL", what, detail, fix)


class SetupError(Exception):
    """Nothing can be checked: a tool is missing, not logged in, or the stack has no services."""


# --- make dev's state file ------------------------------------------------------------------


class DevStateError(Exception):
    pass


@dataclass(frozen=True)
class LastRefresh:
    at: datetime
    ok: bool  # the refresh task answered 200
    outcome: str


@dataclass(frozen=True)
class DevState:
    """What ``make dev`` runs, for ``make smoke LOCAL=1``: ``<log dir>/stack.json``.

    Written once the first refresh has run, rewritten after each one, removed on exit.
    """

    service_url: str
    component_appid: str
    # The local stack's own SERVICE_API_KEYS key (make dev's default or the caller's), never a
    # deployment's secret, so it may sit in this file: the smoke test needs it.
    api_key: str
    pid: int
    refresh_every: float
    last_refresh: LastRefresh | None = None

    def refreshed(self, ok: bool, outcome: str, at: datetime | None = None) -> DevState:
        return replace(self, last_refresh=LastRefresh(at or datetime.now(UTC), ok, outcome))

    def to_json(self) -> dict[str, Any]:
        last = self.last_refresh
        return {
            "_comment": (
                "make dev's state, read by make smoke LOCAL=1; removed when make dev stops. "
                "api_key is this local stack's dev key, not a deployment's secret."
            ),
            "service_url": self.service_url,
            "component_appid": self.component_appid,
            "api_key": self.api_key,
            "pid": self.pid,
            "refresh_every": self.refresh_every,
            "last_refresh": None
            if last is None
            else {"at": last.at.isoformat(), "ok": last.ok, "outcome": last.outcome},
        }

    def write(self, path: Path) -> None:
        """Replaces the file in one step, so a reader never sees half of it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".stack-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as out:  # mkstemp makes it 0600: only its owner reads it
                json.dump(self.to_json(), out, indent=2, ensure_ascii=False)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    @classmethod
    def read(cls, path: Path) -> DevState:
        try:
            raw = json.loads(path.read_text("utf-8"))
            last = raw.get("last_refresh")
            return cls(
                service_url=str(raw["service_url"]).rstrip("/"),
                component_appid=str(raw["component_appid"]),
                api_key=str(raw["api_key"]),
                pid=int(raw["pid"]),
                refresh_every=float(raw["refresh_every"]),
                last_refresh=None
                if last is None
                else LastRefresh(
                    datetime.fromisoformat(last["at"]), bool(last["ok"]), str(last["outcome"])
                ),
            )
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DevStateError(f"{path} is not make dev's state file: {exc!r}") from exc

    def is_running(self) -> bool:
        return _pid_alive(self.pid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def default_dev_state_path() -> Path:
    return Path(os.environ.get("DEV_LOG_DIR", REPO / ".dev")) / DEV_STATE_FILE


def running_dev_stack(path: Path) -> DevState | None:
    try:
        state = DevState.read(path)
    except (FileNotFoundError, DevStateError):
        return None
    return state if state.is_running() else None


# --- HTTP ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    text: str
    data: dict[str, Any] | None  # the body when it is a JSON object: the service's own answers
    location: str | None = None

    @property
    def from_service(self) -> bool:
        return self.data is not None

    @property
    def error(self) -> str:
        return str((self.data or {}).get("error", ""))

    def shown(self) -> str:
        """A short, printable form of the body: the JSON, or an HTML page's title."""
        if self.data is not None:
            return json.dumps(self.data, ensure_ascii=False)[:200]
        title = re.search(r"<title>(.*?)</title>", self.text, re.IGNORECASE | re.DOTALL)
        text = title.group(1) if title else re.sub(r"<[^>]+>", " ", self.text)
        return " ".join(text.split())[:120] or "(empty body)"


class Unreachable(Exception):
    def __init__(self, kind: Literal["tls", "dns", "connect", "timeout"], host: str, reason: str):
        super().__init__(reason)
        self.kind = kind
        self.host = host
        self.reason = reason


class Web:
    """requests with certificate checks on (REQUESTS_CA_BUNDLE is honoured), no redirects."""

    def __init__(self, timeout: float = HTTP_TIMEOUT) -> None:
        self.session = requests.Session()
        self.timeout = timeout

    def get(self, url: str, headers: Mapping[str, str] | None = None) -> Answer:
        return self._request("GET", url, headers)

    def post_empty(self, url: str) -> Answer:
        return self._request("POST", url, None, data=b"")

    def _request(
        self, method: str, url: str, headers: Mapping[str, str] | None, data: bytes | None = None
    ) -> Answer:
        host = urlsplit(url).hostname or url
        try:
            response = self.session.request(
                method,
                url,
                headers=dict(headers or {}),
                data=data,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.exceptions.SSLError as exc:
            raise Unreachable("tls", host, _tls_reason(exc)) from None
        except requests.exceptions.Timeout:
            raise Unreachable("timeout", host, f"no answer within {self.timeout:.0f}s") from None
        except requests.exceptions.ConnectionError as exc:
            if _is_name_error(exc):
                raise Unreachable("dns", host, f"{host} does not resolve") from None
            raise Unreachable("connect", host, _connect_reason(exc)) from None
        except requests.RequestException as exc:
            raise Unreachable("connect", host, type(exc).__name__) from None
        data_: dict[str, Any] | None = None
        if response.headers.get("Content-Type", "").startswith("application/json"):
            try:
                body = response.json()
            except ValueError:
                body = None
            data_ = body if isinstance(body, dict) else None
        return Answer(response.status_code, response.text, data_, response.headers.get("Location"))


def _tls_reason(exc: Exception) -> str:
    text = str(exc)
    found = re.search(r"certificate verify failed: ([^(')]+)", text)
    if found:
        return f"certificate not trusted: {found.group(1).strip()}"
    found = re.search(r"\[SSL[^\]]*\] ([^(')]+)", text)
    return f"TLS failed: {found.group(1).strip()}" if found else "TLS handshake failed"


def _is_name_error(exc: requests.exceptions.ConnectionError) -> bool:
    # requests wraps urllib3's MaxRetryError, whose reason is the NameResolutionError.
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NameResolutionError) or "Name or service not known" in str(exc)


def _connect_reason(exc: Exception) -> str:
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    return type(exc).__name__


def _when(stamp: str) -> str:
    """An RFC 3339 time as gcloud prints it, and how long ago that was."""
    try:
        return f"{stamp} ({_ago(datetime.fromisoformat(stamp))})"
    except (ValueError, TypeError):  # not a time we can read (or naive): shown as it is
        return stamp


def _ago(moment: datetime, now: datetime | None = None) -> str:
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


# --- checks both targets share ----------------------------------------------------------------


@dataclass(frozen=True)
class Transport:
    """How a target's URLs are reached, and what to do when one is not."""

    label: str  # "HTTPS", or "http (local)"
    fix: Callable[[str, Unreachable], str] = field(repr=False)

    @property
    def verified(self) -> str:
        return " (certificate verified)" if self.label == "HTTPS" else ""


def health_result(what: str, url: str, data: Mapping[str, Any], degraded_fix: str) -> Result:
    """The full /healthz (internal service, or make dev's): ok, or degraded with the reasons."""
    components = data.get("components")
    if not isinstance(components, dict):
        return failed(
            what,
            f"{url} answered without per-component health: {json.dumps(data)[:120]}",
            "is this the internal service (SERVICE_ROLE internal or all)?",
        )
    summaries, problems = [], []
    for appid, health in sorted(components.items()):
        summary, problem = _component_health(appid, health if isinstance(health, dict) else {})
        summaries.append(summary)
        if problem:
            problems.append(problem)
    if data.get("status") == "ok" and not problems:
        return passed(what, f"{url}: ok; " + "; ".join(summaries))
    reasons = "; ".join(problems) or f"status {data.get('status')!r}"
    return warned(what, f"{url}: degraded: {reasons}. {degraded_fix}")


def _component_health(appid: str, health: Mapping[str, Any]) -> tuple[str, str | None]:
    age = health.get("ticket_age_seconds")
    stale = bool(health.get("ticket_stale"))
    expires_in = health.get("component_token_expires_in_seconds")
    error = health.get("last_error")
    ticket = "no ticket received" if age is None else f"ticket {float(age):.0f} s old"
    if stale and age is not None:
        ticket += " (stale)"
    if expires_in is None:
        token = "no component token"
    elif expires_in <= 0:
        token = f"component token expired {-int(expires_in)} s ago"
    else:
        token = f"component token valid {int(expires_in)} s more"
    summary = f"{appid}: {ticket}, {token}"
    bad = stale or expires_in is None or expires_in <= 0
    if not bad:
        return summary, None
    return summary, summary + (f" (last error: {error})" if error else "")


def check_entry_page(web: Web, transport: Transport, appid: str, url: str) -> Result:
    what = f"entry page {appid}"
    try:
        answer = web.get(url)
    except Unreachable as exc:
        return failed(what, f"{url}: {exc.reason}", transport.fix(url, exc))
    if answer.status == 200:
        return passed(what, f"{url} answered 200 over {transport.label}{transport.verified}")
    if 300 <= answer.status < 400:
        return failed(
            what,
            f"{url} redirects ({answer.status}) to {answer.location}",
            "the entry page is served by the public service itself; check that the domain "
            "reaches the public service directly",
        )
    return failed(
        what,
        f"{url} answered {answer.status}: {answer.shown()}",
        "merchants open this page: read the public service's logs for the error",
    )


def check_events_url(web: Web, transport: Transport, appid: str, url: str) -> Result:
    """A bare POST (no signature): the service refuses it with its own JSON 4xx."""
    what = f"events URL {appid}"
    try:
        answer = web.post_empty(url)
    except Unreachable as exc:
        return failed(what, f"{url}: {exc.reason}", transport.fix(url, exc))
    if 200 <= answer.status < 300:
        return failed(
            what,
            f"!!! {url} ACCEPTED an unsigned, empty push ({answer.status}): anyone could "
            "forge WeChat's pushes",
            "this is not the gateway's behaviour: check what serves this URL, and stop it",
        )
    if answer.from_service and answer.status == 404:
        return failed(
            what,
            f"{url}: the service does not know component {appid} ({answer.error})",
            f"add {appid} to the stack's `components` with its secrets, then make deploy",
        )
    if answer.from_service and 400 <= answer.status < 500:
        return passed(
            what,
            f"{url} reaches the service over {transport.label}: a bare POST is refused "
            f"with its own {answer.status} ({answer.error})",
        )
    if answer.from_service:
        return failed(
            what,
            f"{url}: the service answered {answer.status} ({answer.error})",
            "read the public service's logs for the error",
        )
    return failed(
        what,
        f"{url} answered {answer.status} with something other than the service's JSON: "
        f"{answer.shown()}",
        "the URL does not reach the gateway's public service: check the domain's routing "
        "(load balancer or domain mapping) and that the service is deployed",
    )


# --- the deployed stack -----------------------------------------------------------------------


class ToolMissingError(SetupError):
    pass


class ToolFailedError(Exception):
    def __init__(self, command: str, message: str) -> None:
        super().__init__(f"`{command}` failed: {message}")
        self.command = command
        self.message = message


def run_tool(argv: Sequence[str], timeout: float = TOOL_TIMEOUT) -> str:
    """Runs pulumi or gcloud; its stdout, or ToolFailedError with its error line."""
    command = " ".join(argv)
    if shutil.which(argv[0]) is None:
        raise ToolMissingError(f"`{argv[0]}` is not installed (not on PATH)")
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ToolFailedError(command, f"no answer within {timeout:.0f}s") from None
    if done.returncode != 0:
        raise ToolFailedError(command, _error_line(done.stderr) or f"exit {done.returncode}")
    return done.stdout


def _error_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    flagged = [line for line in lines if line.lower().startswith("error")]
    return (flagged or lines or [""])[0][:300]


INTERNAL_AUDIENCE = re.compile(
    r"^https://(?P<service>[a-z][a-z0-9-]*)-\d+\.[a-z0-9-]+\.run\.app/?$"
)


@dataclass(frozen=True)
class Stack:
    name: str
    project: str
    region: str
    outputs: Mapping[str, Any]

    def output(self, key: str) -> Any:
        if key not in self.outputs:
            raise SetupError(
                f"the stack {self.name!r} has no output {key!r}: run make deploy (the "
                "outputs come from the same program as this check)"
            )
        return self.outputs[key]

    def urls(self, key: str) -> dict[str, str]:
        value = self.output(key)
        if not isinstance(value, dict) or not value:
            raise SetupError(f"the stack output {key!r} is not a map of appid to URL: {value!r}")
        return {str(appid): str(url) for appid, url in sorted(value.items())}

    @property
    def internal_url(self) -> str:
        return str(self.output("internal_url")).rstrip("/")

    @property
    def internal_service(self) -> str:
        """Its name, from internal_audience (``https://<service>-<project number>.<region>…``)."""
        audience = str(self.output("internal_audience"))
        found = INTERNAL_AUDIENCE.match(audience)
        if found is None:
            raise SetupError(f"cannot tell the internal service's name from {audience!r}")
        return found.group("service")

    @property
    def prefix(self) -> str:
        return self.internal_service.removesuffix("-internal")

    @property
    def scheduler_job(self) -> str:
        return str(self.output("scheduler_job"))

    def where(self) -> str:
        return f"--region {self.region} --project {self.project}"


def pulumi_argv(stack: str | None, *args: str) -> list[str]:
    # As the Makefile's deploy targets: PULUMI := pulumi $(if $(STACK),--stack $(STACK))
    return ["pulumi", *(["--stack", stack] if stack else []), *args]


def selected_stack() -> str:
    """The selected stack's name; ToolFailedError when none is selected (or not logged in)."""
    return run_tool(pulumi_argv(None, "stack", "--show-name")).strip()


def load_stack(stack: str | None, selected: str | None = None) -> Stack:
    """``stack`` as STACK gives it (None: the selected one, whose name may be known)."""
    login = (
        "log in (pulumi login, or pulumi login --local for a state on this machine) and "
        "select the stack (pulumi stack select <name>, or make smoke STACK=<name>)"
    )
    try:
        name = stack or selected or selected_stack()
        outputs = json.loads(run_tool(pulumi_argv(stack, "stack", "output", "--json")) or "{}")
        project = run_tool(pulumi_argv(stack, "config", "get", "gcp:project")).strip()
        region = run_tool(pulumi_argv(stack, "config", "get", "gcp:region")).strip()
    except ToolMissingError:
        raise SetupError(
            "the Pulumi CLI is not installed (`pulumi` is not on PATH): install it "
            "(docs/deploy.md, 'What you need'), or check the local stack with make smoke LOCAL=1"
        ) from None
    except ToolFailedError as exc:
        raise SetupError(f"{exc}. Pulumi must be logged in with a stack: {login}") from None
    except ValueError as exc:
        raise SetupError(f"pulumi stack output --json printed no JSON: {exc}") from None
    if not isinstance(outputs, dict):
        raise SetupError(f"pulumi stack output --json printed {type(outputs).__name__}")
    if "internal_url" not in outputs or "public_url" not in outputs:
        raise SetupError(
            f"the stack {name!r} has no services yet (no `image` is configured, so only the "
            "foundation exists): run  make image && make deploy  then make smoke again"
        )
    return Stack(name, project, region, outputs)


def identity_token() -> str:
    """The caller's gcloud identity token: held in memory, sent only to the internal service."""
    try:
        token = run_tool(["gcloud", "auth", "print-identity-token"]).strip()
    except ToolMissingError:
        raise SetupError(
            "the Google Cloud CLI is not installed (`gcloud` is not on PATH): install it and "
            "run gcloud auth login"
        ) from None
    except ToolFailedError as exc:
        raise SetupError(
            f"gcloud has no identity to check with ({exc.message}): run gcloud auth login"
        ) from None
    if not token or any(ch.isspace() for ch in token):
        raise SetupError("gcloud auth print-identity-token printed no token: gcloud auth login")
    return token


def _gcloud_json(*args: str) -> dict[str, Any]:
    text = run_tool(["gcloud", *args, "--format", "json"])
    try:
        data = json.loads(text)
    except ValueError:
        raise ToolFailedError("gcloud " + " ".join(args), "printed no JSON") from None
    if not isinstance(data, dict):
        raise ToolFailedError("gcloud " + " ".join(args), "printed no JSON object")
    return data


def _domain_fix(url: str, exc: Unreachable, stack: Stack) -> str:
    """What to look at when the public domain (behind the load balancer) fails."""
    host, project = exc.host, stack.project
    if host.endswith(".run.app"):
        return (
            f"{host} is Cloud Run's own host: check this machine's network (a proxy that "
            "intercepts TLS, a firewall) and try again"
        )
    name = stack.outputs.get("public_domain_certificate")
    describe = (
        f"gcloud compute ssl-certificates describe {name or '<name>'} --global --project {project}"
    )
    found = (
        ""
        if name
        else (
            f"gcloud compute ssl-certificates list --project {project} "
            f"--filter='managed.domains:{host}' gives its name, then "
        )
    )
    certificate = (
        f"check the certificate: {found}{describe} (managed.status must be ACTIVE; it stays "
        f"PROVISIONING until {host}'s DNS record points at the load balancer)"
    )
    record = stack.outputs.get("public_domain_dns_record")
    wanted = (
        f"{record.get('value')} (the {record.get('type', 'A')} record in pulumi stack output "
        "public_domain_dns_record)"
        if isinstance(record, dict)
        else "the load balancer's address"
    )
    dns = f"check the DNS record: {host} must resolve to {wanted} (dig +short {host})"
    if exc.kind == "tls":
        return f"{certificate}; and {dns}"
    if exc.kind == "dns":
        return f"{dns}; then {certificate}"
    return f"{dns}; {certificate}; and that the load balancer forwards to the public service"


class CloudTarget:
    def __init__(
        self, stack: str | None, selected: str | None = None, web: Web | None = None
    ) -> None:
        self.stack = load_stack(stack, selected)
        self.token = identity_token()
        self.web = web or Web()
        self.transport = Transport("HTTPS", lambda url, exc: _domain_fix(url, exc, self.stack))

    @property
    def title(self) -> str:
        s = self.stack
        return (
            f"make smoke: the deployed stack {s.name!r} (project {s.project}, region "
            f"{s.region}), as your gcloud identity"
        )

    def checks(self) -> Iterator[Result]:
        entry_urls = self.stack.urls("authorization_entry_urls")
        event_urls = self.stack.urls("authorization_event_urls")
        yield self.public_health(next(iter(entry_urls.values())))
        for appid, url in entry_urls.items():
            yield check_entry_page(self.web, self.transport, appid, url)
        for appid, url in event_urls.items():
            yield check_events_url(self.web, self.transport, appid, url)
        revision, ingress = self.internal_revision()
        yield revision
        yield self.internal_health(ingress)
        yield self.anonymous_internal(next(iter(entry_urls)), ingress)
        yield self.scheduler()

    def public_health(self, entry_url: str) -> Result:
        # On the base WeChat and merchants use (the domain, when there is one).
        parts = urlsplit(entry_url)
        url = f"{parts.scheme}://{parts.netloc}/healthz"
        what = "public /healthz"
        try:
            answer = self.web.get(url)
        except Unreachable as exc:
            return failed(what, f"{url}: {exc.reason}", self.transport.fix(url, exc))
        data = answer.data or {}
        if answer.status == 200 and data.get("status") == "ok" and data.get("role") == "public":
            return passed(what, f"{url} answered {answer.shown()}")
        if answer.status == 200 and answer.from_service:
            return failed(
                what,
                f"{url} answered as another role: {answer.shown()}",
                "the public URLs must reach the public service: check the domain's routing",
            )
        return failed(
            what,
            f"{url} answered {answer.status}: {answer.shown()}",
            f"read the public service's state: gcloud run services describe {self.stack.prefix}"
            f"-public {self.stack.where()}",
        )

    def internal_revision(self) -> tuple[Result, str | None]:
        """Whether the internal service's latest revision is Ready and serving; its ingress."""
        service = self.stack.internal_service
        what = "internal revision"
        where = self.stack.where()
        try:
            described = _gcloud_json("run", "services", "describe", service, *where.split())
        except ToolFailedError as exc:
            fix = "make deploy creates it; is this the stack's project?"
            return failed(what, str(exc), fix), None
        metadata = described.get("metadata") or {}
        annotations = metadata.get("annotations") or {}
        ingress = annotations.get("run.googleapis.com/ingress-status") or annotations.get(
            "run.googleapis.com/ingress"
        )
        status = described.get("status") or {}
        conditions = {c.get("type"): c for c in status.get("conditions") or []}
        ready = conditions.get("Ready") or {}
        created = status.get("latestCreatedRevisionName")
        latest = status.get("latestReadyRevisionName")
        if not conditions or not created:
            return failed(
                what,
                f"gcloud run services describe {service} gave no revision status",
                f"look at it: gcloud run services describe {service} {where}",
            ), ingress
        logs = (
            f'gcloud logging read \'resource.type="cloud_run_revision" AND '
            f'resource.labels.revision_name="{created}"\' --project {self.stack.project} '
            "--limit 20"
        )
        if ready.get("status") != "True" or created != latest:
            reason = ready.get("message") or ready.get("reason") or "not ready"
            serving = f"; traffic stays on {latest}" if latest and latest != created else ""
            return failed(
                what,
                f"the latest revision {created} of {service} is not Ready: {reason}{serving}",
                f"its startup probe (/readyz) names what failed, Firestore or the egress: "
                f"{logs}; and gcloud run revisions describe {created} {where}",
            ), ingress
        percent = sum(
            int(t.get("percent") or 0)
            for t in status.get("traffic") or []
            if t.get("revisionName") == latest or t.get("latestRevision") is True
        )
        if percent <= 0:
            return failed(
                what,
                f"the latest revision {latest} is Ready but serves no traffic",
                f"send it the traffic: gcloud run services update-traffic {service} "
                f"--to-latest {where}",
            ), ingress
        template = (described.get("spec") or {}).get("template") or {}
        containers = (template.get("spec") or {}).get("containers") or [{}]
        probe = ((containers[0].get("startupProbe") or {}).get("httpGet") or {}).get("path")
        if probe != "/readyz":
            return warned(
                what,
                f"{latest} is Ready and serves {percent}% of traffic, but has no /readyz "
                "startup probe (deployed before it existed), so Ready proves only that it "
                "listens; make image && make deploy adds it",
            ), ingress
        return passed(
            what,
            f"{latest} is Ready and serves {percent}% of traffic: its startup probe (/readyz) "
            "reached Firestore and WeChat's API host through the egress",
        ), ingress

    def internal_health(self, ingress: str | None) -> Result:
        url = f"{self.stack.internal_url}/healthz"
        what = "internal /healthz"
        service, where = self.stack.internal_service, self.stack.where()
        try:
            answer = self.web.get(url, headers={"Authorization": f"Bearer {self.token}"})
        except Unreachable as exc:
            return failed(what, f"{url}: {exc.reason}", self.transport.fix(url, exc))
        if answer.from_service and answer.status == 200 and answer.data is not None:
            return health_result(
                what,
                url,
                answer.data,
                "A stale or missing ticket: check the console's 授权事件接收URL, Token and "
                "EncodingAESKey (docs/deploy.md, step 5); WeChat pushes one every 10 minutes. "
                "No component token: the next sweep makes one from the ticket.",
            )
        if answer.from_service:
            return failed(
                what,
                f"{url}: the service answered {answer.status} ({answer.error})",
                f'read its logs: gcloud logging read \'resource.type="cloud_run_revision" AND '
                f'resource.labels.service_name="{service}" AND severity>=WARNING\' '
                f"--project {self.stack.project} --limit 20",
            )
        if ingress_refused(answer, ingress):
            return warned(
                what,
                f"not read: {url} is unreachable from here by design: Google answered "
                f"{answer.status} ({answer.shown()}) before the service, as internal_ingress "
                "`internal` (the default) keeps everyone outside the project's VPC out; "
                "the revision check above stands in for it. To read /healthz itself: from a "
                f"machine on the {self.stack.prefix}-vpc network (Cloud Shell is not inside "
                'it), curl -H "Authorization: Bearer $(gcloud auth print-identity-token)" '
                f"{url}; or set internal_ingress all for a while (pulumi config set "
                "internal_ingress all && make deploy, make smoke, then set it back to internal "
                "and make deploy)",
            )
        if answer.status == 403:
            return failed(
                what,
                f"Cloud Run refused your identity ({answer.status}, {answer.shown()}): your "
                f"account may not invoke {service}",
                f"grant yourself roles/run.invoker (Owner includes it): gcloud run services "
                f'add-iam-policy-binding {service} {where} --member "user:$(gcloud config '
                'get-value account)" --role roles/run.invoker',
            )
        if answer.status == 401:
            return failed(
                what,
                f"Cloud Run did not accept your identity token ({answer.status})",
                "log in again: gcloud auth login, then make smoke",
            )
        return failed(
            what,
            f"{url} answered {answer.status}, not the service's JSON: {answer.shown()}",
            f"check internal_url and the service: gcloud run services describe {service} {where}",
        )

    def anonymous_internal(self, appid: str, ingress: str | None) -> Result:
        url = f"{self.stack.internal_url}/api/v1/components/{appid}/authorizers"
        what = "internal API without identity"
        service, where = self.stack.internal_service, self.stack.where()
        private = (
            f"make it private now: gcloud run services update {service} {where} "
            "--invoker-iam-check (in case the check was turned off), and gcloud run services "
            f"remove-iam-policy-binding {service} {where} --member allUsers --role "
            "roles/run.invoker (the same for allAuthenticatedUsers; gcloud run services "
            f"get-iam-policy {service} {where} lists who may invoke it)"
        )
        try:
            answer = self.web.get(url)
        except Unreachable as exc:
            return failed(what, f"{url}: {exc.reason}", self.transport.fix(url, exc))
        if 200 <= answer.status < 300:
            return failed(
                what,
                f"!!! {url} ANSWERED A REQUEST WITHOUT ANY IDENTITY ({answer.status}): anyone "
                "can read merchants' authorizations and take their tokens",
                private,
            )
        if answer.from_service:
            return failed(
                what,
                f"Cloud Run let a request without identity through to the service, which "
                f"refused it itself ({answer.status}: {answer.error})",
                private,
            )
        if ingress_refused(answer, ingress):
            return passed(
                what,
                f"{url} refused by ingress ({answer.status}, Google's page) before the service: "
                "internal_ingress internal",
            )
        if answer.status in (401, 403):
            return passed(
                what, f"{url} refused by Cloud Run IAM ({answer.status}) before the service"
            )
        return failed(
            what,
            f"{url} answered {answer.status}, neither a refusal nor the service: {answer.shown()}",
            f"check internal_url and the service: gcloud run services describe {service} {where}",
        )

    def scheduler(self) -> Result:
        job = self.stack.scheduler_job
        job_id = job.rsplit("/", 1)[-1]
        location = f"--location {self.stack.region} --project {self.stack.project}"
        what = "scheduler job"
        try:
            described = _gcloud_json("scheduler", "jobs", "describe", job, *location.split())
        except ToolFailedError as exc:
            return failed(what, str(exc), "make deploy creates it with the services")
        last = described.get("lastAttemptTime")
        state = described.get("state")
        status = described.get("status") or {}
        code = int(status.get("code") or 0)
        if not last:
            return failed(
                what,
                f"{job_id} has never run yet",
                f"run it now: gcloud scheduler jobs run {job_id} {location}, then make smoke "
                "again in a minute",
            )
        when = _when(str(last))
        if code != 0:
            message = status.get("message") or ""
            return failed(
                what,
                f"{job_id}'s last run, {when}, failed: code {code} "
                f"({RPC_CODES.get(code, 'unknown')}){': ' + message if message else ''}",
                'see why: gcloud logging read \'resource.type="cloud_scheduler_job" AND '
                f'resource.labels.job_id="{job_id}"\' --project {self.stack.project} --limit 5; '
                "the sweep's own summary: gcloud logging read "
                f"'jsonPayload.event=\"refresh_sweep_done\"' --project {self.stack.project} "
                "--limit 3 (HTTP 503: some refresh failed, and the line says which)",
            )
        if state and state != "ENABLED":
            return failed(
                what,
                f"{job_id} is {state}: tokens are not refreshed",
                f"gcloud scheduler jobs resume {job_id} {location}",
            )
        return passed(
            what,
            f"{job_id} last ran {when} and succeeded; schedule {described.get('schedule', '?')}",
        )


# google.rpc.Code: what Cloud Scheduler records for a failed attempt.
RPC_CODES = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    16: "UNAUTHENTICATED",
}


def ingress_refused(answer: Answer, ingress: str | None) -> bool:
    """Google's own 404 (or 403) page for a request its ingress setting keeps out."""
    if answer.from_service or answer.status not in (403, 404):
        return False
    if ingress is None:
        return answer.status == 404
    return ingress != "all"


# --- the local stack --------------------------------------------------------------------------


class LocalTarget:
    def __init__(self, state_path: Path, web: Web | None = None) -> None:
        self.state_path = state_path
        try:
            self.state = DevState.read(state_path)
        except FileNotFoundError:
            raise SetupError(
                f"make dev is not running ({state_path} does not exist): start it with make "
                "dev in another terminal, then make smoke LOCAL=1"
            ) from None
        except DevStateError as exc:
            raise SetupError(str(exc)) from None
        self.web = web or Web()
        self.transport = Transport("http (local)", self._fix_unreachable)

    @property
    def title(self) -> str:
        return (
            f"make smoke: the local stack (make dev, pid {self.state.pid}) at "
            f"{self.state.service_url}"
        )

    def _fix_unreachable(self, url: str, exc: Unreachable) -> str:
        return (
            f"nothing answers at {self.state.service_url}: is make dev still running? Start "
            f"it with make dev (its state file: {self.state_path})"
        )

    def checks(self) -> Iterator[Result]:
        state = self.state
        if not state.is_running():
            yield failed(
                "make dev",
                f"its process ({state.pid}) is gone; {self.state_path} was left behind",
                "start make dev again (it rewrites the file)",
            )
            return
        base, appid = state.service_url, state.component_appid
        yield self.health()
        yield check_entry_page(self.web, self.transport, appid, f"{base}/authorize/{appid}")
        yield check_events_url(self.web, self.transport, appid, f"{base}/wechat/{appid}/events")
        yield self.api_without_key()
        yield self.refresh_loop()

    def health(self) -> Result:
        url = f"{self.state.service_url}/healthz"
        what = "/healthz"
        try:
            answer = self.web.get(url)
        except Unreachable as exc:
            return failed(what, f"{url}: {exc.reason}", self.transport.fix(url, exc))
        if answer.status != 200 or answer.data is None:
            return failed(
                what,
                f"{url} answered {answer.status}: {answer.shown()}",
                f"read {self.state_path.parent / 'service.log'}",
            )
        return health_result(
            what,
            url,
            answer.data,
            "Push a ticket with the mock (the push-ticket command make dev printed); the next "
            "refresh turns it into a component token.",
        )

    def api_without_key(self) -> Result:
        url = f"{self.state.service_url}/api/v1/components/{self.state.component_appid}/authorizers"
        what = "API without key"
        try:
            answer = self.web.get(url)
        except Unreachable as exc:
            return failed(what, f"{url}: {exc.reason}", self.transport.fix(url, exc))
        if answer.from_service and answer.status == 401:
            return passed(what, f"{url} refused with 401 ({answer.error})")
        if 200 <= answer.status < 300:
            return failed(
                what,
                f"!!! {url} ANSWERED A REQUEST WITHOUT THE API KEY ({answer.status})",
                "the internal API must require SERVICE_API_KEYS: check the service's "
                "INTERNAL_AUTH and SERVICE_API_KEYS",
            )
        return failed(
            what,
            f"{url} answered {answer.status}, not 401: {answer.shown()}",
            "make dev sets SERVICE_API_KEYS; read its service.log",
        )

    def refresh_loop(self) -> Result:
        what = "refresh loop"
        state = self.state
        last = state.last_refresh
        log = self.state_path.parent / "service.log"
        if last is None:
            return failed(
                what,
                "make dev has not run the refresh task yet",
                "wait for make dev's first refresh (it runs before the banner)",
            )
        when = f"{last.at.isoformat(timespec='seconds')} ({_ago(last.at)})"
        if not last.ok:
            return failed(
                what,
                f"make dev's last refresh, {when}, failed: {last.outcome}",
                f"read {log}; the next refresh runs within {state.refresh_every:.0f} s",
            )
        overdue = (datetime.now(UTC) - last.at).total_seconds() - 2 * state.refresh_every - 60
        if overdue > 0:
            return failed(
                what,
                f"make dev's last refresh was {when}, but it runs every "
                f"{state.refresh_every:.0f} s",
                "make dev's loop is stuck: look at its terminal, and restart it",
            )
        return passed(
            what,
            f"make dev's refresh loop (Cloud Scheduler's stand-in) last ran {when} and "
            f"succeeded: {last.outcome}",
        )


# --- choosing the target, and running ---------------------------------------------------------


class Target(Protocol):
    @property
    def title(self) -> str: ...

    def checks(self) -> Iterator[Result]: ...


BOTH_WAYS = (
    "  - a deployed stack: install the Pulumi CLI and the Google Cloud CLI (docs/deploy.md, 'What "
    "you need'), log in to both, select the stack (pulumi stack select <name>) or "
    "name it: make smoke STACK=<name>\n"
    "  - the local stack: start make dev in another terminal, then make smoke LOCAL=1"
)


def choose_target(args: argparse.Namespace) -> Target:
    if args.local:
        return LocalTarget(args.dev_state)
    if args.stack:
        return CloudTarget(args.stack)
    dev = running_dev_stack(args.dev_state)
    if shutil.which("pulumi") is None:
        if dev is not None:
            print(
                f"No Pulumi CLI here, so no deployed stack to check; make dev is running "
                f"(pid {dev.pid}): checking it (make smoke LOCAL=1 does so directly).",
                flush=True,
            )
            return LocalTarget(args.dev_state)
        raise SetupError(
            "nothing to check: there is no Pulumi CLI here, and make dev is not running. "
            "Either:\n" + BOTH_WAYS
        )
    try:
        name = selected_stack()
    except ToolFailedError as exc:
        if dev is not None:
            print(
                f"No Pulumi stack is selected ({exc.message}); make dev is running (pid "
                f"{dev.pid}): checking it.",
                flush=True,
            )
            return LocalTarget(args.dev_state)
        raise SetupError(
            f"no Pulumi stack is selected ({exc.message}). Either:\n" + BOTH_WAYS
        ) from None
    return CloudTarget(None, selected=name)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="make smoke",
        description="Smoke-test the deployed stack (the selected Pulumi stack, or --stack), "
        "or with --local the running make dev. Changes nothing, pushes nothing to WeChat.",
    )
    parser.add_argument("--stack", help="the Pulumi stack (make smoke STACK=<name>)")
    parser.add_argument(
        "--local", action="store_true", help="check the running make dev (make smoke LOCAL=1)"
    )
    parser.add_argument(
        "--dev-state",
        type=Path,
        default=default_dev_state_path(),
        help="make dev's state file (default: $DEV_LOG_DIR or .dev, then stack.json)",
    )
    return parser.parse_args(argv)


def run(target: Target) -> int:
    print(target.title, flush=True)
    results: list[Result] = []
    for result in target.checks():
        print(result.line(), flush=True)
        results.append(result)
    counts = {status: sum(r.status == status for r in results) for status in ("PASS", "WARN")}
    failures = sum(r.status == "FAIL" for r in results)
    print(f"{counts['PASS']} passed, {counts['WARN']} warned, {failures} failed", flush=True)
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(choose_target(args))
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
