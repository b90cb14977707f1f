"""The stack's configuration, read once and checked all at once.

``parse_config`` is pure (a mapping of raw values in, a frozen ``GatewayConfig`` out), so
bad-config tests need no Pulumi runtime; ``read_config`` is the thin reader over Pulumi.
Every problem names its key and the command that fixes it; no message carries a secret value.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import pulumi
import pulumi.runtime.config as runtime_config

from service.config import NUMERIC_SETTINGS
from service.routes import RouteError, parse_routes
from service.wechat.accounts import APPID_PATTERN

PROJECT = "wechat-component-gateway"
EXAMPLE_APPID = "wx0123456789abcdef"

APPID = APPID_PATTERN
# Letters, digits and inner hyphens, starting with a letter: valid as the start of every
# derived name (service accounts, Cloud Run services, Artifact Registry repositories).
NAME_PREFIX = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
NAME_PREFIX_MAX = 14  # "<prefix>-scheduler" must fit the 30-character service account id
PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
LOCATION = re.compile(r"^[a-z][a-z0-9-]*[0-9]$")
DATABASE_ID = re.compile(r"^[a-z][a-z0-9-]{2,61}[a-z0-9]$")
HOST_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# An IAM member of one identity with an email: the internal service matches the email in the
# caller's ID token, so a group, a domain or a principal set can never be let in by it.
IAM_MEMBER = re.compile(r"^(serviceAccount|user):([^@\s,:]+@[^@\s,:]+\.[^@\s,:]+)$")
UNMATCHABLE_MEMBER = re.compile(r"^(group|domain|principal|principalSet)[:/]")
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
EXAMPLE_INVOKER = "serviceAccount:orders@<project>.iam.gserviceaccount.com"
EXAMPLE_OPERATOR = "ops@example.com"
# What the service takes in CONSOLE_OPERATORS (a comma-separated list): no comma or colon.
OPERATOR_EMAIL = re.compile(r"^[^@\s,:]+@[^@\s,:]+\.[^@\s,:]+$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,?-]+$")
# registry/path/name followed by a tag or a digest: a bare name would mean "latest".
IMAGE = re.compile(
    r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+(:[\w][\w.-]{0,127}|@sha256:[0-9a-f]{64})$"
)

InternalIngress = Literal["internal", "all"]


@dataclass(frozen=True)
class SecretKind:
    """One of a component's secrets: where it is configured and how the service reads it."""

    name: str  # the config key is "<appid>_<name>"
    service_key: str  # its key in the service's COMPONENT_VARS (its env var's name)
    required: bool
    pattern: re.Pattern[str]
    rule: str  # what the pattern means, for error messages
    example: str  # what to put in the command of an error message

    @property
    def id_suffix(self) -> str:
        return self.name.replace("_", "-")

    def key(self, appid: str) -> str:
        return f"{appid}_{self.name}"


APPSECRET = SecretKind(
    "appsecret",
    "secret",
    True,
    re.compile(r"^\S+$"),
    "non-empty, without spaces",
    "<AppSecret>",
)
TOKEN = SecretKind(
    "token",
    "token",
    True,
    re.compile(r"^[A-Za-z0-9]{3,32}$"),
    "3 to 32 letters or digits (the open platform console's rule)",
    "<message verification Token>",
)
ENCODING_AES_KEY = SecretKind(
    "encoding_aes_key",
    "encoding_aes_key",
    True,
    re.compile(r"^[A-Za-z0-9]{43}$"),
    "exactly 43 letters or digits",
    "<EncodingAESKey>",
)
PREVIOUS_ENCODING_AES_KEY = SecretKind(
    "previous_encoding_aes_key",
    "previous_encoding_aes_key",
    False,
    ENCODING_AES_KEY.pattern,
    ENCODING_AES_KEY.rule,
    "<previous EncodingAESKey>",
)
SECRET_KINDS: tuple[SecretKind, ...] = (
    APPSECRET,
    TOKEN,
    ENCODING_AES_KEY,
    PREVIOUS_ENCODING_AES_KEY,
)

# Plain (non-secret) keys of this project's namespace, with the defaults the README shows.
PLAIN_KEYS = (
    "image",
    "components",
    "public_domain",
    "authorize_rate_limit",
    "refresh_schedule",
    "min_instances",
    "internal_min_instances",
    "max_instances",
    "workers",
    "threads",
    "firestore_import",
    "internal_ingress",
    "internal_invokers",
    "console_operators",
    "alert_email",
    "firestore_location",
    "firestore_database",
    "name_prefix",
    "message_routes",
    "message_subscriptions",
    "group_open_appid",
    "sweep_max_instances",
    "sweep_concurrency",
    "sweep_shard_size",
    "sweep_ack_deadline",
)
DEFAULT_SCHEDULE = "*/5 * * * *"
# The public service keeps one instance warm: WeChat waits 5 s for a push's answer, and a
# cold start with Direct VPC egress can take longer. The internal one may start cold.
DEFAULT_MIN_INSTANCES = 1
DEFAULT_INTERNAL_MIN_INSTANCES = 0
DEFAULT_MAX_INSTANCES = 10
MAX_INSTANCES_LIMIT = 1000
# gunicorn's processes and threads per instance; Cloud Run's request concurrency is their
# product, so an instance is never sent more requests than it has threads to serve.
DEFAULT_WORKERS = 1
DEFAULT_THREADS = 8
# One worker per CPU, and Cloud Run offers whole CPUs in these counts.
WORKER_COUNTS = (1, 2, 4, 6, 8)
MAX_CONCURRENCY = 1000  # Cloud Run's limit on requests per instance
DEFAULT_DATABASE = "(default)"
# Cloud Armor's per-client-IP limit on the merchant's pages (with public_domain), a minute.
# A merchant's whole flow is a handful of requests, but many users in China share one
# address behind carrier NAT: 120 lets a few dozen merchants behind one address authorize
# in the same minute, and still stops one address from flooding every instance at once.
DEFAULT_AUTHORIZE_RATE_LIMIT = 120
AUTHORIZE_RATE_LIMIT_MAX = 1_000_000  # Cloud Armor's largest throttle count

