"""Settings, read once from the environment into frozen dataclasses.

Errors name the variable and what is wrong, never the secret values themselves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.wechat.accounts import APPID_PATTERN
from service.wechat.client import DEFAULT_API_BASE
from service.wechat.crypto import CryptoError, decode_aes_key
from service.wechat.links import DEFAULT_MP_BASE, DEFAULT_OPEN_BASE


class ConfigError(ValueError):
    pass


# SERVICE_ROLE: one image runs as two Cloud Run services. "public" serves WeChat's pushes and
# the merchant's pages; "internal" the token API, the proxy and the tasks; "all" both (local).
ROLES = ("all", "public", "internal")
# INTERNAL_AUTH: "api_key" checks SERVICE_API_KEYS; "cloud_run_iam" trusts Cloud Run's
# invoker check, so it is only allowed on the internal role, which is never public.
INTERNAL_AUTHS = ("api_key", "cloud_run_iam")
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
    log_level: str = "INFO"
    # Renew the component token this long before it expires (WeChat suggests ~10 minutes).
    component_token_refresh_margin: float = 600.0
    # How long a refresher may hold the lease before another process takes over.
    refresh_lease_seconds: float = 30.0
    # Ask WeChat to restart ticket pushes when the newest ticket is older than this.
    ticket_stale_after: float = 1200.0
    push_ticket_min_interval: float = 60.0
    # Authorizer tokens: a token handed out is valid at least this long (else renewed
    # first); the sweep renews those expiring within the margin plus a random jitter.
    authorizer_token_min_ttl: float = 300.0
    authorizer_token_refresh_margin: float = 900.0
    sweep_jitter: float = 300.0
    sweep_concurrency: int = 16
    # After 45009 on api_authorizer_token: the first pause, doubled each time again.
    quota_backoff: float = 300.0
    proxy_timeout: float = 15.0
    # Pushes whose timestamp is further than this from our clock are refused (replays).
    push_max_clock_skew: float = 300.0
    max_body_bytes: int = 256 * 1024

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
            log_level=env.get("LOG_LEVEL", "INFO"),
            component_token_refresh_margin=_seconds(env, "COMPONENT_TOKEN_REFRESH_MARGIN", 600),
            refresh_lease_seconds=_seconds(env, "REFRESH_LEASE_SECONDS", 30),
            ticket_stale_after=_seconds(env, "TICKET_STALE_AFTER", 1200),
            push_ticket_min_interval=_seconds(env, "PUSH_TICKET_MIN_INTERVAL", 60),
            push_max_clock_skew=_seconds(env, "PUSH_MAX_CLOCK_SKEW", 300),
            authorizer_token_min_ttl=_seconds(env, "AUTHORIZER_TOKEN_MIN_TTL", 300),
            authorizer_token_refresh_margin=_seconds(env, "AUTHORIZER_TOKEN_REFRESH_MARGIN", 900),
            sweep_jitter=_seconds(env, "SWEEP_JITTER", 300),
            sweep_concurrency=_count(env, "SWEEP_CONCURRENCY", 16, 1, 256),
            quota_backoff=_seconds(env, "QUOTA_BACKOFF", 300),
            proxy_timeout=_seconds(env, "PROXY_TIMEOUT", 15),
        )


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


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative")
    return value


def _count(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be from {low} to {high}, got {value}")
    return value
