"""Log-based metrics on the service's structured logs, and one alert policy per metric.

The event names are the service's own (``service/log_events.py``), so a rename there
renames the metric's filter too; tests/infra checks that every event has its metric.

The metrics are foundation (``LogMetrics``: their filters need only the services' names),
the policies come with the services (``GatewayAlerts``): Cloud Monitoring answers 404
"Cannot find metric(s)" for minutes after a log-based metric is created, so a policy made
right after its metric fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_gcp as gcp

from infra.config import GatewayConfig
from infra.names import ResourceNames
from service import log_events

WINDOW = "300s"
# An incident whose condition has had no data for this long closes by itself.
AUTO_CLOSE = "1800s"


@dataclass(frozen=True)
class LogAlert:
    name: str  # of the log-based metric, after the name prefix
    events: tuple[str, ...]  # values of jsonPayload.event that the metric counts
    kind: Literal["any", "absent"]  # alert on any occurrence, or on none for `absent_for`
    title: str
    severity: Literal["CRITICAL", "ERROR", "WARNING"]
    documentation: str
    absent_for: str = "900s"


LOG_ALERTS = (
    LogAlert(
        name="refresh-failures",
        events=(
            log_events.AUTHORIZER_REFRESH_FAILED,
            log_events.COMPONENT_TOKEN_REFRESH_FAILED,
            log_events.AUTHORIZER_QUOTA_EXCEEDED,
        ),
        kind="any",
        title="WeChat token refresh failures",
        severity="ERROR",
        documentation="""\
A component token or an authorizer token could not be refreshed (or WeChat's quota,
errcode 45009, stopped a refresh). Tokens keep working until they expire, so act now:

1. Read what failed: `gcloud logging read 'jsonPayload.event="authorizer_refresh_failed"
   OR jsonPayload.event="component_token_refresh_failed"' --limit 10` (each line names the
   component, the authorizer and WeChat's error). The internal service's `/healthz` shows
   each component's `last_error` as well, but with `internal_ingress: internal` (the
   default) it answers only from inside the project's VPC: from a VM on the stack's
   network, `curl -H "Authorization: Bearer $(gcloud auth print-identity-token)"
   <internal_url>/healthz`, or from anywhere while `internal_ingress` is `all`.
2. errcode **61004**: the caller's IP is not whitelisted. Add the stack's `egress_ip` output
   to the third-party platform's IP whitelist in the WeChat open platform console.
3. errcode **45009**: the daily quota is spent; the service pauses and retries later. Clear
   it in the console if it keeps happening.
4. Otherwise read the service's logs for the event names in this metric's filter.
""",
    ),
    LogAlert(
        name="reauthorization-required",
        events=(log_events.REFRESH_TOKEN_REJECTED,),
        kind="any",
        title="A merchant must authorize again (errcode 61023)",
        severity="WARNING",
        documentation="""\
WeChat refused an authorizer's refresh token (errcode **61023**): the gateway can no longer
act for that merchant. The authorizer is marked `needs_reauthorization`.

Send the merchant a new authorization link (POST
`/api/v1/components/<component>/authorize-links` on the internal service) and ask them to
authorize again. The log entry names the authorizer's appid.
""",
    ),
    LogAlert(
        name="credential-write-failures",
        events=(log_events.CREDENTIAL_WRITE_FAILED,),
        kind="any",
        title="A credential WeChat issued could not be stored",
        severity="CRITICAL",
        documentation="""\
WeChat answered a call that changed its side (an authorization code exchanged, an authorizer
token issued, a refresh token rotated), and storing the answer in Firestore failed. The
gateway retries the write with backoff; the log lines say each attempt, and a CRITICAL line
says it gave up.

1. Check Firestore's health and quotas in the console, and the service's errors around the
   time of the alert.
2. Once Firestore is healthy, run `POST /api/v1/components/<component>/sync` on the
   internal service: it restores every authorization WeChat lists with its refresh token.
3. An authorizer whose refresh token rotated in the lost answer may then need the merchant
   to authorize again (a later 61023 alert names it).
""",
    ),
    LogAlert(
        name="ticket-stale",
        events=(log_events.TICKET_STALE,),
        kind="any",
        title="WeChat component_verify_ticket is stale",
        severity="ERROR",
        documentation="""\
No fresh `component_verify_ticket` arrived for a component. WeChat pushes one every 10
minutes; without it no new component token can be obtained once the current one expires.

1. In the WeChat open platform console, check that the 授权事件接收URL is the stack's
   `authorization_event_urls` output for that component.
2. Check that the public service answers those pushes with `success` (its logs show each
   push, and any signature or decryption error).
3. Check that the Token and EncodingAESKey in the stack's secrets match the console.
""",
    ),
    LogAlert(
        name="pushes-not-delivered",
        events=(log_events.PUSH_NOT_DELIVERED,),
        kind="any",
        title="WeChat pushes could not be handed to Pub/Sub",
        severity="ERROR",
        documentation="""\