# The fan-out sweep (infra/sweep_queue.py): the scheduler's sweep publishes the due
# authorizers in shards to `<prefix>-refresh-shards`, which Pub/Sub pushes to the internal
# service's /tasks/refresh-shard, one shard a request.
# Authorizers a shard holds (SWEEP_SHARD_SIZE); each process renews SWEEP_CONCURRENCY at a
# time, over all the shards it handles: the service's own defaults and bounds.
_SERVICE_BOUNDS = {bound.name: bound for bound in NUMERIC_SETTINGS}
DEFAULT_SWEEP_SHARD_SIZE = int(_SERVICE_BOUNDS["SWEEP_SHARD_SIZE"].default)
SWEEP_SHARD_SIZE_MAX = int(_SERVICE_BOUNDS["SWEEP_SHARD_SIZE"].high)
DEFAULT_SWEEP_CONCURRENCY = int(_SERVICE_BOUNDS["SWEEP_CONCURRENCY"].default)
SWEEP_CONCURRENCY_MAX = int(_SERVICE_BOUNDS["SWEEP_CONCURRENCY"].high)
# Seconds a shard's push may take before Pub/Sub delivers it again (Pub/Sub's ceiling is
# 600 s): 200 authorizers at 16 at a time and WeChat's 50-200 ms take 1-3 s, so 600 s is a
# stalled instance's, never a slow WeChat's. A shard delivered twice is harmless: each
# authorizer's lease (service/leases.py) lets one refresher act.
DEFAULT_SWEEP_ACK_DEADLINE = 600
SWEEP_ACK_DEADLINE_MIN = 10
SWEEP_ACK_DEADLINE_MAX = 600

# Pub/Sub delivery (message_routes, message_subscriptions).
# Each route topic gets "<topic>-dead-letter" (a topic and the subscription that keeps its
# messages), so no route topic or subscription may end in it, and topic ids (at most 255
# characters, Google's rule) must leave room for it.
DEAD_LETTER_SUFFIX = "-dead-letter"
PUBSUB_ID_MAX = 255
# Google's rule for subscription ids (topic ids are checked by service.routes): a letter
# first, then letters, digits and - _ . ~ + %, 3 to 255 characters, not starting with goog.
SUBSCRIPTION_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.~+%-]{2,254}$")
SUBSCRIPTION_KEYS = (
    "name",
    "topic",
    "push_endpoint",
    "audience",
    "filter",
    "max_delivery_attempts",
    "minimum_backoff",
    "maximum_backoff",
    "ack_deadline",
)
FILTER_MAX_BYTES = 256  # Pub/Sub's limit on a subscription filter
EXAMPLE_TOPIC = "wechat-messages"
EXAMPLE_ENDPOINT = "https://orders.example.com/wechat/messages"
# The example value shown in a route error's command, by the field the error names.
ROUTE_FIELD_EXAMPLES = {
    "name": "all",
    "match": "<value>",
    "pubsub": EXAMPLE_TOPIC,
    "reply": "https://bot.example.com/wechat",
    "deadline": "4",
}


class ConfigError(pulumi.RunError):
    """Bad stack configuration. Pulumi prints a RunError's message alone, without a traceback."""

    def __init__(self, problems: Collection[str]) -> None:
        self.problems = tuple(problems)
        count = f"{len(self.problems)} problem" + ("s" if len(self.problems) > 1 else "")
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"the stack's configuration has {count}:\n{lines}")


@dataclass(frozen=True)
class ComponentConfig:
    """One third-party platform (component): its appid and its secrets by ``SecretKind.name``."""

    appid: str
    secrets: Mapping[str, str] = field(repr=False)

    def secret(self, kind: SecretKind) -> str | None:
        return self.secrets.get(kind.name)


@dataclass(frozen=True)
class MessageSubscription:
    """A push subscription on a route topic: Pub/Sub delivers each message to the endpoint,
    with an ID token of the subscription's own service account, retrying with backoff and
    dead-lettering after ``max_delivery_attempts``."""

    name: str  # the subscription id
    topic: str  # a topic id some pubsub route names
    push_endpoint: str  # https
    audience: str  # of the push's ID token; defaults to the endpoint
    filter: str | None = None  # on the message attributes; fixed once the subscription exists
    max_delivery_attempts: int = 10  # 5..100 (Pub/Sub's bounds)
    minimum_backoff: int = 10  # seconds, 0..600
    maximum_backoff: int = 600  # seconds, 0..600
    ack_deadline: int = 30  # seconds the endpoint has to answer, 10..600


# (key, default, lowest, highest) of a subscription's whole-number settings.
SUBSCRIPTION_NUMBERS = (
    ("max_delivery_attempts", 10, 5, 100),
    ("minimum_backoff", 10, 0, 600),
    ("maximum_backoff", 600, 0, 600),
    ("ack_deadline", 30, 10, 600),
)


