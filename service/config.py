"""Settings, read once from the environment into frozen dataclasses.

Errors name the variable and what is wrong, never the secret values themselves.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from service.routes import Route, RouteError, parse_routes
from service.wechat.accounts import APPID_PATTERN
from service.wechat.client import DEFAULT_API_BASE
from service.wechat.crypto import CryptoError, decode_aes_key
from service.wechat.links import DEFAULT_MP_BASE, DEFAULT_OPEN_BASE


class ConfigError(ValueError):
    pass


# SERVICE_ROLE: one image runs as two Cloud Run services. "public" serves WeChat's pushes and
# the merchant's pages; "internal" the token API, the proxy and the tasks; "all" both (local).
ROLES = ("all", "public", "internal")
# INTERNAL_AUTH: "api_key" checks SERVICE_API_KEYS; "cloud_run_iam" (the internal role only,
# which is never public) takes Google ID tokens: Cloud Run checks the caller's invoker role,
# and the service verifies the token again against INTERNAL_AUDIENCE and INTERNAL_INVOKERS.
INTERNAL_AUTHS = ("api_key", "cloud_run_iam")
# SWEEP_MODE: "inline" renews every due authorizer inside POST /tasks/refresh; "fanout"
# publishes them in shards to SWEEP_SHARD_TOPIC, pushed to /tasks/refresh-shard on any
# instance (service.sweep_shards).
SWEEP_MODES = ("inline", "fanout")
# Where Google publishes the certificates its ID tokens are signed with (key id to PEM).
DEFAULT_ID_TOKEN_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
# An email address, not an IAM member ("serviceAccount:<email>"): no colon, space or comma.
EMAIL = re.compile(r"^[^@\s,:]+@[^@\s,:]+\.[^@\s,:]+$")
# The per-component form of WECHAT_COMPONENTS: one environment variable per secret, as
# Secret Manager mounts them. {appid} is upper-cased in the variable's name.
COMPONENT_APPIDS_VAR = "WECHAT_COMPONENT_APPIDS"
COMPONENT_VARS = {
    "secret": "WECHAT_COMPONENT_{appid}_SECRET",
    "token": "WECHAT_COMPONENT_{appid}_TOKEN",
    "encoding_aes_key": "WECHAT_COMPONENT_{appid}_ENCODING_AES_KEY",
    "previous_encoding_aes_key": "WECHAT_COMPONENT_{appid}_PREVIOUS_ENCODING_AES_KEY",
}


@dataclass(frozen=True)
class Bound:
    """A numeric setting's environment variable, default and allowed range (inclusive)."""

    name: str
    default: float
    low: float
    high: float
    whole: bool = False  # a count rather than seconds

    @property
    def field(self) -> str:
        return self.name.lower()

    def rule(self) -> str:
        kind = "a whole number" if self.whole else "a number of seconds"
        return f"{kind} from {self.low:g} to {self.high:g}"


