"""``make dev``: the whole local stack, with two demo components, until Ctrl-C.

Starts the Firestore and Pub/Sub emulators, the demo subscriber, mock WeChat and the service
(gunicorn), registers two freshly generated demo components in both (one deployment serving
two third-party platforms, as a group does in the seeds' scene 2), has the mock push their
tickets, and then calls the refresh task on a timer, as Cloud Scheduler would in the cloud.
The group's open platform account is made through the gateway by a demo headquarters
account, and the service restarted with GROUP_OPEN_APPID naming it. What the demo
subscriber receives is shown as it arrives.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import requests

from devstack.emulator import EmulatorMissingError, start_emulator
from devstack.processes import ManagedProcess, ServerFailedError, port_is_free
from devstack.pubsub_emulator import PubSubAdmin, start_pubsub_emulator
from devstack.stack import (
    DEMO_ADMIN,
    DEMO_SUBSCRIPTION,
    DEMO_TOPIC,
    REPO,
    MockControl,
    create_demo_merchants,
    demo_component,
    demo_routes,
    mock_registration,
    open_group_account,
    service_env,
    start_demo_subscriber,
    start_mock,
    start_service,
)
from ops.smoke import DEV_STATE_FILE, DevState, DevStateError
from service.config import ComponentConfig

PROJECT = "demo-gateway"


class Stop(Exception):
    pass


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise Stop()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make dev", description=__doc__)
    parser.add_argument(
        "--service-port", type=int, default=int(os.environ.get("DEV_SERVICE_PORT", 8080))
    )
    parser.add_argument("--mock-port", type=int, default=int(os.environ.get("DEV_MOCK_PORT", 8081)))
    parser.add_argument(
        "--subscriber-port",
        type=int,
        default=int(os.environ.get("DEV_SUBSCRIBER_PORT", 8082)),
        help="the demo subscriber (Pub/Sub push endpoint and reply route)",
    )
    parser.add_argument(
        "--refresh-every",
        type=float,
        default=float(os.environ.get("DEV_REFRESH_EVERY", 300)),
        help="seconds between calls to POST /tasks/refresh (Cloud Scheduler's job)",
    )
    parser.add_argument(
        "--log-dir", type=Path, default=Path(os.environ.get("DEV_LOG_DIR", REPO / ".dev"))
    )
    return parser.parse_args(argv)


def refresh(service_url: str, api_key: str) -> tuple[bool, str]:
    """Calls the refresh task as Cloud Scheduler would: (answered 200, a line saying how)."""
    try:
        response = requests.post(
            f"{service_url}/tasks/refresh",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=60,
        )
    except requests.RequestException as exc:
        return False, f"refresh failed: {type(exc).__name__}"
    if response.status_code not in (200, 503) or "failed" not in response.text:
        return False, f"refresh answered HTTP {response.status_code}: {response.text[:200]}"
    report = response.json()
    counts = ("renewed", "skipped", "failed", "needs_reauthorization", "quota_exceeded")
    line = " ".join(f"{name}={report[name]}" for name in counts)
    # 503: some refresh failed; Cloud Scheduler would retry.
    if response.status_code == 200:
        return True, line
    return False, f"{line} (HTTP 503, retryable)"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ports = (
        ("service", args.service_port),
        ("mock WeChat", args.mock_port),
        ("demo subscriber", args.subscriber_port),
    )
    for name, port in ports:
        if not port_is_free(port):
            print(f"error: port {port} (for the {name}) is already in use.", file=sys.stderr)
            return 1
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    started: list[ManagedProcess] = []
    service_url = f"http://127.0.0.1:{args.service_port}"
    mock_url = f"http://127.0.0.1:{args.mock_port}"
    subscriber_url = f"http://127.0.0.1:{args.subscriber_port}"
    api_key = os.environ.get("SERVICE_API_KEYS", "dev-local-key").split(",")[0]
    demo, second = demo_component(), demo_component()
    state_path = args.log_dir / DEV_STATE_FILE
    try:
        print("starting the Firestore emulator ...", flush=True)
        emulator, firestore_host = start_emulator(args.log_dir / "firestore-emulator.log")
        started.append(emulator)
        print("starting the Pub/Sub emulator and the demo subscriber ...", flush=True)
        pubsub, pubsub_host = start_pubsub_emulator(args.log_dir / "pubsub-emulator.log")
        started.append(pubsub)
        subscriber_log = args.log_dir / "demo-subscriber.log"
        started.append(start_demo_subscriber(args.subscriber_port, subscriber_log))
        admin = PubSubAdmin(pubsub_host, PROJECT)
        admin.create_topic(DEMO_TOPIC)
        admin.create_push_subscription(DEMO_SUBSCRIPTION, DEMO_TOPIC, f"{subscriber_url}/push")
        print(f"starting mock WeChat on {mock_url} ...", flush=True)
        started.append(start_mock(args.mock_port, args.log_dir / "mock-wechat.log"))
        control = MockControl(mock_url)
        for component in (demo, second):
            control.register_component(
                mock_registration(
                    component,
                    event_url=f"{service_url}/wechat/{component.appid}/events",
                    auth_domain="127.0.0.1",
                    message_url=message_url(service_url, component.appid),
                )
            )
        print(f"starting the service on {service_url} (gunicorn, 2 workers) ...", flush=True)
        merchants = create_demo_merchants(control)
        env = {
            **service_env([demo, second], service_url, mock_url, PROJECT, firestore_host, api_key),
            "PUBSUB_EMULATOR_HOST": pubsub_host,
            "MESSAGE_ROUTES": demo_routes(subscriber_url),
        }
        service_log = args.log_dir / "service.log"
        started.append(start_service(args.service_port, env, service_log))
        for component in (demo, second):
            pushed = control.push_ticket(component.appid)
            print(f"mock WeChat pushed a ticket: delivered={pushed['delivered']}", flush=True)
        ok, outcome = refresh(service_url, api_key)
        print(f"first refresh: {outcome}", flush=True)
        # Scene 2 needs GROUP_OPEN_APPID at start, and the open platform account exists only
        # once the gateway has made it: make it, then restart the service with it.
        hq, group = open_group_account(control, service_url, api_key, demo.appid)
        print(f"the group's open platform account {group}, made by {hq}; restarting ...")
        started.pop().stop()
        service_log.replace(args.log_dir / "service-before-restart.log")
        env["GROUP_OPEN_APPID"] = group
        started.append(start_service(args.service_port, env, service_log))
        # For `make smoke LOCAL=1`; rewritten after each refresh, removed on the way out.
        state = DevState(service_url, demo.appid, api_key, os.getpid(), args.refresh_every)
        state = state.refreshed(ok, outcome)
        state.write(state_path)
        print_banner(
            args,
            (demo, second),
            service_url,
            mock_url,
            firestore_host,
            pubsub_host,
            api_key,
            merchants,
            (hq, group),
        )
        next_refresh = time.monotonic() + args.refresh_every
        received = SubscriberLog(subscriber_log)
        while True:
            for line in received.new_lines():
                print(line, flush=True)
            for process in started:
                if process.process.poll() is not None:
                    print(f"{process.name} stopped unexpectedly; see {process.log_path}")
                    return 1
            if time.monotonic() >= next_refresh:
                ok, outcome = refresh(service_url, api_key)
                print(f"{time.strftime('%H:%M:%S')} refresh: {outcome}")
                state = state.refreshed(ok, outcome)
                state.write(state_path)
                next_refresh = time.monotonic() + args.refresh_every
            time.sleep(1)
    except Stop:
        print("\nstopping ...")
        return 0
    except (EmulatorMissingError, ServerFailedError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if _written_by_me(state_path):
            state_path.unlink()
        for process in reversed(started):
            process.stop()
        if started:
            print("stopped: " + ", ".join(p.name for p in reversed(started)))


def _written_by_me(state_path: Path) -> bool:
    """Whether the state file is this run's (another make dev may share the log dir)."""
    try:
        return DevState.read(state_path).pid == os.getpid()
    except (FileNotFoundError, DevStateError):
        return False