@dataclass(frozen=True)
class GatewayConfig:
    project: str
    region: str
    name_prefix: str
    components: tuple[ComponentConfig, ...]
    firestore_location: str  # defaults to the region
    image: str | None = None
    public_domain: str | None = None
    authorize_rate_limit: int = DEFAULT_AUTHORIZE_RATE_LIMIT
    refresh_schedule: str = DEFAULT_SCHEDULE
    min_instances: int = DEFAULT_MIN_INSTANCES  # of the public service
    max_instances: int = DEFAULT_MAX_INSTANCES
    internal_min_instances: int = DEFAULT_INTERNAL_MIN_INSTANCES
    workers: int = DEFAULT_WORKERS
    threads: int = DEFAULT_THREADS
    # Adopt an existing Firestore database (left behind by an earlier stack) into this one.
    firestore_import: bool = False
    internal_ingress: InternalIngress = "internal"
    # IAM members allowed to call the internal service (the provider's own services):
    # serviceAccount:<email> or user:<email>.
    internal_invokers: tuple[str, ...] = ()
    # Who may open /console through `gcloud run services proxy` (emails, lower case):
    # CONSOLE_OPERATORS on the internal service, and each an invoker of it.
    console_operators: tuple[str, ...] = ()
    alert_email: str | None = None
    firestore_database: str = DEFAULT_DATABASE
    # MESSAGE_ROUTES, exactly as the public service reads it (JSON); None: no routes.
    message_routes: str | None = None
    # The topic ids the pubsub routes name, in order: created in the stack's project.
    message_topics: tuple[str, ...] = ()
    message_subscriptions: tuple[MessageSubscription, ...] = ()
    # Scene 2: the open platform account all the group's accounts belong to
    # (GROUP_OPEN_APPID on the internal service); None: no group.
    group_open_appid: str | None = None
    # The fan-out sweep: the internal service's instance ceiling (the sweep's fleet),
    # SWEEP_CONCURRENCY, SWEEP_SHARD_SIZE and the shard subscription's ack deadline.
    sweep_max_instances: int = DEFAULT_MAX_INSTANCES
    sweep_concurrency: int = DEFAULT_SWEEP_CONCURRENCY
    sweep_shard_size: int = DEFAULT_SWEEP_SHARD_SIZE
    sweep_ack_deadline: int = DEFAULT_SWEEP_ACK_DEADLINE

    @property
    def concurrency(self) -> int:
        """Requests Cloud Run sends one instance at a time: one per gunicorn thread."""
        return self.workers * self.threads

    @property
    def appids(self) -> tuple[str, ...]:
        return tuple(component.appid for component in self.components)

    @property
    def invoker_emails(self) -> tuple[str, ...]:
        """The emails of ``internal_invokers``: what their ID tokens' email claim says."""
        return tuple(member.partition(":")[2] for member in self.internal_invokers)


