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

import pulumi
import pulumi.runtime.config as runtime_config

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
    "refresh_schedule",
    "min_instances",
    "max_instances",
    "internal_ingress",
    "internal_invokers",
    "alert_email",
    "firestore_location",
    "firestore_database",
    "name_prefix",
)
DEFAULT_SCHEDULE = "*/5 * * * *"
DEFAULT_MIN_INSTANCES = 0
DEFAULT_MAX_INSTANCES = 10
MAX_INSTANCES_LIMIT = 1000
DEFAULT_DATABASE = "(default)"


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
class GatewayConfig:
    project: str
    region: str
    name_prefix: str
    components: tuple[ComponentConfig, ...]
    firestore_location: str  # defaults to the region
    image: str | None = None
    public_domain: str | None = None
    refresh_schedule: str = DEFAULT_SCHEDULE
    min_instances: int = DEFAULT_MIN_INSTANCES
    max_instances: int = DEFAULT_MAX_INSTANCES
    internal_ingress: InternalIngress = "internal"
    # IAM members allowed to call the internal service (the provider's own services):
    # serviceAccount:<email> or user:<email>.
    internal_invokers: tuple[str, ...] = ()
    alert_email: str | None = None
    firestore_database: str = DEFAULT_DATABASE

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
    if public_domain is not None and not _is_hostname(public_domain):
        problems.invalid(
            "public_domain",
            f"{public_domain!r} is not a bare lowercase hostname (no scheme, path or port)",
            _set("public_domain", "auth.example.com"),
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
    if min_instances is not None and min_instances < 0:
        problems.invalid(
            "min_instances",
            f"must not be negative, got {min_instances}",
            _set("min_instances", "0"),
        )
    if min_instances is not None and max_instances is not None and min_instances > max_instances:
        problems.invalid(
            "min_instances",
            f"{min_instances} is more than max_instances ({max_instances})",
            _set("min_instances", str(max_instances)),
        )

    ingress = _text(raw, "internal_ingress") or "internal"
    if ingress not in ("internal", "all"):
        problems.invalid(
            "internal_ingress",
            f"{ingress!r} is neither 'internal' nor 'all'",
            _set("internal_ingress", "internal"),
        )

    invokers = _internal_invokers(raw, problems)

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
    return GatewayConfig(
        project=project,
        region=region,
        name_prefix=name_prefix,
        components=components,
        image=image,
        public_domain=public_domain,
        refresh_schedule=" ".join(fields_),
        min_instances=min_instances,
        max_instances=max_instances,
        internal_ingress="all" if ingress == "all" else "internal",
        internal_invokers=invokers,
        alert_email=alert_email,
        firestore_location=location or region,
        firestore_database=database,
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


def _is_hostname(value: str) -> bool:
    labels = value.split(".")
    return len(value) <= 253 and len(labels) >= 2 and all(HOST_LABEL.match(x) for x in labels)


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
