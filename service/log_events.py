"""The ``event`` field of the log lines that alerts count (Cloud Logging: ``jsonPayload.event``).

The deployment's log-based metrics filter on these names (``infra/alerts.py`` imports
them), so every event here needs a metric there.
"""

SWEEP_DONE = "refresh_sweep_done"
AUTHORIZER_REFRESH_FAILED = "authorizer_refresh_failed"
AUTHORIZER_QUOTA_EXCEEDED = "authorizer_quota_exceeded"
COMPONENT_TOKEN_REFRESH_FAILED = "component_token_refresh_failed"
REFRESH_TOKEN_REJECTED = "refresh_token_rejected"
TICKET_STALE = "ticket_stale"
# WeChat answered a call that changed its side, and storing the answer failed (retried).
CREDENTIAL_WRITE_FAILED = "credential_write_failed"
# A push answered 503 because its Pub/Sub route did not take it in time (WeChat retries).
PUSH_NOT_DELIVERED = "push_not_delivered"