# Every numeric setting, finite and bounded by what it means. Only SWEEP_JITTER and
# MESSAGE_PUBLISH_MAX_LATENCY may be 0 (no jitter, no batching wait); a lease, a skew or a
# timeout of 0 would switch its check off. WeChat's tokens live 7200 s and a ticket 12 h;
# it pushes a ticket every 600 s.
NUMERIC_SETTINGS: tuple[Bound, ...] = (
    # Renew the component token this long before it expires: well inside its 7200 s.
    Bound("COMPONENT_TOKEN_REFRESH_MARGIN", 600, 60, 3600),
    # How long a refresher may hold a lease before another process takes over.
    Bound("REFRESH_LEASE_SECONDS", 30, 1, 600),
    # A ticket older than this (pushed every 600 s) makes the sweep ask for pushes again.
    Bound("TICKET_STALE_AFTER", 1200, 900, 43200),
    Bound("PUSH_TICKET_MIN_INTERVAL", 60, 10, 3600),
    # Pushes further than this from our clock are refused as replays.
    Bound("PUSH_MAX_CLOCK_SKEW", 300, 1, 3600),
    # A token handed out is valid at least this long; 7200 (its lifetime) renews every time.
    Bound("AUTHORIZER_TOKEN_MIN_TTL", 300, 1, 7200),
    # The sweep renews tokens expiring within the margin plus up to the jitter (< 7200 s).
    Bound("AUTHORIZER_TOKEN_REFRESH_MARGIN", 900, 60, 3600),
    Bound("SWEEP_JITTER", 300, 0, 1800),
    Bound("SWEEP_CONCURRENCY", 16, 1, 256, whole=True),
    # SWEEP_MODE=fanout: authorizers per shard message. 500 at 50 ms each over 16 threads is
    # about 2 s of WeChat time, far inside the push subscription's ack deadline (600 s).
    Bound("SWEEP_SHARD_SIZE", 200, 1, 500, whole=True),
    # How long a shard is worth retrying (5xx, redelivered); past it, it is acknowledged and
    # what is left is the next sweep's: below the refresh margin, so tokens stay valid.
    Bound("SWEEP_SHARD_DEADLINE", 600, 30, 3000),
    # The first pause after 45009, doubled while it repeats.
    Bound("QUOTA_BACKOFF", 300, 1, 3600),
    Bound("PROXY_TIMEOUT", 15, 1, 300),
    # How long a message waits for Pub/Sub's acknowledgement before it is answered 503 (WeChat
    # then tries again): inside WeChat's 5 s.
    Bound("MESSAGE_PUBLISH_DEADLINE", 3, 0.5, 4),
    # How long a message waits to share a publish request with others (the client's
    # batching max_latency); 0 sends each at once. make bench measures 0, 5 and 10 ms.
    Bound("MESSAGE_PUBLISH_MAX_LATENCY", 0.005, 0, 0.1),
    # The console's push log (service.console_pushlog): each process writes the ordinary
    # messages it kept as one document at most this often, and keeps at most this many.
    Bound("PUSH_LOG_FLUSH_INTERVAL", 60, 1, 3600),
    Bound("PUSH_LOG_MESSAGES", 500, 10, 500, whole=True),
)


@dataclass(frozen=True)
class ComponentConfig:
    """One third-party platform (component) and its secrets from the open platform console."""

    appid: str
    secret: str = field(repr=False)
    token: str = field(repr=False)
    encoding_aes_key: str = field(repr=False)
    previous_encoding_aes_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_json(cls, item: Any, where: str) -> ComponentConfig:
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: each component must be a JSON object")
        unknown = set(item) - {
            "appid",
            "secret",
            "token",
            "encoding_aes_key",
            "previous_encoding_aes_key",
        }
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
        values: dict[str, str] = {}
        for key in ("appid", "secret", "token", "encoding_aes_key"):
            value = item.get(key)
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}: {key!r} is required (a non-empty string)")
            values[key] = value
        appid = values["appid"]
        if not APPID_PATTERN.match(appid):
            raise ConfigError(f"{where}: appid {appid!r} is not 'wx' followed by 16 hex digits")
        previous = item.get("previous_encoding_aes_key") or None
        keys = {
            "encoding_aes_key": values["encoding_aes_key"],
            "previous_encoding_aes_key": previous,
        }
        for key, value in keys.items():
            if value is not None and not _is_aes_key(value):
                raise ConfigError(
                    f"{where} ({appid}): {key} must be the 43-character EncodingAESKey "
                    "from the open platform console"
                )
        return cls(
            appid=appid,
            secret=values["secret"],
            token=values["token"],
            encoding_aes_key=values["encoding_aes_key"],
            previous_encoding_aes_key=previous,
        )