def full_key(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"


class _Problems:
    """Collects every problem, so one `pulumi up` reports all of them."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def missing(self, key: str, command: str) -> None:
        self.lines.append(f"missing config '{full_key(key)}': set it with  {command}")

    def invalid(self, key: str, why: str, command: str) -> None:
        self.lines.append(f"invalid config '{full_key(key)}': {why}; set it with  {command}")

    def other(self, line: str) -> None:
        self.lines.append(line)


def _set(key: str, example: str, *, secret: bool = False, path: bool = False) -> str:
    """The command that sets ``key``; placeholders are quoted so a pasted command is safe."""
    flags = (" --secret" if secret else "") + (" --path" if path else "")
    key = f"'{key}'" if "[" in key else key
    value = f"'{example}'" if example.startswith("<") else example
    return f"pulumi config set{flags} {key} {value}"


def _text(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(full_key(key))
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def parse_config(raw: Mapping[str, Any], secret_keys: Collection[str], stack: str) -> GatewayConfig:
    """The checked configuration of ``stack``; raises ConfigError listing every problem.

    ``raw`` maps full keys ("gcp:project", "wechat-component-gateway:components") to the
    values Pulumi holds (strings; lists as JSON). ``secret_keys`` are those set with --secret.
    """
    problems = _Problems()
    secret = {full_key(key) for key in secret_keys}

    project = _text(raw, "gcp:project")
    if project is None:
        problems.missing("gcp:project", _set("gcp:project", "<your-project-id>"))
    elif not PROJECT_ID.match(project):
        problems.invalid(
            "gcp:project",
            f"{project!r} is not a project ID (6-30 lowercase letters, digits, hyphens)",
            _set("gcp:project", "<your-project-id>"),
        )
    region = _text(raw, "gcp:region")
    if region is None:
        problems.missing("gcp:region", _set("gcp:region", "asia-east2"))
    elif not REGION.match(region):
        problems.invalid(
            "gcp:region",
            f"{region!r} is not a region like asia-east2",
            _set("gcp:region", "asia-east2"),
        )

    components = _components(raw, secret, problems)
    _unknown_keys(raw, problems)

    image = _text(raw, "image")
    if image is not None and not IMAGE.match(image):
        problems.invalid(
            "image",
            f"{image!r} is not a full image reference with a tag or digest",
            _set("image", "asia-east2-docker.pkg.dev/<project>/<repository>/gateway:<tag>"),
        )

    public_domain = _text(raw, "public_domain")
    domain_problem = None if public_domain is None else _domain_problem(public_domain)
    if domain_problem is not None:
        problems.invalid(
            "public_domain",
            f"{public_domain!r} {domain_problem}",
            _set("public_domain", "auth.example.com"),
        )
    authorize_rate_limit = _integer(
        raw, "authorize_rate_limit", DEFAULT_AUTHORIZE_RATE_LIMIT, problems
    )
    if authorize_rate_limit is not None and not (
        1 <= authorize_rate_limit <= AUTHORIZE_RATE_LIMIT_MAX
    ):
        problems.invalid(
            "authorize_rate_limit",
            f"must be from 1 to {AUTHORIZE_RATE_LIMIT_MAX} requests a minute per client IP "
            f"(Cloud Armor's range), got {authorize_rate_limit}",
            _set("authorize_rate_limit", str(DEFAULT_AUTHORIZE_RATE_LIMIT)),
        )

    schedule = _text(raw, "refresh_schedule") or DEFAULT_SCHEDULE
    fields_ = schedule.split()
    if len(fields_) != 5 or not all(CRON_FIELD.match(f) for f in fields_):
        problems.invalid(
            "refresh_schedule",
            f"{schedule!r} is not a cron schedule of 5 space-separated fields",
            _set("refresh_schedule", f"'{DEFAULT_SCHEDULE}'"),
        )

    min_instances = _integer(raw, "min_instances", DEFAULT_MIN_INSTANCES, problems)
    max_instances = _integer(raw, "max_instances", DEFAULT_MAX_INSTANCES, problems)
    if max_instances is not None and not 1 <= max_instances <= MAX_INSTANCES_LIMIT:
        problems.invalid(
            "max_instances",
            f"must be from 1 to {MAX_INSTANCES_LIMIT}, got {max_instances}",
            _set("max_instances", str(DEFAULT_MAX_INSTANCES)),
        )
    internal_min = _integer(raw, "internal_min_instances", DEFAULT_INTERNAL_MIN_INSTANCES, problems)
    # The internal service's ceiling: the fleet the fan-out sweep may spread over.
    sweep_max = _bounded(
        raw,
        "sweep_max_instances",
        max_instances or DEFAULT_MAX_INSTANCES,
        1,
        MAX_INSTANCES_LIMIT,
        "the internal service's instances",
        problems,
    )
    for key, least, most, most_key in (
        ("min_instances", min_instances, max_instances, "max_instances"),
        ("internal_min_instances", internal_min, sweep_max, "sweep_max_instances"),
    ):
        if least is not None and least < 0:
            problems.invalid(key, f"must not be negative, got {least}", _set(key, "0"))
        elif least is not None and most is not None and least > most:
            problems.invalid(key, f"{least} is more than {most_key} ({most})", _set(key, str(most)))
    sweep_concurrency = _bounded(
        raw,
        "sweep_concurrency",
        DEFAULT_SWEEP_CONCURRENCY,
        1,
        SWEEP_CONCURRENCY_MAX,
        "authorizers an instance renews at a time (SWEEP_CONCURRENCY)",
        problems,
    )
    sweep_shard_size = _bounded(
        raw,
        "sweep_shard_size",
        DEFAULT_SWEEP_SHARD_SIZE,
        1,
        SWEEP_SHARD_SIZE_MAX,
        "authorizers a shard holds (SWEEP_SHARD_SIZE)",
        problems,
    )
    sweep_ack_deadline = _bounded(
        raw,
        "sweep_ack_deadline",
        DEFAULT_SWEEP_ACK_DEADLINE,
        SWEEP_ACK_DEADLINE_MIN,
        SWEEP_ACK_DEADLINE_MAX,
        "seconds a shard's push may take before Pub/Sub delivers it again (Pub/Sub's range)",
        problems,
    )

    workers = _integer(raw, "workers", DEFAULT_WORKERS, problems)
    threads = _integer(raw, "threads", DEFAULT_THREADS, problems)
    if workers is not None and workers not in WORKER_COUNTS:
        problems.invalid(
            "workers",
            f"must be one of {', '.join(map(str, WORKER_COUNTS))} (gunicorn processes per "
            f"instance, one per CPU, as Cloud Run offers CPUs), got {workers}",
            _set("workers", str(DEFAULT_WORKERS)),
        )
        workers = None
    if threads is not None and threads < 1:
        problems.invalid(
            "threads", f"must be at least 1, got {threads}", _set("threads", str(DEFAULT_THREADS))
        )
        threads = None
    if workers is not None and threads is not None and workers * threads > MAX_CONCURRENCY:
        problems.invalid(
            "threads",
            f"workers x threads ({workers} x {threads}) is Cloud Run's request concurrency, "
            f"at most {MAX_CONCURRENCY}",
            _set("threads", str(MAX_CONCURRENCY // workers)),
        )

    firestore_import = (_text(raw, "firestore_import") or "false").lower()  # YAML: True
    if firestore_import not in ("true", "false"):
        problems.invalid(
            "firestore_import",
            f"{firestore_import!r} is neither true nor false",
            _set("firestore_import", "true"),
        )

    ingress = _text(raw, "internal_ingress") or "internal"
    if ingress not in ("internal", "all"):
        problems.invalid(
            "internal_ingress",
            f"{ingress!r} is neither 'internal' nor 'all'",
            _set("internal_ingress", "internal"),
        )

    invokers = _internal_invokers(raw, problems)
    operators = _console_operators(raw, problems)

    alert_email = _text(raw, "alert_email")
    if alert_email is not None and not EMAIL.match(alert_email):
        problems.invalid(
            "alert_email",
            f"{alert_email!r} is not an email address",
            _set("alert_email", "ops@example.com"),
        )

    location = _text(raw, "firestore_location")
    if location is not None and not LOCATION.match(location):
        problems.invalid(
            "firestore_location",
            f"{location!r} is not a Firestore location like asia-east2 or nam5",
            _set("firestore_location", "asia-east2"),
        )
    database = _text(raw, "firestore_database") or DEFAULT_DATABASE
    if database != DEFAULT_DATABASE and not DATABASE_ID.match(database):
        problems.invalid(
            "firestore_database",
            f"{database!r} is not '(default)' or a database ID (4-63 lowercase letters, "
            "digits, hyphens)",
            _set("firestore_database", "gateway"),
        )

    message_routes, message_topics = _message_routes(raw, project, problems)
    subscriptions = _message_subscriptions(raw, message_topics, problems)
    message_topics = message_topics or ()

    group_open_appid = _text(raw, "group_open_appid")
    if group_open_appid is not None and not APPID.match(group_open_appid):
        problems.invalid(
            "group_open_appid",
            f"{group_open_appid!r} is not an open platform account's appid ('wx' and 16 hex "
            "digits, as open/create answered it)",
            _set("group_open_appid", EXAMPLE_APPID),
        )

    name_prefix = _text(raw, "name_prefix") or f"wcg-{stack}"
    if not NAME_PREFIX.match(name_prefix) or len(name_prefix) > NAME_PREFIX_MAX:
        origin = "" if _text(raw, "name_prefix") else f" (the default for stack {stack!r})"
        problems.invalid(
            "name_prefix",
            f"{name_prefix!r}{origin} must be at most {NAME_PREFIX_MAX} lowercase letters, "
            "digits or inner hyphens, starting with a letter",
            _set("name_prefix", "wcg-prod"),
        )

    if problems.lines:
        raise ConfigError(problems.lines)
    assert project and region and min_instances is not None and max_instances is not None
    assert internal_min is not None and workers is not None and threads is not None
    assert sweep_max is not None and sweep_concurrency is not None
    assert sweep_shard_size is not None and sweep_ack_deadline is not None
    return GatewayConfig(
        project=project,
        region=region,
        name_prefix=name_prefix,
        components=components,
        image=image,
        public_domain=public_domain,
        authorize_rate_limit=authorize_rate_limit or DEFAULT_AUTHORIZE_RATE_LIMIT,
        refresh_schedule=" ".join(fields_),
        min_instances=min_instances,
        max_instances=max_instances,
        internal_min_instances=internal_min,
        workers=workers,
        threads=threads,
        firestore_import=firestore_import == "true",
        internal_ingress="all" if ingress == "all" else "internal",
        internal_invokers=invokers,
        console_operators=operators,
        alert_email=alert_email,
        firestore_location=location or region,
        firestore_database=database,
        message_routes=message_routes,
        message_topics=message_topics,
        message_subscriptions=subscriptions,
        group_open_appid=group_open_appid,
        sweep_max_instances=sweep_max,
        sweep_concurrency=sweep_concurrency,
        sweep_shard_size=sweep_shard_size,
        sweep_ack_deadline=sweep_ack_deadline,
    )


def _raw_list(raw: Mapping[str, Any], key: str) -> Any:
    """A list value decoded from JSON; a string that is not JSON is left as it is."""
    value = raw.get(full_key(key))
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _components(
    raw: Mapping[str, Any], secret: Collection[str], problems: _Problems
) -> tuple[ComponentConfig, ...]:
    example = _set("components[0]", EXAMPLE_APPID, path=True)
    value = _raw_list(raw, "components")
    if value is None or value == [] or value == "":
        problems.missing("components", example)
        return ()
    if not isinstance(value, list):
        problems.invalid("components", "must be a list of component appids", example)
        return ()

    appids: list[str] = []
    for index, appid in enumerate(value):
        if not isinstance(appid, str) or not APPID.match(appid):
            problems.invalid(
                f"components[{index}]",
                f"{appid!r} is not an appid ('wx' and 16 lowercase hex digits)",
                _set(f"components[{index}]", EXAMPLE_APPID, path=True),
            )
        elif appid in appids:
            problems.other(
                f"invalid config '{full_key(f'components[{index}]')}': {appid} is listed "
                f"twice; remove it with  pulumi config rm --path 'components[{index}]'  or set "
                f"another appid with  {_set(f'components[{index}]', EXAMPLE_APPID, path=True)}"
            )
        else:
            appids.append(appid)
    return tuple(
        ComponentConfig(appid, _component_secrets(raw, secret, appid, problems)) for appid in appids
    )


def _component_secrets(
    raw: Mapping[str, Any], secret: Collection[str], appid: str, problems: _Problems
) -> dict[str, str]:
    values: dict[str, str] = {}
    for kind in SECRET_KINDS:
        key = kind.key(appid)
        command = _set(key, kind.example, secret=True)
        value = raw.get(full_key(key))
        if value is None or value == "":
            if kind.required:
                problems.missing(key, command)
            continue
        if full_key(key) not in secret:
            # Never echo the value: it is a secret even if it was not stored as one.
            problems.other(
                f"config '{full_key(key)}' is in plain text: re-set it as a secret with  {command}"
            )
        elif not isinstance(value, str) or not kind.pattern.match(value):
            problems.invalid(key, f"must be {kind.rule} (value not shown)", command)
        else:
            values[kind.name] = value
    return values


def _unknown_keys(raw: Mapping[str, Any], problems: _Problems) -> None:
    """A typo in a key would otherwise silently fall back to a default (or drop an alert)."""
    listed = _raw_list(raw, "components")
    appids = [a for a in listed if isinstance(a, str)] if isinstance(listed, list) else []
    known = set(PLAIN_KEYS) | {kind.key(a) for a in appids for kind in SECRET_KINDS}
    for key in sorted(raw):
        namespace, _, name = key.partition(":")
        if namespace != PROJECT or name in known:
            continue
        appid, _, kind = name.partition("_")
        close = difflib.get_close_matches(name, sorted(known), n=1)
        if APPID.match(appid) and kind in {k.name for k in SECRET_KINDS}:
            hint = f" (component {appid} is not in 'components')"
        elif close:
            hint = f" (did you mean '{close[0]}'?)"
        else:
            hint = ""
        problems.other(f"unknown config '{key}'{hint}: remove it with  pulumi config rm {name}")


def _internal_invokers(raw: Mapping[str, Any], problems: _Problems) -> tuple[str, ...]:
    value = _raw_list(raw, "internal_invokers")
    if value is None or value == "" or value == []:
        return ()
    if not isinstance(value, list):
        problems.invalid(
            "internal_invokers",
            "must be a list of IAM members",
            _set("internal_invokers[0]", EXAMPLE_INVOKER, path=True),
        )
        return ()
    members: list[str] = []
    for index, member in enumerate(value):
        key = f"internal_invokers[{index}]"
        if member in PUBLIC_MEMBERS:
            problems.invalid(
                key,
                f"{member} would make the internal service (tokens, calls as the merchants) "
                "public; name your own services' accounts",
                _set(key, EXAMPLE_INVOKER, path=True),
            )
        elif isinstance(member, str) and UNMATCHABLE_MEMBER.match(member):
            problems.invalid(
                key,
                f"{member} cannot call: the internal service checks the email in each caller's "
                "ID token, which is a service account's or a user's, never a group's or a "
                "domain's; list each one as serviceAccount:<email> or user:<email>",
                _set(key, EXAMPLE_INVOKER, path=True),
            )
        elif not isinstance(member, str) or not IAM_MEMBER.match(member):
            problems.invalid(
                key,
                f"{member!r} is not an IAM member like serviceAccount:<email> or user:<email>",
                _set(key, EXAMPLE_INVOKER, path=True),
            )
        elif member not in members:
            members.append(member)
    return tuple(members)


def _console_operators(raw: Mapping[str, Any], problems: _Problems) -> tuple[str, ...]:
    value = _raw_list(raw, "console_operators")
    if value is None or value == "" or value == []:
        return ()
    example = _set("console_operators[0]", EXAMPLE_OPERATOR, path=True)
    if not isinstance(value, list):
        problems.invalid("console_operators", "must be a list of emails", example)
        return ()
    emails: list[str] = []
    for index, email in enumerate(value):
        key = f"console_operators[{index}]"
        if isinstance(email, str) and email.startswith(("user:", "serviceAccount:")):
            problems.invalid(
                key,
                f"{email} is an IAM member; list the operator's email alone (the console "
                "compares it with the email in their ID token)",
                _set(key, email.partition(":")[2] or EXAMPLE_OPERATOR, path=True),
            )
        elif not isinstance(email, str) or not OPERATOR_EMAIL.match(email):
            problems.invalid(key, f"{email!r} is not an email address", example)
        elif email.lower() not in emails:
            emails.append(email.lower())
    return tuple(emails)


def operator_member(email: str) -> str:
    """The IAM member of an operator's email (a user's, or a service account's)."""
    kind = "serviceAccount" if email.endswith(".gserviceaccount.com") else "user"
    return f"{kind}:{email}"


def _message_routes(
    raw: Mapping[str, Any], project: str | None, problems: _Problems
) -> tuple[str | None, tuple[str, ...] | None]:
    """MESSAGE_ROUTES for the service, checked by the service's own parser, and the topic ids
    its pubsub routes name (this program creates them, in the stack's project only). The
    topics are None when a bad route leaves them unknown."""
    value = _raw_list(raw, "message_routes")
    if value is None or value == "" or value == []:
        return None, ()
    if not isinstance(value, list):
        problems.invalid(
            "message_routes",
            "must be a list of routes ({name, match?, pubsub: <topic> | reply: <https URL>, "
            "deadline?}, as the service's MESSAGE_ROUTES)",
            _set("message_routes[0].pubsub", EXAMPLE_TOPIC, path=True),
        )
        return None, None
    count = len(problems.lines)
    topics: list[str] = []
    for index, item in enumerate(value):
        key = f"message_routes[{index}]"
        try:
            # One at a time, so every bad route is reported (the parser stops at the first).
            (route,) = parse_routes(json.dumps([item]))
        except RouteError as exc:
            _route_problem(key, index, item, exc, problems)
            continue
        if route.reply is not None and urlsplit(route.reply).scheme != "https":
            # The service allows http on localhost, which means nothing on Cloud Run.
            problems.invalid(
                key,
                f"route {route.name!r}: 'reply' must be https in the cloud, got {route.reply!r}",
                _set(f"{key}.reply", ROUTE_FIELD_EXAMPLES["reply"], path=True),
            )
        if route.pubsub is not None:
            topic = _route_topic(f"{key}.pubsub", route.name, route.pubsub, project, problems)
            if topic is not None and topic not in topics:
                topics.append(topic)
    if len(problems.lines) > count:
        return None, None
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        parse_routes(text)  # what only the whole list can show: a name twice
    except RouteError as exc:
        names = [item["name"] for item in value]
        twice = next(i for i, name in enumerate(names) if name in names[:i])
        key = f"message_routes[{twice}]"
        problems.invalid(key, str(exc), _set(f"{key}.name", "<another name>", path=True))
        return None, None
    return text, tuple(topics)


def _route_topic(
    key: str, route: str, pubsub: str, project: str | None, problems: _Problems
) -> str | None:
    """The topic id a pubsub route names, if this program can create it."""
    topic = pubsub
    if pubsub.startswith("projects/"):
        _, path_project, _, topic = pubsub.split("/", 3)
        if project is not None and path_project != project:
            problems.invalid(
                key,
                f"route {route!r} publishes to {pubsub}, outside the stack's project "
                f"{project}: this program creates and grants only topics of its own project, "
                "so name the topic by its id alone",
                _set(key, EXAMPLE_TOPIC, path=True),
            )
            return None
    if topic.endswith(DEAD_LETTER_SUFFIX):
        why = f"topic ids ending in {DEAD_LETTER_SUFFIX!r} are kept for the dead-letter topics"
    elif len(topic) + len(DEAD_LETTER_SUFFIX) > PUBSUB_ID_MAX:
        why = (
            f"the topic id must be at most {PUBSUB_ID_MAX - len(DEAD_LETTER_SUFFIX)} "
            f"characters, so that its '{DEAD_LETTER_SUFFIX}' topic fits Pub/Sub's "
            f"{PUBSUB_ID_MAX}"
        )
    else:
        return topic
    problems.invalid(key, f"route {route!r}: {why}", _set(key, EXAMPLE_TOPIC, path=True))
    return None


def _route_problem(key: str, index: int, item: Any, exc: RouteError, problems: _Problems) -> None:
    why = _route_error(exc, index)
    extra = _route_extra_field(item, str(exc))
    if extra is None:
        problems.invalid(key, why, _route_fix(key, str(exc)))
    else:  # a field to take away, not to set
        problems.other(
            f"invalid config '{full_key(key)}': {why}; remove it with  "
            f"pulumi config rm --path '{key}.{extra}'"
        )


def _route_error(exc: RouteError, index: int) -> str:
    """The service's text; 'route 0' (this route alone, as parsed) is the key's index."""
    return str(exc).removeprefix("route 0: ") if index else str(exc)


def _route_extra_field(item: Any, error: str) -> str | None:
    """The field a route error says does not belong (an unknown key, a pubsub deadline)."""
    if not isinstance(item, dict):
        return None
    if "unknown keys" in error and "'match'" not in error:
        return str(min(set(item) - {"name", "match", "pubsub", "reply", "deadline"}))
    if "'deadline' is for 'reply' routes only" in error:
        return "deadline"
    return None


def _route_fix(key: str, error: str) -> str:
    """The command for the field the service's error names, else the route's pubsub."""
    if "match.source" in error:  # a reply route must be for the message URL alone
        return _set(f"{key}.match.source", "messages", path=True)
    for name in ("deadline", "reply", "pubsub", "name"):
        if f"'{name}'" in error:
            return _set(f"{key}.{name}", ROUTE_FIELD_EXAMPLES[name], path=True)
    if "match" in error:
        return _set(f"{key}.match.msg_type", "text", path=True)
    return _set(f"{key}.pubsub", EXAMPLE_TOPIC, path=True)


def _message_subscriptions(
    raw: Mapping[str, Any], topics: tuple[str, ...] | None, problems: _Problems
) -> tuple[MessageSubscription, ...]:
    """The push subscriptions; ``topics`` None (bad routes) skips the check of their topics."""
    value = _raw_list(raw, "message_subscriptions")
    if value is None or value == "" or value == []:
        return ()
    example = _set("message_subscriptions[0].push_endpoint", EXAMPLE_ENDPOINT, path=True)
    if not isinstance(value, list):
        problems.invalid(
            "message_subscriptions",
            "must be a list of {name, topic, push_endpoint, ...}",
            example,
        )
        return ()
    subscriptions: list[MessageSubscription] = []
    names: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            key = f"message_subscriptions[{index}]"
            problems.invalid(
                key,
                "must be a {name, topic, push_endpoint, ...} object",
                _set(f"{key}.push_endpoint", EXAMPLE_ENDPOINT, path=True),
            )
            continue
        subscription = _message_subscription(
            f"message_subscriptions[{index}]", item, topics, names, problems
        )
        if subscription is not None:
            subscriptions.append(subscription)
    return tuple(subscriptions)


def _message_subscription(
    key: str,
    item: Mapping[str, Any],
    topics: tuple[str, ...] | None,
    names: list[str],
    problems: _Problems,
) -> MessageSubscription | None:
    """One subscription, or None after reporting its problems; appends its name to names."""
    ok = True

    def bad(field_: str, why: str, value_: str) -> None:
        nonlocal ok
        ok = False
        problems.invalid(f"{key}.{field_}", why, _set(f"{key}.{field_}", value_, path=True))

    for unknown in sorted(set(item) - set(SUBSCRIPTION_KEYS)):
        ok = False
        close = difflib.get_close_matches(unknown, SUBSCRIPTION_KEYS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        problems.other(
            f"unknown config '{full_key(f'{key}.{unknown}')}'{hint}: remove it with  "
            f"pulumi config rm --path '{key}.{unknown}'"
        )
    name = item.get("name")
    if not isinstance(name, str) or not SUBSCRIPTION_ID.match(name) or name.startswith("goog"):
        bad(
            "name",
            f"{name!r} is not a subscription id (3-255 letters, digits or - _ . ~ + %, "
            "starting with a letter, not 'goog')",
            "orders",
        )
    elif name.endswith(DEAD_LETTER_SUFFIX):
        bad("name", f"ids ending in {DEAD_LETTER_SUFFIX!r} are kept for dead letters", "orders")
    elif name in names:
        bad("name", f"{name!r} is the name of an earlier subscription", "<another name>")
    else:
        names.append(name)
    topic = item.get("topic")
    # With bad routes (topics None) which topics they name is not known: not checked.
    if topics is not None and topic not in topics:
        known = f"they name {', '.join(topics)}" if topics else "no route has 'pubsub'"
        bad(
            "topic",
            f"{topic!r} is not the topic of a pubsub route in message_routes ({known})",
            topics[0] if topics else EXAMPLE_TOPIC,
        )
    endpoint = item.get("push_endpoint")
    if isinstance(endpoint, str) and urlsplit(endpoint).username:
        # Never echoed: what stands before the @ may be a password.
        bad("push_endpoint", "must not carry user:password@ (value not shown)", EXAMPLE_ENDPOINT)
    elif not _is_https_url(endpoint):
        bad("push_endpoint", f"{endpoint!r} is not an https URL", EXAMPLE_ENDPOINT)
    audience = item.get("audience", endpoint)
    if not isinstance(audience, str) or not audience.strip():
        bad("audience", "must be a non-empty string (the ID token's aud)", EXAMPLE_ENDPOINT)
    filter_ = item.get("filter")
    if filter_ is not None and (
        not isinstance(filter_, str)
        or not filter_.strip()
        or len(filter_.encode()) > FILTER_MAX_BYTES
    ):
        bad(
            "filter",
            f"must be a Pub/Sub filter on message attributes of 1 to {FILTER_MAX_BYTES} bytes",
            "'attributes.msg_type = \"text\"'",
        )
    numbers: dict[str, int] = {}
    for number_key, default, low, high in SUBSCRIPTION_NUMBERS:
        number = _whole(item.get(number_key, default))
        if number is None or not low <= number <= high:
            bad(
                number_key,
                f"must be a whole number from {low} to {high}, got {item[number_key]!r}",
                str(default),
            )
        else:
            numbers[number_key] = number
    if numbers.get("minimum_backoff", 0) > numbers.get("maximum_backoff", 600):
        bad(
            "minimum_backoff",
            f"{numbers['minimum_backoff']} s is more than maximum_backoff "
            f"({numbers['maximum_backoff']} s)",
            str(numbers["maximum_backoff"]),
        )
    if not ok:
        return None
    return MessageSubscription(
        name=str(name),
        topic=str(topic),
        push_endpoint=str(endpoint),
        audience=str(audience),
        filter=filter_,
        **numbers,
    )


def _whole(value: Any) -> int | None:
    """A whole number from config: a YAML number, or digits (--path sets numbers as such)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        return int(value)
    return None


def _is_https_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme == "https" and bool(parts.hostname)


def _integer(raw: Mapping[str, Any], key: str, default: int, problems: _Problems) -> int | None:
    value = raw.get(full_key(key))
    if value is None or value == "":
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    problems.invalid(key, f"{text!r} is not a whole number", _set(key, str(default)))
    return None


def _bounded(
    raw: Mapping[str, Any],
    key: str,
    default: int,
    low: int,
    high: int,
    meaning: str,
    problems: _Problems,
) -> int | None:
    """A whole-number key from ``low`` to ``high``; None after reporting a problem."""
    value = _integer(raw, key, default, problems)
    if value is not None and not low <= value <= high:
        problems.invalid(
            key, f"must be from {low} to {high}: {meaning}, got {value}", _set(key, str(default))
        )
        return None
    return value


def _is_hostname(value: str) -> bool:
    labels = value.split(".")
    return len(value) <= 253 and len(labels) >= 2 and all(HOST_LABEL.match(x) for x in labels)


def _domain_problem(domain: str) -> str | None:
    """Why ``domain`` cannot be the public domain (after its quoted value), or None."""
    if "*" in domain:
        return (
            "is a wildcard: a Google-managed certificate covers named hosts only, so name "
            "the one host WeChat and the merchants will use"
        )
    if not _is_hostname(domain):
        return "is not a bare lowercase hostname (no scheme, path or port)"
    if domain.rsplit(".", 1)[-1].isdigit():
        return (
            "ends in a number, so it is an IP address or no domain at all: give a domain "
            "whose DNS A record you will point at the load balancer"
        )
    if domain == "run.app" or domain.endswith(".run.app"):
        return (
            "is a Cloud Run (run.app) host: Google controls run.app, not you, and the point "
            "of public_domain is a domain you control for the 授权发起页域名 and both push "
            "URLs (leave public_domain unset to use the run.app host)"
        )
    return None


def read_config() -> GatewayConfig:
    """The running stack's configuration, from Pulumi (set by `pulumi config set`)."""
    raw: dict[str, Any] = {}
    # Every key of this project's namespace (to catch typos) plus the two gcp keys we use.
    for key in _config_keys():
        if key.startswith(f"{PROJECT}:") or key in ("gcp:project", "gcp:region"):
            # get_config reads the raw value without pulumi.Config's warning on secrets.
            raw[key] = runtime_config.get_config(key)
    secret_keys = [key for key in raw if runtime_config.is_config_secret(key)]
    return parse_config(raw, secret_keys, pulumi.get_stack())


def _config_keys() -> set[str]:
    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    return keys | {"gcp:project", "gcp:region"}