class SubscriberLog:
    """What the demo subscriber received, one line each, read from its log as it grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def new_lines(self) -> list[str]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as log:
            log.seek(self.offset)
            data = log.read()
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next read
        self.offset += end
        return [line for raw in data[:end].splitlines() if (line := _received(raw))]


def _received(raw: bytes) -> str | None:
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(entry, dict) or entry.get("message") != "received":
        return None
    what = entry.get("event") or entry.get("info_type") or entry.get("msg_type")
    content = f" {entry['content']!r}" if entry.get("content") else ""
    duplicate = " (duplicate: dropped)" if entry.get("duplicate") else ""
    return (
        f"{time.strftime('%H:%M:%S')} demo subscriber got, by {entry.get('via')}: "
        f"{entry.get('source')} {what}{content} from {entry.get('authorizer_appid')}{duplicate}"
    )


def message_url(service_url: str, component_appid: str) -> str:
    """The 消息与事件接收URL to enter in the console; WeChat fills in $APPID$."""
    return f"{service_url}/wechat/{component_appid}/messages/$APPID$"


def print_banner(
    args: argparse.Namespace,
    components: tuple[ComponentConfig, ComponentConfig],
    service_url: str,
    mock_url: str,
    firestore_host: str,
    pubsub_host: str,
    api_key: str,
    merchants: list[dict[str, Any]],
    group: tuple[str, str],
) -> None:
    demo, second = components
    hq, group_open_appid = group
    events = f"{service_url}/wechat/{demo.appid}/events"
    accounts = "\n".join(
        f"  {m['appid']}  {m['type']:<17} {m['nick_name']}  (admin {m['admin']})" for m in merchants
    )
    oa, mp = merchants[0]["appid"], merchants[1]["appid"]
    key = f"-H 'Authorization: Bearer {api_key}'"
    print(
        f"""
