"""The Cloud Pub/Sub emulator: find its launcher, start it, make topics and subscriptions.

Like the Firestore emulator, the launcher runs directly in a process group of its own. The
gateway's client finds it through ``PUBSUB_EMULATOR_HOST``; topics and push subscriptions
are made over its REST API, as ``gcloud pubsub`` or Pulumi would make them in the cloud.
Its push subscriptions really POST to local HTTP endpoints and retry until acknowledged.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from devstack.emulator import check_cli, find_launcher, start_listening
from devstack.processes import ManagedProcess

PACKAGE = "google-cloud-cli-pubsub-emulator"
LAUNCHER = Path("platform/pubsub-emulator/bin/cloud-pubsub-emulator")
INSTALL_HINT = (
    f"The Cloud Pub/Sub emulator is missing. Install the Debian package {PACKAGE} "
    f"(apt-get install {PACKAGE}, from Google Cloud's apt repository) and a Java runtime."
)


def find_pubsub_launcher() -> Path:
    return find_launcher(LAUNCHER, INSTALL_HINT)


def start_pubsub_emulator(log_path: Path, port: int | None = None) -> tuple[ManagedProcess, str]:
    """Start the emulator and wait until it answers ``Ok``; returns (process, host:port)."""
    return start_listening("Pub/Sub emulator", [str(find_pubsub_launcher())], log_path, port)


class PubSubAdmin:
    """Topics and push subscriptions of one project on the emulator at ``host``."""

    def __init__(self, host: str, project: str) -> None:
        self.base = f"http://{host}/v1/projects/{project}"
        self.project = project

    def create_topic(self, topic: str) -> None:
        self._put(f"topics/{topic}", {})

    def create_push_subscription(
        self,
        name: str,
        topic: str,
        endpoint: str,
        ack_deadline: int = 10,
        attributes_filter: str | None = None,
    ) -> None:
        """A push subscription without a retry policy: the emulator (0.8.20) stops pushing
        a message after its third failed push when there is one, and retries every second
        when there is none (measured). In the cloud, Pulumi sets the policy (infra/)."""
        body: dict[str, Any] = {
            "topic": f"projects/{self.project}/topics/{topic}",
            "pushConfig": {"pushEndpoint": endpoint},
            "ackDeadlineSeconds": ack_deadline,
        }
        if attributes_filter:
            body["filter"] = attributes_filter
        self._put(f"subscriptions/{name}", body)

    def create_pull_subscription(self, name: str, topic: str) -> None:
        self._put(f"subscriptions/{name}", {"topic": f"projects/{self.project}/topics/{topic}"})

    def pull(self, subscription: str, max_messages: int = 10) -> list[dict[str, Any]]:
        """Pull (and acknowledge) up to ``max_messages``: each ``{"data", "attributes", …}``."""
        base = f"{self.base}/subscriptions/{subscription}"
        received = self._post(
            f"{base}:pull", {"maxMessages": max_messages, "returnImmediately": True}
        ).get("receivedMessages", [])
        if received:
            self._post(f"{base}:acknowledge", {"ackIds": [m["ackId"] for m in received]})
        return [m["message"] for m in received]

    def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: dict[str, Any] = json.loads(response.read() or b"{}")
            return answer

    def _put(self, path: str, body: dict[str, Any]) -> None:
        request = urllib.request.Request(
            f"{self.base}/{path}",
            data=json.dumps(body).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            if exc.code != 409:  # already there: making it is idempotent
                detail = exc.read().decode(errors="replace")[:300]
                raise RuntimeError(f"Pub/Sub emulator refused PUT {path}: {detail}") from None


def main(argv: list[str] | None = None) -> int:
    return check_cli("Pub/Sub", find_pubsub_launcher, argv)


if __name__ == "__main__":
    sys.exit(main())
