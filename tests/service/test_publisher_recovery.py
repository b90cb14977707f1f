"""The publisher's gRPC channel comes back quickly after a Pub/Sub outage (real emulator).

gRPC's default reconnect backoff grows by 1.6 from 1 s up to 120 s: after a 40 s outage the
gateway went on refusing messages for 21 s (measured). After 18 s, its attempts fall near
15.9 s and 26.5 s (±20 %), so the first publish once the emulator is back (~21 s) would wait
some 4 s or more. The publisher caps the backoff at 2 s.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from devstack.processes import free_port
from devstack.pubsub_emulator import PubSubAdmin, start_pubsub_emulator
from service import publisher
from service.publisher import Publisher, PublishError

PROJECT = "publisher-recovery"
TOPIC = "recovery"


def test_publishing_resumes_within_seconds_of_an_18_s_outage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    process, host = start_pubsub_emulator(tmp_path / "pubsub.log", port=port)
    try:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", host)
        PubSubAdmin(host, PROJECT).create_topic(TOPIC)
        topic = f"projects/{PROJECT}/topics/{TOPIC}"
        pub = Publisher(deadline=2.0)
        assert pub.publish(topic, b"before", {})
        process.stop()
        failed_until = time.monotonic() + 18
        while time.monotonic() < failed_until:  # every try in the outage fails in time
            started = time.monotonic()
            with pytest.raises(PublishError):
                pub.publish(topic, b"during", {})
            assert time.monotonic() - started < 2.0 + 1.0
            time.sleep(1)
        process, _ = start_pubsub_emulator(tmp_path / "pubsub-2.log", port=port)
        PubSubAdmin(host, PROJECT).create_topic(TOPIC)
        back = time.monotonic()
        while True:
            try:
                pub.publish(topic, b"after", {})
                break
            except PublishError:
                assert time.monotonic() - back < 10, "still refused 10 s after Pub/Sub was back"
        assert time.monotonic() - back < 2.5
    finally:
        process.stop()


def test_the_cloud_channel_keeps_googles_options_and_adds_the_reconnect_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import google.auth
    from google.auth.credentials import AnonymousCredentials
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    seen: dict[str, Any] = {}
    create = PublisherGrpcTransport.create_channel

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return create(*args, **kwargs)

    with (
        mock.patch.object(google.auth, "default", return_value=(AnonymousCredentials(), "p")),
        mock.patch.object(PublisherGrpcTransport, "create_channel", spy),
    ):
        client = publisher._new_client(0.005)
    options = dict(seen["options"])
    assert options["grpc.max_reconnect_backoff_ms"] == 2000
    assert options["grpc.max_send_message_length"] == -1  # the transport's own, kept
    assert client.batch_settings.max_latency == 0.005
    assert client.batch_settings.max_messages == publisher.MAX_BATCH_MESSAGES
