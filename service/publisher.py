"""Publishing to Pub/Sub on WeChat's 5 s path: confirmed before the answer, bounded in time.

A message is answered ``success`` only once Pub/Sub has acknowledged it: then it is durable,
and Pub/Sub's retries and dead letters take over. If Pub/Sub does not acknowledge within
``deadline``, ``PublishError`` is raised, the message is answered 503, and WeChat's own
retries are the buffer. The client's retries are bounded by the same deadline, so a message
given up on here is not published later behind the answer's back (it may still be, if the
acknowledgement alone was lost: subscribers dedupe by ``dedup_key``).

Batching is on purpose: each message waits at most ``max_latency`` (5 ms by default,
MESSAGE_PUBLISH_MAX_LATENCY) for others to share its request; under load, batches of up to
100 messages cut the requests per message (make bench compares 0, 5 and 10 ms).
The client is made in the serving process on first use (gRPC channels do not survive a
fork) and finds the emulator through ``PUBSUB_EMULATOR_HOST``. Its channel tries to
reconnect at least every 2 s: with gRPC's default backoff (growing to 120 s) the gateway
went on refusing messages for 21 s after a 40 s outage had ended (measured on the emulator).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

log = logging.getLogger(__name__)

MAX_BATCH_MESSAGES = 100
MAX_BATCH_BYTES = 1_000_000
# Messages held in the process while Pub/Sub is slow or away; past that, refuse at once.
FLOW_MESSAGES = 2_000
FLOW_BYTES = 50_000_000
RECONNECT_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
)
# What the generated transport sets on its own channels: kept on ours.
CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.keepalive_time_ms", 30000),
)


class PublishError(RuntimeError):
    """Pub/Sub did not take the message in time; the text says why, without the message."""


class Publisher:
    def __init__(self, deadline: float = 3.0, max_latency: float = 0.005) -> None:
        self.deadline = deadline
        self.max_latency = max_latency
        self._client: Any = None
        self._client_pid = 0
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None or self._client_pid != os.getpid():
                self._client = _new_client(self.max_latency)
                self._client_pid = os.getpid()
            return self._client

    def publish(self, topic_path: str, data: bytes, attributes: Mapping[str, str]) -> str:
        """Publish and wait for Pub/Sub's acknowledgement; returns the message id."""
        from google.api_core import exceptions as gexc
        from google.api_core import retry as gretry

        try:
            future = self.client.publish(
                topic_path,
                data,
                retry=gretry.Retry(timeout=self.deadline),
                timeout=self.deadline,
                **attributes,
            )
            return str(future.result(timeout=self.deadline))
        except FutureTimeout:
            raise PublishError(f"Pub/Sub did not acknowledge within {self.deadline:g} s") from None
        except gexc.GoogleAPIError as exc:
            raise PublishError(f"Pub/Sub refused the message ({type(exc).__name__})") from None
        except Exception as exc:  # the client's own errors: flow control, a closed client
            raise PublishError(f"cannot publish ({type(exc).__name__})") from None


def _transport() -> Any:
    import grpc
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

    emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
    if emulator:
        options = [*CHANNEL_OPTIONS, *RECONNECT_OPTIONS]
        return PublisherGrpcTransport(channel=grpc.insecure_channel(emulator, options=options))

    def channel(*args: Any, **kwargs: Any) -> Any:
        # The transport's own secure channel (Google credentials), with our options added.
        kwargs["options"] = [*(kwargs.get("options") or ()), *RECONNECT_OPTIONS]
        return PublisherGrpcTransport.create_channel(*args, **kwargs)

    return PublisherGrpcTransport(channel=channel)


def _new_client(max_latency: float) -> Any:
    from google.cloud import pubsub_v1
    from google.cloud.pubsub_v1 import types

    return pubsub_v1.PublisherClient(
        transport=_transport(),
        batch_settings=types.BatchSettings(
            max_messages=MAX_BATCH_MESSAGES,
            max_bytes=MAX_BATCH_BYTES,
            max_latency=max_latency,
        ),
        publisher_options=types.PublisherOptions(
            flow_control=types.PublishFlowControl(
                message_limit=FLOW_MESSAGES,
                byte_limit=FLOW_BYTES,
                limit_exceeded_behavior=types.LimitExceededBehavior.ERROR,
            ),
        ),
    )
