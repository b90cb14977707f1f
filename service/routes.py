"""Message routes: which of the provider's services gets each push (``MESSAGE_ROUTES``).

An ordered list, first match wins. A route matches on any of ``source`` (``messages``: the
消息与事件接收URL; ``events``: the 授权事件接收URL), ``authorizer_appids``,
``account_type``, ``msg_type``, ``event`` and ``info_type``; each takes one value or a
list, and a route without ``match`` takes everything. It delivers with one of two kinds:

- ``pubsub``: a topic (a name in ``GOOGLE_CLOUD_PROJECT``, or ``projects/<p>/topics/<t>``);
  the gateway publishes and answers WeChat at once.
- ``reply``: an https URL (http on localhost) the gateway POSTs the message to, waiting
  up to ``deadline`` seconds (default 4, at most 4.5) for a passive reply to encrypt.

Example::

    [{"name": "bot", "match": {"msg_type": "text"}, "reply": "https://bot.example.com/wechat"},
     {"name": "all", "pubsub": "wechat-messages"}]
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

SOURCES = ("messages", "events")
MATCH_FIELDS = ("source", "authorizer_appids", "account_type", "msg_type", "event", "info_type")
DEFAULT_DEADLINE = 4.0
MAX_DEADLINE = 4.5  # WeChat waits 5 s for the whole answer
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# Pub/Sub topic ids: 3-255 characters, starting with a letter (Google's rule).
_TOPIC_ID = re.compile(r"[A-Za-z][A-Za-z0-9_.~+%-]{2,254}")
_TOPIC_PATH = re.compile(r"projects/([a-z][a-z0-9-]{4,28}[a-z0-9])/topics/(.+)")


class RouteError(ValueError):
    """A route is not valid; the text names it and the field."""


@dataclass(frozen=True)
class Pushed:
    """What routing needs to know of one push (a message or an events-URL notice)."""

    source: str
    authorizer_appid: str | None
    account_type: str | None
    msg_type: str | None
    event: str | None
    info_type: str | None


@dataclass(frozen=True)
class Route:
    name: str
    match: Mapping[str, frozenset[str]]
    pubsub: str | None = None  # a topic name or path
    reply: str | None = None  # an https URL
    deadline: float = DEFAULT_DEADLINE

    def matches(self, push: Pushed) -> bool:
        for key, allowed in self.match.items():
            value = getattr(push, "authorizer_appid" if key == "authorizer_appids" else key)
            if value not in allowed:
                return False
        return True

    def topic_path(self, project: str | None) -> str:
        """The topic's full path (``projects/<p>/topics/<t>``)."""
        assert self.pubsub is not None
        if self.pubsub.startswith("projects/"):
            return self.pubsub
        if not project:
            raise RouteError(
                f"route {self.name!r}: pubsub names a topic without a project; set "
                "GOOGLE_CLOUD_PROJECT or give projects/<project>/topics/<topic>"
            )
        return f"projects/{project}/topics/{self.pubsub}"


def first_match(routes: tuple[Route, ...], push: Pushed) -> Route | None:
    return next((route for route in routes if route.matches(push)), None)


def parse_routes(text: str) -> tuple[Route, ...]:
    """``MESSAGE_ROUTES``: every route checked; the first problem names its route."""
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RouteError(f"not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(items, list):
        raise RouteError("must be a JSON array of routes")
    routes: list[Route] = []
    for index, item in enumerate(items):
        route = _route(item, index)
        if any(r.name == route.name for r in routes):
            raise RouteError(f"route {route.name!r} is listed twice")
        routes.append(route)
    return tuple(routes)


def _route(item: Any, index: int) -> Route:
    where = f"route {index}"
    if not isinstance(item, dict):
        raise RouteError(f"{where}: must be a JSON object")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise RouteError(f"{where}: 'name' is required: letters, digits, '_', '.' or '-'")
    where = f"route {name!r}"
    unknown = set(item) - {"name", "match", "pubsub", "reply", "deadline"}
    if unknown:
        raise RouteError(f"{where}: unknown keys {sorted(unknown)}")
    match = _match(item.get("match", {}), where)
    pubsub, reply = item.get("pubsub"), item.get("reply")
    if (pubsub is None) == (reply is None):
        raise RouteError(f"{where}: give exactly one of 'pubsub' (a topic) or 'reply' (a URL)")
    if pubsub is not None:
        _check_topic(pubsub, where)
        if "deadline" in item:
            raise RouteError(f"{where}: 'deadline' is for 'reply' routes only")
        return Route(name, match, pubsub=pubsub)
    _check_url(reply, where)
    if match.get("source") != frozenset({"messages"}):
        # The events URL answers "success" and nothing else: there is no reply to give.
        raise RouteError(f"{where}: a 'reply' route needs match.source \"messages\"")
    deadline = item.get("deadline", DEFAULT_DEADLINE)
    if (
        isinstance(deadline, bool)
        or not isinstance(deadline, int | float)
        or not 0 < deadline <= MAX_DEADLINE
    ):
        raise RouteError(f"{where}: 'deadline' must be seconds above 0, at most {MAX_DEADLINE}")
    return Route(name, match, reply=reply, deadline=float(deadline))


def _match(value: Any, where: str) -> dict[str, frozenset[str]]:
    if not isinstance(value, dict):
        raise RouteError(f"{where}: 'match' must be a JSON object")
    unknown = set(value) - set(MATCH_FIELDS)
    if unknown:
        raise RouteError(
            f"{where}: 'match' has unknown keys {sorted(unknown)}; "
            f"it takes {', '.join(MATCH_FIELDS)}"
        )
    match: dict[str, frozenset[str]] = {}
    for key, given in value.items():
        values = [given] if isinstance(given, str) else given
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, str) and v for v in values)
        ):
            raise RouteError(f"{where}: match.{key} must be a string or a non-empty list of them")
        if key == "source" and not set(values) <= set(SOURCES):
            raise RouteError(f"{where}: match.source takes {' or '.join(SOURCES)}")
        match[key] = frozenset(values)
    return match


def _check_topic(topic: Any, where: str) -> None:
    if not isinstance(topic, str):
        raise RouteError(f"{where}: 'pubsub' must be a topic name")
    path = _TOPIC_PATH.fullmatch(topic)
    topic_id = path.group(2) if path else topic
    if not _TOPIC_ID.fullmatch(topic_id) or topic_id.lower().startswith("goog"):
        raise RouteError(
            f"{where}: 'pubsub' must be a topic id (3-255 characters, starting with a letter, "
            "not 'goog') or projects/<project>/topics/<topic>"
        )


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _check_url(url: Any, where: str) -> None:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or not parts.hostname:
        raise RouteError(f"{where}: 'reply' must be an https URL")
    # The message leaves the gateway decrypted: only https, but for a local service.
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOOPBACK):
        raise RouteError(f"{where}: 'reply' must be an https URL (http only on localhost)")
