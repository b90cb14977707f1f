"""Settings from the environment: valid forms, and clear errors that never echo secrets."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from service.config import ConfigError, Settings

KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
GOOD = {
    "appid": "wx0123456789abcdef",
    "secret": "TOPSECRET",
    "token": "tok",
    "encoding_aes_key": KEY,
}


# The form Cloud Run gets: one variable per secret, each mounted from Secret Manager.
PER_VARIABLE = {
    "WECHAT_COMPONENT_APPIDS": "wx0123456789abcdef",
    "WECHAT_COMPONENT_WX0123456789ABCDEF_SECRET": "TOPSECRET",
    "WECHAT_COMPONENT_WX0123456789ABCDEF_TOKEN": "tok",
    "WECHAT_COMPONENT_WX0123456789ABCDEF_ENCODING_AES_KEY": KEY,
}


# The internal service as Cloud Run runs it: ID tokens for its URL, from these callers.
INTERNAL_URL = "https://wcg-dev-internal-123456789012.asia-east2.run.app"
SCHEDULER = "wcg-dev-scheduler@p.iam.gserviceaccount.com"
CLOUD_RUN_INTERNAL = {
    **PER_VARIABLE,
    "SERVICE_ROLE": "internal",
    "INTERNAL_AUTH": "cloud_run_iam",
    "INTERNAL_AUDIENCE": INTERNAL_URL,
    "INTERNAL_INVOKERS": f"{SCHEDULER},Orders@p.iam.gserviceaccount.com",
}


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


def test_inline_components_and_defaults() -> None:
    s = settings(WECHAT_COMPONENTS=json.dumps([GOOD]))
    component = s.components["wx0123456789abcdef"]
    assert component.secret == "TOPSECRET" and component.previous_encoding_aes_key is None
    assert s.wechat_api_base == "https://api.weixin.qq.com"
    assert s.service_api_keys == ()
    assert "TOPSECRET" not in repr(s) and KEY not in repr(s)


def test_components_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "components.json"
    path.write_text(json.dumps([{**GOOD, "previous_encoding_aes_key": KEY}]))
    s = settings(
        WECHAT_COMPONENTS_FILE=str(path),
        WECHAT_API_BASE="http://127.0.0.1:8081/",
        SERVICE_API_KEYS=" a , b ,",
        COMPONENT_TOKEN_REFRESH_MARGIN="120",
    )
    assert s.components["wx0123456789abcdef"].previous_encoding_aes_key == KEY
    assert s.wechat_api_base == "http://127.0.0.1:8081"
    assert s.service_api_keys == ("a", "b")
    assert s.component_token_refresh_margin == 120


def test_components_one_variable_per_secret() -> None:
    other = "wx00000000000000ff"
    s = Settings.from_env(
        {
            **PER_VARIABLE,
            "WECHAT_COMPONENT_APPIDS": f" wx0123456789abcdef , {other}",
            "WECHAT_COMPONENT_WX0123456789ABCDEF_PREVIOUS_ENCODING_AES_KEY": KEY[::-1],
            "WECHAT_COMPONENT_WX00000000000000FF_SECRET": "s2",
            "WECHAT_COMPONENT_WX00000000000000FF_TOKEN": "t2",
            "WECHAT_COMPONENT_WX00000000000000FF_ENCODING_AES_KEY": KEY,
        }
    )
    assert list(s.components) == ["wx0123456789abcdef", other]
    first = s.components["wx0123456789abcdef"]
    assert (first.secret, first.token, first.encoding_aes_key) == ("TOPSECRET", "tok", KEY)
    assert first.previous_encoding_aes_key == KEY[::-1]
    assert s.components[other].secret == "s2"
    assert s.components[other].previous_encoding_aes_key is None


def test_roles_and_internal_auth() -> None:
    assert settings(WECHAT_COMPONENTS=json.dumps([GOOD])).service_role == "all"
    internal = Settings.from_env(CLOUD_RUN_INTERNAL)
    assert internal.internal_auth == "cloud_run_iam"
    assert internal.serves("internal") and not internal.serves("public")
    assert internal.internal_audiences == (INTERNAL_URL,)
    assert internal.internal_invokers == (SCHEDULER, "orders@p.iam.gserviceaccount.com")
    assert internal.id_token_certs_url == "https://www.googleapis.com/oauth2/v1/certs"
    both = Settings.from_env(PER_VARIABLE)
    assert both.serves("internal") and both.serves("public")
    assert both.internal_auth == "api_key"
    assert both.internal_audiences == () and both.internal_invokers == ()


def test_identity_token_settings() -> None:
    s = Settings.from_env(
        {
            **CLOUD_RUN_INTERNAL,
            "INTERNAL_AUDIENCE": f" {INTERNAL_URL} , https://gateway.example.com ",
            "INTERNAL_INVOKERS": f"{SCHEDULER},{SCHEDULER.upper()}, ops@example.com,",
            "ID_TOKEN_CERTS_URL": "http://127.0.0.1:8123/certs/",
        }
    )
    assert s.internal_audiences == (INTERNAL_URL, "https://gateway.example.com")
    assert s.internal_invokers == (SCHEDULER, "ops@example.com")
    assert s.id_token_certs_url == "http://127.0.0.1:8123/certs"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "no components configured: set WECHAT_COMPONENTS"),
        (
            {"WECHAT_COMPONENTS": "[", "WECHAT_COMPONENTS_FILE": "x"},
            "set only one of WECHAT_COMPONENTS and WECHAT_COMPONENTS_FILE",
        ),
        (
            {"WECHAT_COMPONENTS": "[", "WECHAT_COMPONENT_APPIDS": "x"},
            "set only one of WECHAT_COMPONENTS and WECHAT_COMPONENT_APPIDS",
        ),
        ({**PER_VARIABLE, "WECHAT_COMPONENT_APPIDS": "wxABC"}, "'wxABC' is not 'wx' followed"),
        ({**PER_VARIABLE, "WECHAT_COMPONENT_APPIDS": " , "}, "list at least one component"),
        (
            {**PER_VARIABLE, "WECHAT_COMPONENT_APPIDS": "wx0123456789abcdef,wx0123456789abcdef"},
            "listed twice",
        ),
        (
            {**PER_VARIABLE, "WECHAT_COMPONENT_WX0123456789ABCDEF_TOKEN": ""},
            "WECHAT_COMPONENT_WX0123456789ABCDEF_TOKEN is required",
        ),
        (
            {**PER_VARIABLE, "WECHAT_COMPONENT_WX0123456789ABCDEF_ENCODING_AES_KEY": "TOPSECRET"},
            "43-character",
        ),
        ({**PER_VARIABLE, "SERVICE_ROLE": "admin"}, "SERVICE_ROLE must be one of all, public"),
        ({**PER_VARIABLE, "INTERNAL_AUTH": "iam"}, "INTERNAL_AUTH must be one of api_key"),
        ({**PER_VARIABLE, "INTERNAL_AUTH": "cloud_run_iam"}, "needs SERVICE_ROLE=internal"),
        (
            {**CLOUD_RUN_INTERNAL, "INTERNAL_AUDIENCE": ""},
            "INTERNAL_AUDIENCE is required with INTERNAL_AUTH=cloud_run_iam",
        ),
        (
            {**CLOUD_RUN_INTERNAL, "INTERNAL_AUDIENCE": " , "},
            "INTERNAL_AUDIENCE is required with INTERNAL_AUTH=cloud_run_iam",
        ),
        (
            {**CLOUD_RUN_INTERNAL, "INTERNAL_INVOKERS": ""},
            "INTERNAL_INVOKERS is required with INTERNAL_AUTH=cloud_run_iam",
        ),
        (
            {**CLOUD_RUN_INTERNAL, "INTERNAL_AUDIENCE": "wcg-dev-internal"},
            "INTERNAL_AUDIENCE must be the internal service's https URL",
        ),
        (
            {**CLOUD_RUN_INTERNAL, "INTERNAL_AUDIENCE": f"{INTERNAL_URL}/"},
            "without a path or trailing slash",
        ),
        (
            {**CLOUD_RUN_INTERNAL, "INTERNAL_AUDIENCE": f"{INTERNAL_URL}/tasks/refresh"},
            "without a path or trailing slash",
        ),
        (
            {**CLOUD_RUN_INTERNAL, "INTERNAL_AUDIENCE": INTERNAL_URL.replace("https", "http")},
            "https URL",
        ),
        (
            {**CLOUD_RUN_INTERNAL, "INTERNAL_INVOKERS": f"serviceAccount:{SCHEDULER}"},
            "is not an email address",
        ),
        (
            {**CLOUD_RUN_INTERNAL, "INTERNAL_INVOKERS": "group ops@example.com"},
            "is not an email address",
        ),
        (
            {**CLOUD_RUN_INTERNAL, "ID_TOKEN_CERTS_URL": "www.googleapis.com/oauth2/v1/certs"},
            "ID_TOKEN_CERTS_URL must be an http(s) URL",
        ),
        (
            {**PER_VARIABLE, "INTERNAL_AUTH": "cloud_run_iam", "SERVICE_ROLE": "public"},
            "needs SERVICE_ROLE=internal",
        ),
        ({"WECHAT_COMPONENTS": '[{"secret": "TOPSECRET"'}, "not valid JSON (line 1"),
        ({"WECHAT_COMPONENTS": "[]"}, "non-empty JSON array"),
        ({"WECHAT_COMPONENTS": "[1]"}, "must be a JSON object"),
        ({"WECHAT_COMPONENTS": json.dumps([{**GOOD, "secret": ""}])}, "'secret' is required"),
        ({"WECHAT_COMPONENTS": json.dumps([{**GOOD, "appid": "wxABC"}])}, "16 hex digits"),
        (
            {"WECHAT_COMPONENTS": json.dumps([{**GOOD, "encoding_aes_key": "TOPSECRET"}])},
            "43-character",
        ),
        (
            {"WECHAT_COMPONENTS": json.dumps([{**GOOD, "previous_encoding_aes_key": "x"}])},
            "previous_encoding_aes_key must be",
        ),
        ({"WECHAT_COMPONENTS": json.dumps([GOOD, GOOD])}, "listed twice"),
        ({"WECHAT_COMPONENTS": json.dumps([{**GOOD, "scret": "x"}])}, "unknown keys ['scret']"),
        ({"WECHAT_COMPONENTS_FILE": "/nonexistent/components.json"}, "cannot read it"),
        (
            {"WECHAT_COMPONENTS": json.dumps([GOOD]), "WECHAT_API_BASE": "api.weixin.qq.com"},
            "http(s) URL",
        ),
        (
            {"WECHAT_COMPONENTS": json.dumps([GOOD]), "REFRESH_LEASE_SECONDS": "soon"},
            "REFRESH_LEASE_SECONDS must be a number",
        ),
    ],
)
def test_bad_configuration_says_what_and_how(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert message in str(caught.value)
    assert "TOPSECRET" not in str(caught.value)


# ----- numeric settings: finite, and within the bounds each one's meaning allows -----------

# (variable, Settings field, lowest, highest, zero allowed): the service's own table, restated
# here so that a bound changed by accident shows up as a failing test.
NUMERIC = [
    ("COMPONENT_TOKEN_REFRESH_MARGIN", "component_token_refresh_margin", 60, 3600),
    ("REFRESH_LEASE_SECONDS", "refresh_lease_seconds", 1, 600),
    ("TICKET_STALE_AFTER", "ticket_stale_after", 900, 43200),
    ("PUSH_TICKET_MIN_INTERVAL", "push_ticket_min_interval", 10, 3600),
    ("PUSH_MAX_CLOCK_SKEW", "push_max_clock_skew", 1, 3600),
    ("AUTHORIZER_TOKEN_MIN_TTL", "authorizer_token_min_ttl", 1, 7200),
    ("AUTHORIZER_TOKEN_REFRESH_MARGIN", "authorizer_token_refresh_margin", 60, 3600),
    ("SWEEP_JITTER", "sweep_jitter", 0, 1800),
    ("SWEEP_CONCURRENCY", "sweep_concurrency", 1, 256),
    ("SWEEP_SHARD_SIZE", "sweep_shard_size", 1, 500),
    ("SWEEP_SHARD_DEADLINE", "sweep_shard_deadline", 30, 3000),
    ("QUOTA_BACKOFF", "quota_backoff", 1, 3600),
    ("PROXY_TIMEOUT", "proxy_timeout", 1, 300),
    ("MESSAGE_PUBLISH_DEADLINE", "message_publish_deadline", 0.5, 4),
    ("MESSAGE_PUBLISH_MAX_LATENCY", "message_publish_max_latency", 0, 0.1),
    ("PUSH_LOG_FLUSH_INTERVAL", "push_log_flush_interval", 1, 3600),
    ("PUSH_LOG_MESSAGES", "push_log_messages", 10, 500),
]
WHOLE = {"SWEEP_CONCURRENCY", "SWEEP_SHARD_SIZE", "PUSH_LOG_MESSAGES"}


def _bad_values(name: str, low: int, high: int) -> list[str]:
    bad = ["nan", "NaN", "inf", "-inf", "Infinity", "-1", str(low - 1), str(high + 1), "soon"]
    bad += ["1e9", "0x10", "10s"]
    if low > 0:
        bad.append("0")
    if name in WHOLE:
        bad.append("2.5")
    else:
        bad.append(f"{high}.5")
    return sorted(set(bad))


@pytest.mark.parametrize(
    ("name", "value"),
    [(name, value) for name, _, low, high in NUMERIC for value in _bad_values(name, low, high)],
)
def test_numeric_settings_refuse_values_outside_their_bounds(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**PER_VARIABLE, name: value})
    message = str(caught.value)
    assert message.startswith(f"{name} must be")
    low, high = next((lo, hi) for n, _, lo, hi in NUMERIC if n == name)
    assert f"from {low} to {high}" in message


@pytest.mark.parametrize(("name", "field", "low", "high"), NUMERIC)
def test_numeric_settings_accept_their_edges_and_defaults(
    name: str, field: str, low: int, high: int
) -> None:
    default = getattr(Settings.from_env(PER_VARIABLE), field)
    assert low <= default <= high
    # The dataclass's own default (used by Settings built in code) is the same.
    assert getattr(Settings(components={}), field) == default
    for value in (low, high):
        assert getattr(Settings.from_env({**PER_VARIABLE, name: str(value)}), field) == value
    assert getattr(Settings.from_env({**PER_VARIABLE, name: ""}), field) == default
    assert getattr(Settings.from_env({**PER_VARIABLE, name: f" {low} "}), field) == low


def test_zero_is_allowed_only_where_it_means_something() -> None:
    assert Settings.from_env({**PER_VARIABLE, "SWEEP_JITTER": "0"}).sweep_jitter == 0
    assert (
        Settings.from_env(
            {**PER_VARIABLE, "MESSAGE_PUBLISH_MAX_LATENCY": "0"}
        ).message_publish_max_latency
        == 0
    )
    assert [name for name, _, low, _ in NUMERIC if low == 0] == [
        "SWEEP_JITTER",
        "MESSAGE_PUBLISH_MAX_LATENCY",
    ]


def test_every_numeric_setting_is_in_the_table() -> None:
    """A new timing setting must get bounds: every float/int field read from the environment
    is one of the table's (the body limit is not read from the environment)."""
    numeric = {
        f.name
        for f in dataclasses.fields(Settings)
        if f.type in ("float", "int") and f.name != "max_body_bytes"
    }
    assert numeric == {field for _, field, _, _ in NUMERIC}


def test_sweep_mode_fanout_needs_its_topic() -> None:
    assert Settings.from_env(PER_VARIABLE).sweep_mode == "inline"
    with pytest.raises(ConfigError, match="SWEEP_SHARD_TOPIC is required"):
        Settings.from_env({**PER_VARIABLE, "SWEEP_MODE": "fanout"})
    with pytest.raises(ConfigError, match="SWEEP_MODE must be one of inline, fanout"):
        Settings.from_env({**PER_VARIABLE, "SWEEP_MODE": "sharded"})
    with pytest.raises(ConfigError, match="not a Pub/Sub topic"):
        Settings.from_env({**PER_VARIABLE, "SWEEP_MODE": "fanout", "SWEEP_SHARD_TOPIC": "a b"})
    for topic in ("sweep-shards", "projects/p-1/topics/sweep-shards"):
        env = {**PER_VARIABLE, "SWEEP_MODE": "fanout", "SWEEP_SHARD_TOPIC": topic}
        settings = Settings.from_env(env)
        assert (settings.sweep_mode, settings.sweep_shard_topic) == ("fanout", topic)