The public service answered WeChat 503 for a message or a notice because its `pubsub`
route's topic did not acknowledge it within MESSAGE_PUBLISH_DEADLINE (3 s). WeChat tries a
push 3 times; a message whose tries all fail is dropped by WeChat and its user sees
"该公众号暂时无法提供服务". Nothing answered `success` is lost.

1. Check Pub/Sub's status and the topic named in the log lines' `error` (does it exist, in
   the project the service runs in?).
2. Check that the runtime service account still has `roles/pubsub.publisher` on it
   (`make deploy` restores it).
3. The log lines name the component and the account of each push refused.
""",
    ),
    LogAlert(
        name="sweep-done",
        events=(log_events.SWEEP_DONE,),
        kind="absent",
        title="The token refresh sweep has not finished in 15 minutes",
        severity="CRITICAL",
        documentation="""\
No refresh sweep finished in 15 minutes, so tokens are not being renewed and will expire.

1. In Cloud Scheduler, check the stack's `scheduler_job`: is it enabled, and what did its
   last runs answer (a 401/403 is an IAM problem, a 5xx or a timeout is the service)?
2. Check the internal service's logs for POST /tasks/refresh, and (the sweep fans out:
   SWEEP_MODE=fanout) for POST /tasks/refresh-shard: the sweep is done once its last shard
   is. Shards that keep failing end in the `sweep_dead_letter_subscription` output (the
   "Messages were dead-lettered" alert).
""",
    ),
)


DEAD_LETTERS_TITLE = "Messages were dead-lettered"
DEAD_LETTERS_DOCUMENTATION = """\
A message routed to Pub/Sub could not be delivered to a subscriber's endpoint in its
`max_delivery_attempts`, and now waits in a dead-letter subscription (kept 7 days). The
incident names the subscription (`<topic>-dead-letter`; the stack's
`message_dead_letter_subscriptions` output lists them). The alert clears once it is empty.

1. Read them without acknowledging: `gcloud pubsub subscriptions pull <subscription>
   --limit=10`. The attribute `CloudPubSubDeadLetterSourceSubscription` names the push
   subscription that gave up on it.
2. Check that subscription's endpoint: is it up, does it answer 2xx within its
   `ack_deadline`, and has its account (the `message_subscription_accounts` output) been
   granted `roles/run.invoker` on the endpoint's Cloud Run service?
3. Once it is fixed, publish the messages again to the route's topic (their `dedup_key` lets
   the subscriber drop any it already has), then acknowledge them here.