@dataclass(frozen=True)
class Settings:
    components: Mapping[str, ComponentConfig]
    service_role: str = "all"
    internal_auth: str = "api_key"
    wechat_api_base: str = DEFAULT_API_BASE
    # The hosts of WeChat's authorization pages; locally both point at the mock.
    wechat_mp_base: str = DEFAULT_MP_BASE
    wechat_open_base: str = DEFAULT_OPEN_BASE
    # Where merchants' browsers reach this service; builds the default redirect_uri.
    public_base_url: str | None = None
    google_cloud_project: str | None = None
    firestore_database: str = "(default)"
    service_api_keys: tuple[str, ...] = field(default=(), repr=False)
    # INTERNAL_AUTH=cloud_run_iam: the audiences an ID token may be for (the internal
    # service's URL), the emails that may call, and where Google's certificates are.
    internal_audiences: tuple[str, ...] = ()
    internal_invokers: tuple[str, ...] = ()
    id_token_certs_url: str = DEFAULT_ID_TOKEN_CERTS_URL
    log_level: str = "INFO"
    # The numeric settings: see NUMERIC_SETTINGS for what each means and its bounds.
    component_token_refresh_margin: float = 600.0
    refresh_lease_seconds: float = 30.0
    ticket_stale_after: float = 1200.0
    push_ticket_min_interval: float = 60.0
    authorizer_token_min_ttl: float = 300.0
    authorizer_token_refresh_margin: float = 900.0
    sweep_jitter: float = 300.0
    sweep_concurrency: int = 16
    sweep_mode: str = "inline"
    sweep_shard_topic: str | None = None  # a topic name in GOOGLE_CLOUD_PROJECT, or its path
    sweep_shard_size: int = 200
    sweep_shard_deadline: float = 600.0
    quota_backoff: float = 300.0
    proxy_timeout: float = 15.0
    message_publish_deadline: float = 3.0
    message_publish_max_latency: float = 0.005
    push_max_clock_skew: float = 300.0
    max_body_bytes: int = 256 * 1024
    # The public merchant pages' per-client rate limit: see PublicRateLimit.
    public_rate_limit: PublicRateLimit = field(default_factory=lambda: PublicRateLimit())
    # Where each push is delivered (MESSAGE_ROUTES, service.routes); none: answered success.
    message_routes: tuple[Route, ...] = ()
    # The console (/console, internal role): the emails of its operators in the cloud
    # (INTERNAL_AUTH=cloud_run_iam); locally a SERVICE_API_KEYS key signs in.
    console_operators: tuple[str, ...] = ()
    push_log_flush_interval: float = 60.0
    push_log_messages: int = 500
    # Scene 2: the open platform account every authorizer of the deployment belongs to
    # (GROUP_OPEN_APPID); None: no group (service.open_account_group).
    group_open_appid: str | None = None

    def callback_url(self, component_appid: str) -> str | None:
        """The default redirect_uri: our callback under PUBLIC_BASE_URL, if it is set."""
        if self.public_base_url is None:
            return None
        return f"{self.public_base_url}/authorize/{component_appid}/callback"

    def serves(self, role: str) -> bool:
        return self.service_role in ("all", role)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        role = _choice(env, "SERVICE_ROLE", ROLES)
        internal_auth = _choice(env, "INTERNAL_AUTH", INTERNAL_AUTHS)
        if internal_auth == "cloud_run_iam" and role != "internal":
            raise ConfigError(
                "INTERNAL_AUTH=cloud_run_iam needs SERVICE_ROLE=internal: only the internal "
                "service, which never allows unauthenticated calls, may trust Cloud Run's IAM"
            )
        audiences, invokers = _identity_settings(env, internal_auth == "cloud_run_iam")
        # Any: each goes to its own field, a float or (SWEEP_CONCURRENCY) an int.
        numbers: dict[str, Any] = {b.field: _bounded(env, b) for b in NUMERIC_SETTINGS}
        return cls(
            components=_components_from_env(env),
            service_role=role,
            internal_auth=internal_auth,
            wechat_api_base=_url(env, "WECHAT_API_BASE", DEFAULT_API_BASE),
            wechat_mp_base=_url(env, "WECHAT_MP_BASE", DEFAULT_MP_BASE),
            wechat_open_base=_url(env, "WECHAT_OPEN_BASE", DEFAULT_OPEN_BASE),
            public_base_url=_url(env, "PUBLIC_BASE_URL", "")
            if env.get("PUBLIC_BASE_URL")
            else None,
            google_cloud_project=env.get("GOOGLE_CLOUD_PROJECT") or None,
            firestore_database=env.get("FIRESTORE_DATABASE") or "(default)",
            service_api_keys=tuple(
                key.strip() for key in env.get("SERVICE_API_KEYS", "").split(",") if key.strip()
            ),
            internal_audiences=audiences,
            internal_invokers=invokers,
            console_operators=_console_operators(env),
            id_token_certs_url=_url(env, "ID_TOKEN_CERTS_URL", DEFAULT_ID_TOKEN_CERTS_URL),
            log_level=env.get("LOG_LEVEL", "INFO"),
            **numbers,
            public_rate_limit=_public_rate_limit(env),
            message_routes=_message_routes(env),
            group_open_appid=_group_open_appid(env),
            **_sweep_mode(env),
        )


