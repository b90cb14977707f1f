"""Fixtures: the program run once per configuration, shared by the tests that read it."""

from __future__ import annotations

import json

import pytest

from tests.infra.pulumi_mocks import GCP_PROJECT, Deployment, base_config, run_program

ORDERS = "serviceAccount:orders@example-project.iam.gserviceaccount.com"
OPS = "user:ops@example.com"


@pytest.fixture(scope="session")
def deployment() -> Deployment:
    """The full stack: image set, two components (one with a previous AES key), alerts."""
    return run_program(base_config())


@pytest.fixture(scope="session")
def foundation() -> Deployment:
    """The stack before the first image: `image` unset."""
    return run_program(base_config(image=None))


@pytest.fixture(scope="session")
def with_domain() -> Deployment:
    """A custom public domain, the internal service reachable from outside the VPC, and the
    provider's own callers allowed to invoke it."""
    return run_program(
        base_config(
            public_domain="auth.example.com",
            internal_ingress="all",
            internal_invokers=f'["{ORDERS}", "{OPS}"]',
        )
    )


# Routes as the service reads them: a passive-reply bot, then two topics (one of them also
# named by its full path in the stack's project, which is the same topic).
MESSAGE_ROUTES = [
    {
        "name": "bot",
        "match": {"source": "messages", "msg_type": "text"},
        "reply": "https://bot.example.com/wechat",
        "deadline": 3,
    },
    {"name": "authorizations", "match": {"source": "events"}, "pubsub": "wechat-events"},
    {"name": "all", "pubsub": "wechat-messages"},
    {
        "name": "events-too",
        "match": {"msg_type": "event"},
        "pubsub": f"projects/{GCP_PROJECT}/topics/wechat-messages",
    },
]
MESSAGE_SUBSCRIPTIONS = [
    {
        "name": "orders",
        "topic": "wechat-messages",
        "push_endpoint": "https://orders-x7k2m9q3ra-df.a.run.app/wechat/messages",
        "filter": 'attributes.msg_type = "text"',
        "max_delivery_attempts": 20,
        "minimum_backoff": 5,
        "maximum_backoff": 300,
        "ack_deadline": 60,
    },
    # Every default.
    {"name": "crm", "topic": "wechat-messages", "push_endpoint": "https://crm.example.com/hook"},
    {
        "name": "onboarding",
        "topic": "wechat-events",
        "push_endpoint": "https://onboarding-x7k2m9q3ra-df.a.run.app/authorized",
        "audience": "https://onboarding-x7k2m9q3ra-df.a.run.app",
    },
]


@pytest.fixture(scope="session")
def messaging() -> Deployment:
    """Message routes to two topics, three push subscriptions on them."""
    return run_program(
        base_config(
            message_routes=json.dumps(MESSAGE_ROUTES),
            message_subscriptions=json.dumps(MESSAGE_SUBSCRIPTIONS),
        )
    )
