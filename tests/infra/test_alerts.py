"""Alerts count the service's log events: each event once, and every event has a metric."""

from __future__ import annotations

import re
from typing import Any

from infra.alerts import LOG_ALERTS
from service import log_events
from tests.infra.pulumi_mocks import Deployment, base_config, run_program

METRIC = "gcp:logging/metric:Metric"
POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
CHANNEL = "gcp:monitoring/notificationChannel:NotificationChannel"
SERVICES = ("wcg-dev-public", "wcg-dev-internal")


def service_events() -> set[str]:
    return {
        value
        for name, value in vars(log_events).items()
        if name.isupper() and isinstance(value, str)
    }


def test_alert_events_are_the_services_log_events() -> None:
    infra_events = [event for alert in LOG_ALERTS for event in alert.events]
    assert len(infra_events) == len(set(infra_events))
    assert set(infra_events) == service_events()


def test_each_metric_counts_its_events_from_both_services(deployment: Deployment) -> None:
    metrics = {m.inputs["name"]: m for m in deployment.of_type(METRIC)}
    assert set(metrics) == {f"wcg-dev-{alert.name}" for alert in LOG_ALERTS}
    for alert in LOG_ALERTS:
        metric = metrics[f"wcg-dev-{alert.name}"]
        query = metric.inputs["filter"]
        assert 'resource.type="cloud_run_revision"' in query
        for service in SERVICES:
            assert f'resource.labels.service_name="{service}"' in query
        filtered = set(re.findall(r'jsonPayload\.event="([^"]+)"', query))
        assert filtered == set(alert.events), metric.name
        descriptor = metric.inputs["metricDescriptor"]
        assert (descriptor["metricKind"], descriptor["valueType"]) == ("DELTA", "INT64")


def test_refresh_failures_metric_has_the_failure_events(deployment: Deployment) -> None:
    # Spelled out: these three mean tokens are not being renewed.
    query = deployment.named(METRIC, "wcg-dev-refresh-failures").inputs["filter"]
    for event in (
        log_events.AUTHORIZER_REFRESH_FAILED,
        log_events.COMPONENT_TOKEN_REFRESH_FAILED,
        log_events.AUTHORIZER_QUOTA_EXCEEDED,
    ):
        assert f'jsonPayload.event="{event}"' in query


def _condition(policy_inputs: dict[str, Any]) -> dict[str, Any]:
    conditions = policy_inputs["conditions"]
    assert isinstance(conditions, list) and len(conditions) == 1
    condition = conditions[0]
    assert isinstance(condition, dict)
    return condition


def test_one_policy_per_metric(deployment: Deployment) -> None:
    policies = deployment.of_type(POLICY)
    assert len(policies) == len(LOG_ALERTS) + 1  # and the dead letters (the sweep's shards)
    channel = deployment.one(CHANNEL)
    assert channel.inputs["type"] == "email"
    assert channel.inputs["labels"] == {"email_address": "ops@example.com"}
    for metric in deployment.of_type(METRIC):
        (policy,) = [
            p
            for p in policies
            if metric.inputs["name"] in str(_condition(p.inputs))  # its filter names the metric
        ]
        condition = _condition(policy.inputs)
        absent = metric.inputs["name"] == "wcg-dev-sweep-done"
        if absent:
            rule = condition["conditionAbsent"]
            assert rule["duration"] == "900s"
            assert "conditionThreshold" not in condition
        else:
            rule = condition["conditionThreshold"]
            assert (rule["comparison"], rule["thresholdValue"]) == ("COMPARISON_GT", 0)
        assert isinstance(rule, dict)
        assert (
            f'metric.type="logging.googleapis.com/user/{metric.inputs["name"]}"' in (rule["filter"])
        )
        (aggregation,) = rule["aggregations"]
        assert aggregation["alignmentPeriod"] == "300s"
        # Summed across revisions: a deploy must not look like an absence.
        assert aggregation["crossSeriesReducer"] == "REDUCE_SUM"
        documentation = policy.inputs["documentation"]
        assert documentation["mimeType"] == "text/markdown"
        assert len(documentation["content"]) > 100
        assert policy.inputs["notificationChannels"] == [channel.state["name"]]
        assert metric.urn in policy.dependencies


def test_documentation_says_what_to_do(deployment: Deployment) -> None:
    docs = {p.name: p.inputs["documentation"]["content"] for p in deployment.of_type(POLICY)}
    assert "61004" in docs["refresh-failures"] and "egress_ip" in docs["refresh-failures"]
    assert "last_error" in docs["refresh-failures"]
    assert "61023" in docs["reauthorization-required"]
    assert "authoriz" in docs["reauthorization-required"].lower()
    assert "授权事件接收URL" in docs["ticket-stale"] and "success" in docs["ticket-stale"]
    assert "Cloud Scheduler" in docs["sweep-done"]
    assert "pubsub.publisher" in docs["pushes-not-delivered"]
    assert "MESSAGE_PUBLISH_DEADLINE" in docs["pushes-not-delivered"]


def test_no_channel_without_alert_email() -> None:
    run = run_program(base_config(alert_email=None))
    assert run.of_type(CHANNEL) == []
    policies = run.of_type(POLICY)
    assert len(policies) == len(LOG_ALERTS) + 1  # and the dead letters (the sweep's shards)
    for policy in policies:
        assert not policy.inputs.get("notificationChannels")


def test_metrics_come_with_the_foundation_and_policies_a_pass_later(
    foundation: Deployment, deployment: Deployment
) -> None:
    """Cloud Monitoring answers 404 "Cannot find metric(s)" for minutes after a log-based
    metric is created: the metrics are made in the first `pulumi up`, before any image, and
    the policies in the second, each after its metric."""
    assert {m.inputs["name"] for m in foundation.of_type(METRIC)} == {
        f"wcg-dev-{alert.name}" for alert in LOG_ALERTS
    }
    assert foundation.of_type(POLICY) == []
    metrics = {m.name: m for m in deployment.of_type(METRIC)}
    for policy in deployment.of_type(POLICY):
        if policy.name in metrics:
            assert deployment.depends_on(policy, metrics[policy.name]), policy.name


def test_incidents_close_by_themselves(deployment: Deployment, messaging: Deployment) -> None:
    policies = deployment.of_type(POLICY) + messaging.of_type(POLICY)
    assert any(p.name == "dead-letters" for p in policies)
    for policy in policies:
        assert policy.inputs["alertStrategy"] == {"autoClose": "1800s"}, policy.name


def test_the_runbook_works_with_the_default_internal_ingress(deployment: Deployment) -> None:
    """`curl <internal_url>/healthz` cannot reach an internal-only service from a laptop:
    the runbook starts from the logs, and says where /healthz answers."""
    docs = {p.name: p.inputs["documentation"]["content"] for p in deployment.of_type(POLICY)}
    runbook = docs["refresh-failures"]
    assert "gcloud logging read" in runbook
    assert "internal_ingress" in runbook and "VPC" in runbook