The local stack is up. Demo components: {demo.appid} and {second.appid}
(one deployment, two third-party platforms: what a group runs in scene 2)

Play the merchant: open the entry page, pick an account type, click the PC or H5 button,
"scan as admin" {DEMO_ADMIN}, pick an account and confirm:

  {service_url}/authorize/{demo.appid}
  {service_url}/authorize/{second.appid}

Demo merchants on mock WeChat:
{accounts}

  service       {service_url}   gunicorn; log {args.log_dir / "service.log"}
  mock WeChat   {mock_url}   log {args.log_dir / "mock-wechat.log"}
  Firestore     {firestore_host}   emulator, project {PROJECT}
  Pub/Sub       {pubsub_host}   emulator: topic {DEMO_TOPIC}, push subscription {DEMO_SUBSCRIPTION}
  subscriber    http://127.0.0.1:{args.subscriber_port}   the demo business service; log \
{args.log_dir / "demo-subscriber.log"}

Delivery (MESSAGE_ROUTES): users' texts go to the reply route (the demo subscriber answers
"你说：…"); every other message and event, and every authorization notice, to the Pub/Sub
topic, pushed to the demo subscriber. What it receives is shown below as it arrives.

Where to look:
  {service_url}/healthz         ticket age and component token expiry
  {mock_url}/_mock/calls       every API call the service made to "WeChat"
  {mock_url}/_mock/pushes      every push the mock sent to the service's event URL:
                                      {events}

The console's two push URLs (here on the mock, which plays WeChat):
  授权事件接收URL     {events}
  消息与事件接收URL   {message_url(service_url, demo.appid)}

Try:
  .venv/bin/python -m mock_wechat authorize --service {service_url} --mock {mock_url} \\
      --component {demo.appid} --account {oa}
  curl {key} \\
      {service_url}/api/v1/components/{demo.appid}/authorizers/{oa}
then, once it is authorized, its token and a call on its behalf:
  A={service_url}/api/v1/components/{demo.appid}/authorizers/{oa}
  curl -X POST {key} $A/token
  curl {key} $A/proxy/cgi-bin/account/getaccountbasicinfo
  curl -X POST {mock_url}/_mock/components/{demo.appid}/push-ticket
  curl -X POST {key} {service_url}/tasks/refresh
a user's message to an authorized account (the reply route answers it), and a menu click
(through Pub/Sub to the demo subscriber); the mock prints what the user sees:
  .venv/bin/python -m mock_wechat send-message --mock {mock_url} \\
      --component {demo.appid} --account {oa} --text "hello"
  .venv/bin/python -m mock_wechat send-message --mock {mock_url} \\
      --component {demo.appid} --account {oa} --event CLICK --event-key MENU_1
  curl http://127.0.0.1:{args.subscriber_port}/received
the 全网发布 release check, as WeChat runs it, on all ten test accounts:
  .venv/bin/python -m mock_wechat release-check --mock {mock_url} \\
      --component {demo.appid} --all-groups

Open platform accounts. Scene 2, one open platform account for the group:
GROUP_OPEN_APPID={group_open_appid}, made through the gateway by 示例集团总部 ({hq}).
Authorize {oa} to the second component too (it is the same account): the report shows it
unbound, bind-unbound binds it, and the report is clean:
  .venv/bin/python -m mock_wechat authorize --service {service_url} --mock {mock_url} \\
      --component {second.appid} --account {oa}
  G={service_url}/api/v1/open-account-group
  curl {key} $G
  curl -X POST {key} $G/bind-unbound
  curl {key} $G
Scene 1, a merchant's own open platform account: authorize {mp} ({merchants[1]["nick_name"]}),
then create one for it; the group report then lists it as bound elsewhere, and leaves it:
  .venv/bin/python -m mock_wechat authorize --service {service_url} --mock {mock_url} \\
      --component {demo.appid} --account {mp}
  M={service_url}/api/v1/components/{demo.appid}/authorizers/{mp}/open-account
  curl -X POST {key} -H 'Content-Type: application/json' -d '{{"action": "create"}}' $M
  curl {key} $M

The refresh task runs every {args.refresh_every:.0f}s, as Cloud Scheduler would.
Ctrl-C stops everything.
""",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