For `<prefix>-refresh-shards-dead-letter` (the `sweep_dead_letter_subscription` output), a
shard of the refresh sweep failed 5 deliveries to the internal service's
`/tasks/refresh-shard`. No token is lost with it: its authorizers stay due and every sweep
publishes them again, but while the cause lasts they are renewed only by token requests.
Read the internal service's logs for POST /tasks/refresh-shard (a 401/403 is the
`sweep_push_account` output's roles/run.invoker or INTERNAL_INVOKERS; a timeout is a shard
longer than `sweep_ack_deadline`: lower `sweep_shard_size`), then acknowledge the shards:
`gcloud pubsub subscriptions pull <subscription> --auto-ack --limit=100`.
"""


def dead_letter_filter(subscriptions: Sequence[str]) -> str:
    """The backlog of the dead-letter subscriptions: above 0 while dead letters wait."""
    ids = " OR ".join(f'resource.labels.subscription_id="{s}"' for s in subscriptions)
    return (
        'resource.type="pubsub_subscription" AND '
        'metric.type="pubsub.googleapis.com/subscription/num_undelivered_messages" AND '
        f"({ids})"
    )


def metric_filter(alert: LogAlert, service_names: Sequence[str]) -> str:
    services = " OR ".join(f'resource.labels.service_name="{name}"' for name in service_names)
    events = " OR ".join(f'jsonPayload.event="{event}"' for event in alert.events)
    return f'resource.type="cloud_run_revision" AND ({services}) AND ({events})'


class LogMetrics(pulumi.ComponentResource):
    """One log-based metric per ``LOG_ALERTS`` entry, created with the foundation."""

    def __init__(
        self,
        name: str,
        config: GatewayConfig,
        service_names: Sequence[str],
        depends_on: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("wcg:gateway:LogMetrics", name, None, opts)
        names = ResourceNames(config.name_prefix)
        first = pulumi.ResourceOptions(parent=self, depends_on=list(depends_on))
        self.by_alert: dict[str, gcp.logging.Metric] = {
            alert.name: gcp.logging.Metric(
                alert.name,
                project=config.project,
                name=names.log_metric(alert.name),
                description=f"Log entries with jsonPayload.event in {list(alert.events)}",
                filter=metric_filter(alert, service_names),
                metric_descriptor=gcp.logging.MetricMetricDescriptorArgs(
                    metric_kind="DELTA", value_type="INT64", unit="1"
                ),
                opts=first,
            )
            for alert in LOG_ALERTS
        }
        self.register_outputs({"metrics": [m.name for m in self.by_alert.values()]})


class GatewayAlerts(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        config: GatewayConfig,
        metrics: LogMetrics,
        depends_on: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
        dead_letter_subscriptions: Sequence[str] = (),
    ) -> None:
        super().__init__("wcg:gateway:GatewayAlerts", name, None, opts)
        first = pulumi.ResourceOptions(parent=self, depends_on=list(depends_on))
        alert_strategy = gcp.monitoring.AlertPolicyAlertStrategyArgs(auto_close=AUTO_CLOSE)
        channels: list[pulumi.Input[str]] = []
        if config.alert_email is not None:
            self.email_channel = gcp.monitoring.NotificationChannel(
                "email",
                project=config.project,
                type="email",
                display_name=f"{config.name_prefix} alerts",
                labels={"email_address": config.alert_email},
                opts=first,
            )
            channels.append(self.email_channel.name)
        self.policies: list[gcp.monitoring.AlertPolicy] = []
        for alert in LOG_ALERTS:
            metric = metrics.by_alert[alert.name]
            self.policies.append(
                gcp.monitoring.AlertPolicy(
                    alert.name,
                    project=config.project,
                    display_name=f"{config.name_prefix}: {alert.title}",
                    combiner="OR",
                    severity=alert.severity,
                    conditions=[_condition(alert, metric)],
                    documentation=gcp.monitoring.AlertPolicyDocumentationArgs(
                        content=alert.documentation,
                        mime_type="text/markdown",
                        subject=f"{config.name_prefix}: {alert.title}",
                    ),
                    notification_channels=channels,
                    alert_strategy=alert_strategy,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[*depends_on, metric]),
                )
            )
        if dead_letter_subscriptions:
            # Pub/Sub's own metric, no log-based one: dead lettering is Pub/Sub's doing.
            self.policies.append(
                gcp.monitoring.AlertPolicy(
                    "dead-letters",
                    project=config.project,
                    display_name=f"{config.name_prefix}: {DEAD_LETTERS_TITLE}",
                    combiner="OR",
                    severity="ERROR",
                    conditions=[
                        _above_zero(
                            DEAD_LETTERS_TITLE,
                            dead_letter_filter(dead_letter_subscriptions),
                            # One series per subscription: the incident names it.
                            gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
                                alignment_period=WINDOW, per_series_aligner="ALIGN_MAX"
                            ),
                        )
                    ],
                    documentation=gcp.monitoring.AlertPolicyDocumentationArgs(
                        content=DEAD_LETTERS_DOCUMENTATION,
                        mime_type="text/markdown",
                        subject=f"{config.name_prefix}: {DEAD_LETTERS_TITLE}",
                    ),
                    notification_channels=channels,
                    alert_strategy=alert_strategy,
                    opts=first,
                )
            )
        self.register_outputs({"policies": [p.name for p in self.policies]})


def _condition(
    alert: LogAlert, metric: gcp.logging.Metric
) -> gcp.monitoring.AlertPolicyConditionArgs:
    series = metric.name.apply(
        lambda name: (
            f'metric.type="logging.googleapis.com/user/{name}" '
            'AND resource.type="cloud_run_revision"'
        )
    )
    if alert.kind == "absent":
        return gcp.monitoring.AlertPolicyConditionArgs(
            display_name=alert.title,
            condition_absent=gcp.monitoring.AlertPolicyConditionConditionAbsentArgs(
                filter=series,
                duration=alert.absent_for,
                # Summed over all revisions: a new revision's series replacing the old one's
                # must not look like an absence.
                aggregations=[
                    gcp.monitoring.AlertPolicyConditionConditionAbsentAggregationArgs(
                        alignment_period=WINDOW,
                        per_series_aligner="ALIGN_SUM",
                        cross_series_reducer="REDUCE_SUM",
                    )
                ],
                trigger=gcp.monitoring.AlertPolicyConditionConditionAbsentTriggerArgs(count=1),
            ),
        )
    return _above_zero(
        alert.title,
        series,
        gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs(
            alignment_period=WINDOW,
            per_series_aligner="ALIGN_SUM",
            cross_series_reducer="REDUCE_SUM",
        ),
    )


def _above_zero(
    title: str,
    series: pulumi.Input[str],
    aggregation: gcp.monitoring.AlertPolicyConditionConditionThresholdAggregationArgs,
) -> gcp.monitoring.AlertPolicyConditionArgs:
    """Fires as soon as one aligned point of ``series`` is above 0."""
    return gcp.monitoring.AlertPolicyConditionArgs(
        display_name=title,
        condition_threshold=gcp.monitoring.AlertPolicyConditionConditionThresholdArgs(
            filter=series,
            comparison="COMPARISON_GT",
            threshold_value=0,
            duration="0s",
            aggregations=[aggregation],
            trigger=gcp.monitoring.AlertPolicyConditionConditionThresholdTriggerArgs(count=1),
        ),
    )
