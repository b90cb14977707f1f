"""infra/config.py: defaults, and bad configuration failing clearly, all problems at once."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import pulumi
import pytest

from infra.config import ConfigError, GatewayConfig, parse_config
from service.wechat.accounts import APPID_PATTERN
from tests.infra.pulumi_mocks import (
    APPID_A,
    APPID_B,
    GCP_PROJECT,
    REGION,
    SECRET_VALUES,
    base_config,
    full,
    run_program,
)

P = "wechat-component-gateway"


def parse(
    config: Mapping[str, str],
    secret_keys: Collection[str] | None = None,
    stack: str = "dev",
) -> GatewayConfig:
    raw: dict[str, Any] = {full(key): value for key, value in config.items()}
    if secret_keys is None:
        secret_keys = [key for key in config if key in SECRET_VALUES]
    return parse_config(raw, [full(key) for key in secret_keys], stack)


def problems_of(config: Mapping[str, str], secret_keys: Collection[str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(config, secret_keys)
    return str(caught.value)


def test_defaults() -> None:
    config = parse(base_config(image=None, alert_email=None))
    assert config.project == GCP_PROJECT and config.region == REGION
    assert config.appids == (APPID_A, APPID_B)
    assert config.image is None
    assert config.refresh_schedule == "*/5 * * * *"
    assert (config.min_instances, config.max_instances) == (0, 10)
    assert config.internal_ingress == "internal"
    assert config.firestore_location == REGION
    assert config.firestore_database == "(default)"
    assert config.name_prefix == "wcg-dev"
    assert config.public_domain is None and config.alert_email is None


def test_values_are_read() -> None:
    config = parse(
        base_config(
            min_instances="1",
            max_instances="20",
            internal_ingress="all",
            public_domain="auth.example.com",
            refresh_schedule="*/2 * * * *",
            firestore_location="nam5",
            firestore_database="gateway",
            name_prefix="wcg-prod",
        )
    )
    assert (config.min_instances, config.max_instances) == (1, 20)
    assert config.internal_ingress == "all"
    assert config.public_domain == "auth.example.com"
    assert config.refresh_schedule == "*/2 * * * *"
    assert (config.firestore_location, config.firestore_database) == ("nam5", "gateway")
    assert config.name_prefix == "wcg-prod"
    a = config.components[0]
    assert (
        a.secrets["previous_encoding_aes_key"]
        == SECRET_VALUES[f"{APPID_A}_previous_encoding_aes_key"]
    )
    assert "previous_encoding_aes_key" not in config.components[1].secrets


def test_the_appid_rule_is_the_services() -> None:
    for appid in (
        APPID_A,
        "wx0123456789ABCDEF",
        "wx123",
        "wxg123456789abcdef",
        "xx0123456789abcdef",
    ):
        config = base_config(components=f'["{appid}"]')
        accepted = APPID_PATTERN.match(appid) is not None
        if accepted:
            assert parse({k: v for k, v in config.items() if APPID_B not in k}).appids == (appid,)
        else:
            assert "components[0]" in problems_of(config)


BAD_CONFIGS: list[tuple[str, dict[str, str | None], list[str] | None, str]] = [
    # (id, overrides, secret keys (None: every secret value), the key the message names)
    ("missing components", {"components": None}, None, f"'{P}:components'"),
    ("empty components", {"components": "[]"}, None, f"'{P}:components'"),
    ("components not a list", {"components": APPID_A}, None, f"'{P}:components'"),
    ("bad appid", {"components": '["wx0123"]'}, None, f"'{P}:components[0]'"),
    ("uppercase appid", {"components": '["wx0123456789ABCDEF"]'}, None, f"'{P}:components[0]'"),
    (
        "duplicate appid",
        {"components": f'["{APPID_A}", "{APPID_B}", "{APPID_A}"]'},
        None,
        f"'{P}:components[2]'",
    ),
    ("missing appsecret", {f"{APPID_A}_appsecret": None}, None, f"'{P}:{APPID_A}_appsecret'"),
    ("missing token", {f"{APPID_B}_token": None}, None, f"'{P}:{APPID_B}_token'"),
    (
        "missing aes key",
        {f"{APPID_A}_encoding_aes_key": None},
        None,
        f"'{P}:{APPID_A}_encoding_aes_key'",
    ),
    (
        "secret in plain text",
        {},
        [k for k in SECRET_VALUES if k != f"{APPID_A}_appsecret"],
        f"'{P}:{APPID_A}_appsecret'",
    ),
    (
        "aes key too short",
        {f"{APPID_A}_encoding_aes_key": "k" * 42},
        None,
        f"'{P}:{APPID_A}_encoding_aes_key'",
    ),
    (
        "aes key with a symbol",
        {f"{APPID_B}_encoding_aes_key": "k" * 42 + "+"},
        None,
        f"'{P}:{APPID_B}_encoding_aes_key'",
    ),
    (
        "bad previous aes key",
        {f"{APPID_A}_previous_encoding_aes_key": "k" * 44},
        None,
        f"'{P}:{APPID_A}_previous_encoding_aes_key'",
    ),
    ("token too short", {f"{APPID_A}_token": "ab"}, None, f"'{P}:{APPID_A}_token'"),
    ("token too long", {f"{APPID_A}_token": "t" * 33}, None, f"'{P}:{APPID_A}_token'"),
    ("token with a symbol", {f"{APPID_A}_token": "tok-en"}, None, f"'{P}:{APPID_A}_token'"),
    ("min above max", {"min_instances": "5", "max_instances": "2"}, None, f"'{P}:min_instances'"),
    ("non-integer max", {"max_instances": "ten"}, None, f"'{P}:max_instances'"),
    ("fractional min", {"min_instances": "1.5"}, None, f"'{P}:min_instances'"),
    ("max zero", {"max_instances": "0"}, None, f"'{P}:max_instances'"),
    ("max too high", {"max_instances": "1001"}, None, f"'{P}:max_instances'"),
    ("negative min", {"min_instances": "-1"}, None, f"'{P}:min_instances'"),
    ("bad internal_ingress", {"internal_ingress": "public"}, None, f"'{P}:internal_ingress'"),
    (
        "allUsers may invoke the internal service",
        {"internal_invokers": '["allUsers"]'},
        None,
        f"'{P}:internal_invokers[0]'",
    ),
    (
        "allAuthenticatedUsers may invoke the internal service",
        {
            "internal_invokers": '["serviceAccount:a@b.iam.gserviceaccount.com", '
            '"allAuthenticatedUsers"]'
        },
        None,
        f"'{P}:internal_invokers[1]'",
    ),
    (
        "invoker without a kind",
        {"internal_invokers": '["orders@example.com"]'},
        None,
        "internal_invokers[0]",
    ),
    ("invokers not a list", {"internal_invokers": "serviceAccount:x"}, None, "internal_invokers"),
    # The service checks each caller's ID token's email, never a group's or a domain's.
    (
        "a group invoker",
        {"internal_invokers": '["group:ops@example.com"]'},
        None,
        "internal_invokers[0]",
    ),
    (
        "a domain invoker",
        {"internal_invokers": '["domain:example.com"]'},
        None,
        "internal_invokers[0]",
    ),
    (
        "a principalSet invoker",
        {"internal_invokers": '["principalSet://goog/public:all"]'},
        None,
        "internal_invokers[0]",
    ),
    (
        "an invoker without an email",
        {"internal_invokers": '["user:ops"]'},
        None,
        "internal_invokers[0]",
    ),
    (
        "public_domain with scheme",
        {"public_domain": "https://auth.example.com"},
        None,
        f"'{P}:public_domain'",
    ),
    ("public_domain with path", {"public_domain": "auth.example.com/x"}, None, "public_domain"),
    ("public_domain with port", {"public_domain": "auth.example.com:443"}, None, "public_domain"),
    ("schedule of 4 fields", {"refresh_schedule": "*/5 * * *"}, None, f"'{P}:refresh_schedule'"),
    ("schedule not cron", {"refresh_schedule": "every 5 minutes"}, None, "refresh_schedule"),
    ("missing gcp:project", {"gcp:project": None}, None, "'gcp:project'"),
    ("bad gcp:project", {"gcp:project": "My Project"}, None, "'gcp:project'"),
    ("missing gcp:region", {"gcp:region": None}, None, "'gcp:region'"),
    ("image without tag", {"image": "gateway"}, None, f"'{P}:image'"),
    ("image with scheme", {"image": "https://example.com/gateway:1"}, None, f"'{P}:image'"),
    ("bad alert_email", {"alert_email": "ops"}, None, f"'{P}:alert_email'"),
    ("name_prefix too long", {"name_prefix": "wcg-production-x"}, None, f"'{P}:name_prefix'"),
    ("name_prefix uppercase", {"name_prefix": "WCG"}, None, f"'{P}:name_prefix'"),
    ("name_prefix trailing hyphen", {"name_prefix": "wcg-"}, None, f"'{P}:name_prefix'"),
    ("bad firestore_database", {"firestore_database": "DB"}, None, "firestore_database"),
]


@pytest.mark.parametrize(
    ("overrides", "secret_keys", "key"),
    [pytest.param(o, s, k, id=i) for i, o, s, k in BAD_CONFIGS],
)
def test_bad_config_names_the_key_and_the_fix(
    overrides: dict[str, str | None], secret_keys: list[str] | None, key: str
) -> None:
    message = problems_of(base_config(**overrides), secret_keys)
    line = next((line for line in message.splitlines() if key in line), None)
    assert line is not None, f"{key} not named in:\n{message}"
    assert "pulumi config set" in line
    for value in SECRET_VALUES.values():
        assert value not in message


def test_internal_invokers_are_read_once_each() -> None:
    orders = "serviceAccount:orders@p.iam.gserviceaccount.com"
    config = parse(
        base_config(internal_invokers=f'["{orders}", "user:ops@example.com", "{orders}"]')
    )
    assert config.internal_invokers == (orders, "user:ops@example.com")
    assert config.invoker_emails == ("orders@p.iam.gserviceaccount.com", "ops@example.com")
    assert parse(base_config()).internal_invokers == ()


def test_group_and_domain_invokers_are_refused_with_the_reason() -> None:
    message = problems_of(base_config(internal_invokers='["group:ops@example.com"]'))
    assert "group:ops@example.com" in message
    assert "ID token" in message and "serviceAccount:<email>" in message


def test_plain_text_secret_asks_for_secret() -> None:
    secret_keys = [k for k in SECRET_VALUES if k != f"{APPID_B}_token"]
    message = problems_of(base_config(), secret_keys)
    assert f"pulumi config set --secret {APPID_B}_token" in message
    assert SECRET_VALUES[f"{APPID_B}_token"] not in message


def test_bad_secret_values_are_never_shown() -> None:
    bad = {
        f"{APPID_A}_token": "Leaky-Token-Value!",
        f"{APPID_A}_encoding_aes_key": "LeakyAesKeyValue0123456789",
        f"{APPID_A}_previous_encoding_aes_key": "Leaky+Previous+Key",
        f"{APPID_B}_appsecret": "leaky secret with spaces",
    }
    plain = {f"{APPID_B}_token"}  # set in plain text: must not be shown either
    secret_keys = [k for k in SECRET_VALUES if k not in plain]
    with pytest.raises(ConfigError) as caught:
        parse(base_config(**bad), secret_keys)
    message = str(caught.value)
    assert len(caught.value.problems) == len(bad) + len(plain)
    for value in [*bad.values(), SECRET_VALUES[f"{APPID_B}_token"]]:
        assert value not in message
        assert value not in repr(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        parse(
            base_config(**{"gcp:project": None, "max_instances": "ten", f"{APPID_A}_token": None})
        )
    error = caught.value
    assert len(error.problems) == 3
    message = str(error)
    assert all(problem in message.splitlines()[i + 1] for i, problem in enumerate(error.problems))
    assert "gcp:project" in message and "max_instances" in message and "_token" in message


def test_the_error_prints_cleanly_in_pulumi() -> None:
    # Pulumi logs a RunError's message alone; any other exception comes with a traceback.
    assert issubclass(ConfigError, pulumi.RunError)


def test_unknown_key_suggests_the_known_one() -> None:
    message = problems_of(base_config(alert_emial="ops@example.com"))
    assert f"'{P}:alert_emial'" in message and "did you mean 'alert_email'" in message
    assert "pulumi config rm alert_emial" in message


def test_secret_for_an_unlisted_component_is_unknown() -> None:
    stray = "wx1111111111111111_appsecret"
    message = problems_of(base_config(**{stray: "StrayValue123"}), [*SECRET_VALUES, stray])
    assert f"unknown config '{P}:{stray}'" in message
    assert "StrayValue123" not in message


def test_default_name_prefix_too_long_for_the_stack() -> None:
    with pytest.raises(ConfigError) as caught:
        parse(base_config(), stack="production-east")
    assert "name_prefix" in str(caught.value) and "production-east" in str(caught.value)


def test_repr_shows_no_secret() -> None:
    text = repr(parse(base_config()))
    for value in SECRET_VALUES.values():
        assert value not in text


def test_read_config_uses_pulumis_secret_flags() -> None:
    """Through the real reader: a key set without --secret fails the whole program."""
    secret_keys = [k for k in SECRET_VALUES if k != f"{APPID_A}_encoding_aes_key"]
    with pytest.raises(ConfigError) as caught:
        run_program(base_config(), secret_keys)
    assert f"{APPID_A}_encoding_aes_key" in str(caught.value)
    assert "--secret" in str(caught.value)