def _sweep_mode(env: Mapping[str, str]) -> dict[str, Any]:
    mode = _choice(env, "SWEEP_MODE", SWEEP_MODES)
    topic = env.get("SWEEP_SHARD_TOPIC", "").strip() or None
    if mode == "fanout" and topic is None:
        raise ConfigError(
            "SWEEP_SHARD_TOPIC is required with SWEEP_MODE=fanout: the Pub/Sub topic the "
            "sweep's shards are published to"
        )
    if topic is not None and not re.fullmatch(
        r"(projects/[^/\s]+/topics/)?[A-Za-z][\w.~+%-]{2,254}", topic
    ):
        raise ConfigError(f"SWEEP_SHARD_TOPIC is not a Pub/Sub topic name or path: {topic[:80]!r}")
    return {"sweep_mode": mode, "sweep_shard_topic": topic}


def _group_open_appid(env: Mapping[str, str]) -> str | None:
    value = env.get("GROUP_OPEN_APPID", "").strip()
    if not value:
        return None
    if not APPID_PATTERN.match(value):
        raise ConfigError(
            "GROUP_OPEN_APPID must be an open platform account's appid, 'wx' followed by "
            f"16 hex digits, got {value[:40]!r}"
        )
    return value


def _message_routes(env: Mapping[str, str]) -> tuple[Route, ...]:
    text = env.get("MESSAGE_ROUTES", "").strip()
    if not text:
        return ()
    try:
        return parse_routes(text)
    except RouteError as exc:
        raise ConfigError(f"MESSAGE_ROUTES: {exc}") from None


def _identity_settings(
    env: Mapping[str, str], required: bool
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """INTERNAL_AUDIENCE and INTERNAL_INVOKERS: comma-separated lists, both required with
    INTERNAL_AUTH=cloud_run_iam (an empty list would let nobody in, or anybody)."""
    audiences = _list(env, "INTERNAL_AUDIENCE")
    invokers = _list(env, "INTERNAL_INVOKERS")
    for audience in audiences:
        parts = urlsplit(audience)
        if (parts.scheme, parts.path, parts.query, parts.fragment) != ("https", "", "", ""):
            raise ConfigError(
                "INTERNAL_AUDIENCE must be the internal service's https URL without a path "
                "or trailing slash (the audience callers ask their ID tokens for), "
                f"got {audience!r}"
            )
    for email in invokers:
        if not EMAIL.match(email):
            raise ConfigError(
                f"INTERNAL_INVOKERS: {email!r} is not an email address (list the emails of "
                "service accounts and users, without 'serviceAccount:' or 'user:')"
            )
    if required:
        if not audiences:
            raise ConfigError(
                "INTERNAL_AUDIENCE is required with INTERNAL_AUTH=cloud_run_iam: the internal "
                "service's URL, e.g. https://<name>-<project number>.<region>.run.app"
            )
        if not invokers:
            raise ConfigError(
                "INTERNAL_INVOKERS is required with INTERNAL_AUTH=cloud_run_iam: the emails "
                "(service accounts, users) whose ID tokens may call the internal service"
            )
    return audiences, tuple(dict.fromkeys(email.lower() for email in invokers))


def _console_operators(env: Mapping[str, str]) -> tuple[str, ...]:
    """CONSOLE_OPERATORS: the emails that may open /console in the cloud (none: nobody)."""
    operators = _list(env, "CONSOLE_OPERATORS")
    for email in operators:
        if not EMAIL.match(email):
            raise ConfigError(
                f"CONSOLE_OPERATORS: {email!r} is not an email address (list the operators' "
                "Google accounts, without 'user:')"
            )
    return tuple(dict.fromkeys(email.lower() for email in operators))


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip() for v in env.get(name, "").split(",") if v.strip()))


