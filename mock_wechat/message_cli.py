"""The ``send-message`` and ``release-check`` commands, driving a running mock over HTTP.

They print what happened, for a developer watching their service answer.

Exit codes: 0 when the answer was valid (``send-message``: a reply, ``success`` or empty)
or every step passed (``release-check``); 1 otherwise; 2 on bad usage, a request the mock
refused, or a mock that cannot be reached.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import requests

from mock_wechat.protocol import RELEASE_GROUP_NUMBERS
from mock_wechat.reply_judge import VALID_OUTCOMES

SEND_TIMEOUT = (5.0, 120.0)  # connect, read: three 5 s tries and any fault delays fit
CHECK_TIMEOUT = (5.0, None)  # a release check of every group may take minutes


class CliError(Exception):
    """Bad usage, a refused request or an unreachable mock: exit code 2."""


def _post(mock: str, path: str, body: dict[str, Any], timeout: Any) -> dict[str, Any]:
    url = mock.rstrip("/") + path
    try:
        response = requests.post(url, json=body, timeout=timeout)
    except requests.RequestException as exc:
        raise CliError(f"cannot reach mock WeChat at {mock} ({type(exc).__name__})") from None
    try:
        data = response.json()
    except ValueError:
        raise CliError(
            f"{mock} answered HTTP {response.status_code} without JSON: is it mock WeChat?"
        ) from None
    if response.status_code != 200 or not isinstance(data, dict):
        error = data.get("error") if isinstance(data, dict) else None
        raise CliError(f"mock WeChat refused (HTTP {response.status_code}): {error or data}")
    return data


def _fields(pairs: Sequence[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError(f"--field {pair!r}: expected Name=Value")
        fields[name] = value
    return fields


def message_body(args: argparse.Namespace) -> dict[str, Any]:
    """The JSON of ``POST /_mock/authorizers/<appid>/messages`` the arguments ask for."""
    body: dict[str, Any] = {"component_appid": args.component}
    if args.text is not None:
        body.update(msg_type="text", content=args.text)
    elif args.event is not None:
        body.update(msg_type="event", event=args.event)
    else:
        body["msg_type"] = args.type
    fields = _fields(args.field or [])
    if args.event_key is not None:
        if args.event is None:
            raise CliError("--event-key goes with --event")
        fields["EventKey"] = args.event_key
    if fields:
        body["fields"] = fields
    if args.from_user is not None:
        body["from_user"] = args.from_user
    return body


def describe_delivery(record: dict[str, Any]) -> str:
    kind = record["msg_type"] + (f" {record['event']}" if record.get("event") else "")
    lines = [
        f"{kind} from {record['openid']} to {record['authorizer_appid']} "
        f"(component {record['component_appid']})"
    ]
    for number, attempt in enumerate(record["tries"], 1):
        status = attempt["error"] or f"HTTP {attempt['http_status']}"
        lines.append(f"  try {number}: {status} in {attempt['seconds']:.2f}s")
    outcome = record["outcome"]
    lines.append(f"outcome: {outcome}" + (f": {record['reason']}" if record["reason"] else ""))
    if record.get("reply_xml"):
        lines.append(f"reply: {record['reply_xml']}")
    lines.append(f"the user sees: {record['user_sees'] or '(nothing)'}")
    return "\n".join(lines)


def describe_report(report: dict[str, Any]) -> str:
    lines = []
    for step in report["steps"]:
        mark = "✔" if step["passed"] else "✘"
        group = step["group"] if step["group"] is not None else "-"
        account = step["account"] or "-"
        line = f"{mark} group {group} {account:<18} {step['name']} ({step['step']})"
        if step["reason"]:
            line += f": {step['reason']}"
        lines.append(line)
    passed = sum(1 for step in report["steps"] if step["passed"])
    verdict = "全网发布检测通过 (passed)" if report["passed"] else "全网发布检测未通过 (failed)"
    groups = ", ".join(str(g) for g in report["groups"])
    lines.append(f"{verdict}: {passed}/{len(report['steps'])} steps passed, groups {groups}")
    return "\n".join(lines)


def send_message(args: argparse.Namespace) -> int:
    try:
        body = message_body(args)
        record = _post(args.mock, f"/_mock/authorizers/{args.account}/messages", body, SEND_TIMEOUT)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(describe_delivery(record))
    return 0 if record["outcome"] in VALID_OUTCOMES else 1


def release_check(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if args.all_groups:
        body["all_groups"] = True
    elif args.group is not None:
        body["group"] = args.group
    if args.send_deadline is not None:
        body["send_deadline"] = args.send_deadline
    path = f"/_mock/components/{args.component}/release-check"
    try:
        report = _post(args.mock, path, body, CHECK_TIMEOUT)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(describe_report(report))
    return 0 if report["passed"] else 1


def add_commands(commands: Any, default_mock: str) -> None:
    """The two subcommands, on ``commands`` (an argparse subparsers object)."""
    send = commands.add_parser(
        "send-message",
        help="send an authorized account a user's message or event, print the answer",
        description=(
            "Deliver one message to the component's message_url as WeChat does (encrypted, "
            "three 5 s tries) and print the outcome, the reply and what the user sees. "
            "Exits 0 when the answer was valid (a reply, success or empty), 1 otherwise, "
            "2 on bad usage or when the mock cannot be reached."
        ),
    )
    send.add_argument("--component", required=True, help="the component appid")
    send.add_argument("--account", required=True, help="the authorized account's appid")
    what = send.add_mutually_exclusive_group(required=True)
    what.add_argument("--text", help="a text message with this content")
    what.add_argument("--event", help="an event, e.g. subscribe, CLICK, LOCATION")
    what.add_argument("--type", help="another message type, e.g. image, voice, location")
    send.add_argument("--event-key", help="the event's EventKey (CLICK, VIEW, SCAN)")
    send.add_argument(
        "--from", dest="from_user", help="the user's openid (default: one per account)"
    )
    send.add_argument(
        "--field",
        action="append",
        metavar="NAME=VALUE",
        help="an XML element of the message, by WeChat's name (repeatable)",
    )
    send.add_argument("--mock", default=default_mock, help="mock WeChat's base URL")

    check = commands.add_parser(
        "release-check",
        help="run the 全网发布 (release) check against a component, print every step",
        description=(
            "Run WeChat's release check: a ticket push, then for each test group's official "
            "account and mini program the authorization, the text probe, the "
            "QUERY_AUTH_CODE customer-service round and an event. Prints one line per step. "
            "Exits 0 iff every step passed, 1 otherwise, 2 on bad usage or when the mock "
            "cannot be reached."
        ),
    )
    check.add_argument("--component", required=True, help="the component appid")
    groups = check.add_mutually_exclusive_group()
    groups.add_argument(
        "--group",
        type=int,
        choices=RELEASE_GROUP_NUMBERS,
        help="check this group (default: one at random, as WeChat picks)",
    )
    groups.add_argument("--all-groups", action="store_true", help="check all five groups")
    check.add_argument(
        "--send-deadline",
        type=float,
        help="seconds allowed for the customer-service message (default 10, the mock's choice)",
    )
    check.add_argument("--mock", default=default_mock, help="mock WeChat's base URL")
