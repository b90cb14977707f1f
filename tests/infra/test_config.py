"""infra/config.py: defaults, and bad configuration failing clearly, all problems at once."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

import pulumi
import pytest

from infra.config import ConfigError, GatewayConfig, MessageSubscription, parse_config
from service.routes import RouteError, parse_routes
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
ENDPOINT = "https://orders.example.com/wechat"


def routes(*items: dict[str, Any]) -> str:
    return json.dumps(list(items))


def subscriptions(*items: dict[str, Any]) -> str:
    """Subscriptions on the topic of ALL_ROUTE: each item overrides a valid one."""
    return json.dumps(
        [{"name": "orders", "topic": "msgs", "push_endpoint": ENDPOINT, **i} for i in items]
    )


ALL_ROUTE = {"name": "all", "pubsub": "msgs"}
WITH_ROUTES = {"message_routes": routes(ALL_ROUTE)}


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
    # The public service stays warm; the internal one may start cold.
    assert (config.min_instances, config.internal_min_instances, config.max_instances) == (1, 0, 10)
    assert (config.workers, config.threads, config.concurrency) == (1, 8, 8)
    assert config.firestore_import is False
    assert config.internal_ingress == "internal"
    assert config.firestore_location == REGION
    assert config.firestore_database == "(default)"
    assert config.name_prefix == "wcg-dev"
    assert config.public_domain is None and config.alert_email is None
    assert config.message_routes is None
    assert config.message_topics == () and config.message_subscriptions == ()


def test_values_are_read() -> None:
    config = parse(
        base_config(
            min_instances="2",
            internal_min_instances="1",
            max_instances="20",
            workers="2",
            threads="16",
            firestore_import="true",
            internal_ingress="all",
            public_domain="auth.example.com",
            refresh_schedule="*/2 * * * *",
            firestore_location="nam5",
            firestore_database="gateway",
            name_prefix="wcg-prod",
        )
    )
    assert (config.min_instances, config.internal_min_instances, config.max_instances) == (2, 1, 20)
    assert (config.workers, config.threads, config.concurrency) == (2, 16, 32)
    assert config.firestore_import is True
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
    (
        "internal min above max",
        {"internal_min_instances": "3", "max_instances": "2"},
        None,
        f"'{P}:internal_min_instances'",
    ),
    ("3 workers: no 3-CPU instance", {"workers": "3"}, None, f"'{P}:workers'"),
    ("no threads", {"threads": "0"}, None, f"'{P}:threads'"),
    (
        "more concurrency than Cloud Run allows",
        {"workers": "8", "threads": "200"},
        None,
        f"'{P}:threads'",
    ),
    ("firestore_import not a bool", {"firestore_import": "yes"}, None, f"'{P}:firestore_import'"),
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
    ("routes not a list", {"message_routes": '{"name": "all"}'}, None, f"'{P}:message_routes'"),
    (
        "route reply over http",
        {"message_routes": routes({"name": "bot", "reply": "http://bot.example.com/x"})},
        None,
        f"'{P}:message_routes[0]'",
    ),
    (
        "route reply to localhost, which the service allows but Cloud Run cannot reach",
        {
            "message_routes": routes(
                {"name": "bot", "match": {"source": "messages"}, "reply": "http://127.0.0.1:9/x"}
            )
        },
        None,
        f"'{P}:message_routes[0]'",
    ),
    (
        "route without a delivery",
        {"message_routes": routes(ALL_ROUTE, {"name": "nowhere"})},
        None,
        f"'{P}:message_routes[1]'",
    ),
    (
        "route named twice",
        {"message_routes": routes(ALL_ROUTE, {"name": "all", "pubsub": "other"})},
        None,
        f"'{P}:message_routes[1]'",
    ),
    (
        "route to a topic of another project",
        {"message_routes": routes({"name": "x", "pubsub": "projects/someone-else/topics/orders"})},
        None,
        f"'{P}:message_routes[0].pubsub'",
    ),
    (
        "route to a dead-letter topic",
        {"message_routes": routes({"name": "x", "pubsub": "msgs-dead-letter"})},
        None,
        f"'{P}:message_routes[0].pubsub'",
    ),
    (
        "route topic too long for its dead-letter topic",
        {"message_routes": routes({"name": "x", "pubsub": "t" * 244})},
        None,
        f"'{P}:message_routes[0].pubsub'",
    ),
    (
        "subscriptions not a list",
        {**WITH_ROUTES, "message_subscriptions": '{"name": "orders"}'},
        None,
        f"'{P}:message_subscriptions'",
    ),
    (
        "subscription to an unknown topic",
        {**WITH_ROUTES, "message_subscriptions": subscriptions({"topic": "other"})},
        None,
        f"'{P}:message_subscriptions[0].topic'",
    ),
    (
        "subscription without routes",
        {"message_subscriptions": subscriptions({})},
        None,
        f"'{P}:message_subscriptions[0].topic'",
    ),
    (
        "subscription pushing over http",
        {
            **WITH_ROUTES,
            "message_subscriptions": subscriptions({"push_endpoint": "http://o.example.com"}),
        },
        None,
        f"'{P}:message_subscriptions[0].push_endpoint'",
    ),
    (
        "subscription endpoint without a host",
        {**WITH_ROUTES, "message_subscriptions": subscriptions({"push_endpoint": "https:///x"})},
        None,
        f"'{P}:message_subscriptions[0].push_endpoint'",
    ),
    (
        "max_delivery_attempts under 5",
        {**WITH_ROUTES, "message_subscriptions": subscriptions({"max_delivery_attempts": 4})},
        None,
        f"'{P}:message_subscriptions[0].max_delivery_attempts'",
    ),
    (
        "max_delivery_attempts over 100",
        {**WITH_ROUTES, "message_subscriptions": subscriptions({"max_delivery_attempts": "101"})},
        None,
        f"'{P}:message_subscriptions[0].max_delivery_attempts'",
    ),
    (
        "max_delivery_attempts not whole",
        {**WITH_ROUTES, "message_subscriptions": subscriptions({"max_delivery_attempts": 7.5})},
        None,
        f"'{P}:message_subscriptions[0].max_delivery_attempts'",
    ),
    (
        "duplicate subscription names",
        {**WITH_ROUTES, "message_subscriptions": subscriptions({}, {})},
        None,
        f"'{P}:message_subscriptions[1].name'",
    ),
    (
        "subscription named like a dead-letter one",
        {**WITH_ROUTES, "message_subscriptions": subscriptions({"name": "msgs-dead-letter"})},
        None,
        f"'{P}:message_subscriptions[0].name'",
    ),
    (
        "subscription id too short",
        {**WITH_ROUTES, "message_subscriptions": subscriptions({"name": "ab"})},
        None,
        f"'{P}:message_subscriptions[0].name'",
    ),
    (
        "minimum_backoff above maximum_backoff",
        {
            **WITH_ROUTES,
            "message_subscriptions": subscriptions({"minimum_backoff": 60, "maximum_backoff": 30}),
        },
        None,
        f"'{P}:message_subscriptions[0].minimum_backoff'",
    ),
    (
        "maximum_backoff over 600",
        {**WITH_ROUTES, "message_subscriptions": subscriptions({"maximum_backoff": 601})},
        None,
        f"'{P}:message_subscriptions[0].maximum_backoff'",
    ),
    (
        "ack_deadline under 10",
        {**WITH_ROUTES, "message_subscriptions": subscriptions({"ack_deadline": 5})},
        None,
        f"'{P}:message_subscriptions[0].ack_deadline'",
    ),
    (
        "filter over 256 bytes",
        {**WITH_ROUTES, "message_subscriptions": subscriptions({"filter": "x" * 257})},
        None,
        f"'{P}:message_subscriptions[0].filter'",
    ),
    (
        "subscription not an object",
        {**WITH_ROUTES, "message_subscriptions": '["orders"]'},
        None,
        f"'{P}:message_subscriptions[0]'",
    ),
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


BAD_ROUTES = [
    {"name": "bot", "reply": "http://bot.example.com/x"},
    {"name": "both", "pubsub": "msgs", "reply": "https://bot.example.com/x"},
    {"name": "odd", "match": {"colour": "red"}, "pubsub": "msgs"},
    {
        "name": "slow",
        "match": {"source": "messages"},
        "reply": "https://b.example.com",
        "deadline": 9,
    },
    {"pubsub": "msgs"},
    {"name": "g", "pubsub": "goog-topic"},
]


@pytest.mark.parametrize("route", BAD_ROUTES, ids=lambda r: str(r.get("name")))
def test_a_bad_route_is_the_services_own_error_with_the_key(route: dict[str, Any]) -> None:
    with pytest.raises(RouteError) as refused:
        parse_routes(json.dumps([route]))
    message = problems_of(base_config(message_routes=routes(route)))
    line = next(line for line in message.splitlines() if f"'{P}:message_routes[0]'" in line)
    assert str(refused.value) in line
    assert "pulumi config set --path 'message_routes[0]." in line


def test_every_bad_route_is_reported_at_once() -> None:
    good = {"name": "all", "pubsub": "msgs"}
    with pytest.raises(ConfigError) as caught:
        parse(base_config(message_routes=routes(BAD_ROUTES[0], good, BAD_ROUTES[1], BAD_ROUTES[4])))
    keys = [p.split("'")[1] for p in caught.value.problems]
    assert keys == [f"{P}:message_routes[{i}]" for i in (0, 2, 3)]
    # The service said "route 0" of the one route it was given: the key has the index.
    assert "route 0" not in caught.value.problems[2]


def test_a_reply_route_without_source_messages_is_told_to_set_it() -> None:
    route = {"name": "bot", "match": {"msg_type": "text"}, "reply": "https://b.example.com"}
    message = problems_of(base_config(message_routes=routes(route)))
    assert "needs match.source" in message
    assert "pulumi config set --path 'message_routes[0].match.source' messages" in message


@pytest.mark.parametrize(
    ("route", "field"),
    [
        ({"name": "d", "pubsub": "msgs", "deadline": 3}, "deadline"),
        ({"name": "u", "pubsub": "msgs", "colour": "red"}, "colour"),
    ],
)
def test_a_field_that_does_not_belong_is_to_be_removed(route: dict[str, Any], field: str) -> None:
    message = problems_of(base_config(message_routes=routes(route)))
    assert f"pulumi config rm --path 'message_routes[0].{field}'" in message


def test_an_unknown_subscription_key_suggests_the_known_one() -> None:
    message = problems_of(
        base_config(**WITH_ROUTES, message_subscriptions=subscriptions({"max_attempts": 20}))
    )
    assert f"unknown config '{P}:message_subscriptions[0].max_attempts'" in message
    assert "did you mean 'max_delivery_attempts'" in message
    assert "pulumi config rm --path 'message_subscriptions[0].max_attempts'" in message


def test_an_endpoint_with_a_password_is_not_shown() -> None:
    endpoint = "https://user:s3cretPassw0rd@orders.example.com/x"
    message = problems_of(
        base_config(**WITH_ROUTES, message_subscriptions=subscriptions({"push_endpoint": endpoint}))
    )
    assert "message_subscriptions[0].push_endpoint" in message
    assert "s3cretPassw0rd" not in message


def test_routes_and_subscriptions_are_read() -> None:
    route_list = [
        {"name": "bot", "match": {"source": "messages"}, "reply": "https://bot.example.com/x"},
        {"name": "all", "pubsub": "msgs"},
        {"name": "events", "match": {"source": "events"}, "pubsub": "events"},
        # The same topic by its path in the stack's project.
        {"name": "again", "pubsub": f"projects/{GCP_PROJECT}/topics/msgs"},
    ]
    config = parse(
        base_config(
            message_routes=routes(*route_list),
            message_subscriptions=subscriptions(
                {},
                {
                    "name": "crm",
                    "topic": "events",
                    "push_endpoint": "https://crm.example.com/hook",
                    "audience": "https://crm.example.com",
                    "filter": 'attributes.event = "subscribe"',
                    # As `pulumi config set --path` may store them: digits.
                    "max_delivery_attempts": "25",
                    "minimum_backoff": 0,
                    "maximum_backoff": "60",
                    "ack_deadline": 600,
                },
            ),
        )
    )
    assert config.message_routes is not None
    assert json.loads(config.message_routes) == route_list
    assert config.message_topics == ("msgs", "events")
    assert config.message_subscriptions == (
        MessageSubscription("orders", "msgs", ENDPOINT, ENDPOINT),
        MessageSubscription(
            "crm",
            "events",
            "https://crm.example.com/hook",
            "https://crm.example.com",
            'attributes.event = "subscribe"',
            max_delivery_attempts=25,
            minimum_backoff=0,
            maximum_backoff=60,
            ack_deadline=600,
        ),
    )
    defaults = config.message_subscriptions[0]
    assert (defaults.max_delivery_attempts, defaults.minimum_backoff) == (10, 10)
    assert (defaults.maximum_backoff, defaults.ack_deadline) == (600, 30)
    assert defaults.filter is None


def test_bad_routes_do_not_make_the_subscriptions_topics_wrong() -> None:
    """With a bad route the topics are unknown: only the route is reported."""
    with pytest.raises(ConfigError) as caught:
        parse(
            base_config(
                message_routes=routes({"name": "all", "pubsub": "msgs", "deadline": 1}),
                message_subscriptions=subscriptions({}),
            )
        )
    assert len(caught.value.problems) == 1
    assert "message_routes[0]" in caught.value.problems[0]