def _components_from_env(env: Mapping[str, str]) -> dict[str, ComponentConfig]:
    inline, path = env.get("WECHAT_COMPONENTS"), env.get("WECHAT_COMPONENTS_FILE")
    appids = env.get(COMPONENT_APPIDS_VAR)
    sources = {
        "WECHAT_COMPONENTS": inline,
        "WECHAT_COMPONENTS_FILE": path,
        COMPONENT_APPIDS_VAR: appids,
    }
    given = [name for name, value in sources.items() if value]
    if len(given) > 1:
        raise ConfigError(f"set only one of {' and '.join(given)}: they are alternatives")
    if appids:
        return _components_from_variables(env, appids)
    if path:
        where = f"WECHAT_COMPONENTS_FILE ({path})"
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read it ({exc.strerror})") from None
    elif inline:
        where, text = "WECHAT_COMPONENTS", inline
    else:
        raise ConfigError(
            "no components configured: set WECHAT_COMPONENTS to a JSON array of "
            '{"appid", "secret", "token", "encoding_aes_key"} objects, '
            f"or WECHAT_COMPONENTS_FILE to a file holding it, or {COMPONENT_APPIDS_VAR} "
            "with one variable per secret (WECHAT_COMPONENT_<APPID>_SECRET, ...)"
        )
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        # The position only: the document holds secrets.
        raise ConfigError(
            f"{where}: not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{where}: must be a non-empty JSON array of components")
    components: dict[str, ComponentConfig] = {}
    for index, item in enumerate(items):
        component = ComponentConfig.from_json(item, f"{where}[{index}]")
        if component.appid in components:
            raise ConfigError(f"{where}: component {component.appid} is listed twice")
        components[component.appid] = component
    return components


def _components_from_variables(env: Mapping[str, str], appids: str) -> dict[str, ComponentConfig]:
    components: dict[str, ComponentConfig] = {}
    for appid in (a.strip() for a in appids.split(",")):
        if not appid:
            continue
        if not APPID_PATTERN.match(appid):
            raise ConfigError(
                f"{COMPONENT_APPIDS_VAR}: {appid!r} is not 'wx' followed by 16 hex digits"
            )
        if appid in components:
            raise ConfigError(f"{COMPONENT_APPIDS_VAR}: component {appid} is listed twice")
        item = {"appid": appid}
        for key, pattern in COMPONENT_VARS.items():
            name = pattern.format(appid=appid.upper())
            if env.get(name):
                item[key] = env[name]
            elif key != "previous_encoding_aes_key":
                raise ConfigError(f"{name} is required: {COMPONENT_APPIDS_VAR} lists {appid}")
        components[appid] = ComponentConfig.from_json(item, COMPONENT_APPIDS_VAR)
    if not components:
        raise ConfigError(f"{COMPONENT_APPIDS_VAR}: list at least one component appid")
    return components


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = env.get(name) or choices[0]
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _is_aes_key(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        decode_aes_key(value)
    except CryptoError:
        return False
    return True


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _bounded(env: Mapping[str, str], bound: Bound) -> float | int:
    """The setting's value: its default when unset, else a finite number within its bounds."""
    raw = env.get(bound.name, "").strip()
    if not raw:
        return int(bound.default) if bound.whole else float(bound.default)
    value: float | int
    try:
        value = int(raw) if bound.whole else float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and bound.low <= value <= bound.high):
        raise ConfigError(f"{bound.name} must be {bound.rule()}, got {raw!r}")
    return value


@dataclass(frozen=True)
class PublicRateLimit:
    """The per-client rate limit on the merchant's pages (entry, link, callback).

    Each client has a bucket of ``burst`` tokens refilled at ``per_minute`` a minute, per
    process; a page takes one, a request that calls WeChat several. ``per_minute=0`` turns
    the limit off. The client is the ``client_ip_hops``-th address from the right of
    X-Forwarded-For: 1 behind Cloud Run (its front end appends the address it saw), 2 with
    a Google load balancer in front, 0 for the connection's own address (no proxy).
    """

    per_minute: int = 60
    burst: int = 60
    client_ip_hops: int = 1


PUBLIC_RATE_LIMIT_SETTINGS = {
    "per_minute": Bound("PUBLIC_RATE_LIMIT", 60, 0, 100_000, whole=True),
    "burst": Bound("PUBLIC_RATE_BURST", 60, 1, 100_000, whole=True),
    "client_ip_hops": Bound("PUBLIC_CLIENT_IP_HOPS", 1, 0, 8, whole=True),
}


def _public_rate_limit(env: Mapping[str, str]) -> PublicRateLimit:
    values = {key: int(_bounded(env, b)) for key, b in PUBLIC_RATE_LIMIT_SETTINGS.items()}
    return PublicRateLimit(**values)
