"""MESSAGE_ROUTES: what parse_routes takes, what it refuses (naming the route), first match."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.routes import (
    DEFAULT_DEADLINE,
    MATCH_FIELDS,
    Pushed,
    Route,
    RouteError,
    first_match,
    parse_routes,
)

REPLY_URL = "https://bot.example.com/wechat"


def routes_text(*routes: dict[str, Any]) -> str:
    return json.dumps(list(routes))


def reply_route(**changes: Any) -> dict[str, Any]:
    return {"name": "bot", "match": {"source": "messages"}, "reply": REPLY_URL, **changes}


def pushed(**changes: Any) -> Pushed:
    fields: dict[str, Any] = {
        "source": "messages",
        "authorizer_appid": "wx00000000000000a1",
        "account_type": "official_account",
        "msg_type": "text",
        "event": None,
        "info_type": None,
    }
    return Pushed(**{**fields, **changes})


# ----- accepted --------------------------------------------------------------------------


def test_the_documented_example_parses_in_order() -> None:
    routes = parse_routes(
        '[{"name": "bot", "match": {"source": "messages", "msg_type": "text"},'
        ' "reply": "https://bot.example.com/wechat"},'
        ' {"name": "all", "pubsub": "wechat-messages"}]'
    )
    assert [r.name for r in routes] == ["bot", "all"]
    bot, everything = routes
    assert bot.reply == REPLY_URL and bot.pubsub is None
    assert bot.deadline == DEFAULT_DEADLINE == 4.0
    assert bot.match == {"source": frozenset({"messages"}), "msg_type": frozenset({"text"})}
    assert everything.pubsub == "wechat-messages" and everything.reply is None
    assert everything.match == {}


def test_an_empty_list_is_no_routes() -> None:
    assert parse_routes("[]") == ()


@pytest.mark.parametrize(
    ("key", "given", "expected"),
    [
        ("source", "events", {"events"}),
        ("source", ["messages", "events"], {"messages", "events"}),
        ("authorizer_appids", ["wx00000000000000a1", "wx00000000000000a2"], None),
        ("authorizer_appids", "wx00000000000000a1", None),
        ("account_type", ["official_account", "mini_program"], None),
        ("msg_type", "event", None),
        ("event", ["CLICK", "subscribe"], None),
        ("info_type", "notify_third_fasteregister", None),
    ],
)
def test_every_match_key_takes_a_string_or_a_list(key: str, given: Any, expected: Any) -> None:
    (route,) = parse_routes(routes_text({"name": "r", "match": {key: given}, "pubsub": "topic"}))
    want = expected or ({given} if isinstance(given, str) else set(given))
    assert route.match == {key: frozenset(want)}


def test_every_match_key_together() -> None:
    match = {key: "x" for key in MATCH_FIELDS} | {"source": "messages"}
    (route,) = parse_routes(routes_text({"name": "r", "match": match, "pubsub": "topic"}))
    assert set(route.match) == set(MATCH_FIELDS)


@pytest.mark.parametrize(
    "topic",
    [
        "abc",
        "wechat-messages",
        "Topic_1.x~y+z%2",
        "a" * 255,
        "projects/my-project/topics/wechat-messages",
        "projects/gateway-test/topics/abc",
    ],
)
def test_pubsub_takes_a_topic_id_or_a_full_path(topic: str) -> None:
    (route,) = parse_routes(routes_text({"name": "r", "pubsub": topic}))
    assert route.pubsub == topic and route.reply is None


@pytest.mark.parametrize(
    "url",
    [
        "https://bot.example.com/wechat",
        "https://10.0.0.1:8443/x",
        "http://127.0.0.1:8080/reply",
        "http://localhost/reply",
        "http://[::1]:9000/reply",
    ],
)
def test_reply_takes_https_or_http_on_loopback(url: str) -> None:
    (route,) = parse_routes(routes_text(reply_route(reply=url)))
    assert route.reply == url and route.pubsub is None


@pytest.mark.parametrize("deadline", [0.1, 1, 2.5, 4, 4.5])
def test_reply_deadline_up_to_4_5(deadline: float) -> None:
    (route,) = parse_routes(routes_text(reply_route(deadline=deadline)))
    assert route.deadline == deadline
    assert isinstance(route.deadline, float)


def test_reply_source_may_be_a_one_item_list() -> None:
    (route,) = parse_routes(routes_text(reply_route(match={"source": ["messages"]})))
    assert route.match["source"] == frozenset({"messages"})


# ----- refused ---------------------------------------------------------------------------

# (routes, the text the error must hold): every error after the name names the route.
BAD_ROUTES: dict[str, tuple[str, str]] = {
    "not JSON": ("[{name: 'x'}", "not valid JSON"),
    "not a list": ('{"name": "all", "pubsub": "topic"}', "JSON array"),
    "a string": ('"all"', "JSON array"),
    "a route not an object": ('[{"name": "a", "pubsub": "topic"}, "b"]', "route 1"),
    "missing name": ('[{"pubsub": "topic"}]', "route 0: 'name' is required"),
    "empty name": ('[{"name": "", "pubsub": "topic"}]', "route 0: 'name'"),
    "name not a string": ('[{"name": 7, "pubsub": "topic"}]', "route 0: 'name'"),
    "name with a space": ('[{"name": "my route", "pubsub": "topic"}]', "route 0: 'name'"),
    "name too long": (routes_text({"name": "a" * 64, "pubsub": "topic"}), "route 0: 'name'"),
    "second route without name": (
        routes_text({"name": "a", "pubsub": "topic"}, {"pubsub": "topic"}),
        "route 1: 'name'",
    ),
    "duplicate name": (
        routes_text({"name": "dup", "pubsub": "topic"}, {"name": "dup", "pubsub": "other"}),
        "route 'dup' is listed twice",
    ),
    "unknown key": (
        routes_text({"name": "r1", "pubsub": "topic", "topic": "x"}),
        "route 'r1': unknown keys ['topic']",
    ),
    "both kinds": (
        routes_text(reply_route(name="r1", pubsub="topic")),
        "route 'r1': give exactly one of",
    ),
    "neither kind": (routes_text({"name": "r1"}), "route 'r1': give exactly one of"),
    "both null": (
        routes_text({"name": "r1", "pubsub": None, "reply": None}),
        "route 'r1': give exactly one of",
    ),
    "topic not a string": (routes_text({"name": "r1", "pubsub": 5}), "route 'r1': 'pubsub'"),
    "empty topic": (routes_text({"name": "r1", "pubsub": ""}), "route 'r1': 'pubsub'"),
    "topic too short": (routes_text({"name": "r1", "pubsub": "ab"}), "route 'r1': 'pubsub'"),
    "topic too long": (routes_text({"name": "r1", "pubsub": "a" * 256}), "route 'r1': 'pubsub'"),
    "topic starting with a digit": (
        routes_text({"name": "r1", "pubsub": "1topic"}),
        "route 'r1': 'pubsub'",
    ),
    "topic with a slash": (
        routes_text({"name": "r1", "pubsub": "my/topic"}),
        "route 'r1': 'pubsub'",
    ),
    "topic starting with goog": (
        routes_text({"name": "r1", "pubsub": "google-things"}),
        "route 'r1': 'pubsub'",
    ),
    "path with a bad project": (
        routes_text({"name": "r1", "pubsub": "projects/Bad_Project/topics/topic"}),
        "route 'r1': 'pubsub'",
    ),
    "path with a bad topic": (
        routes_text({"name": "r1", "pubsub": "projects/my-project/topics/goog-x"}),
        "route 'r1': 'pubsub'",
    ),
    "path without topic": (
        routes_text({"name": "r1", "pubsub": "projects/my-project/topics/"}),
        "route 'r1': 'pubsub'",
    ),
    "deadline on a pubsub route": (
        routes_text({"name": "r1", "pubsub": "topic", "deadline": 2}),
        "route 'r1': 'deadline' is for 'reply' routes only",
    ),
    "reply not a string": (routes_text(reply_route(reply=5)), "route 'bot': 'reply'"),
    "reply not a URL": (routes_text(reply_route(reply="bot")), "route 'bot': 'reply'"),
    "reply over http": (
        routes_text(reply_route(reply="http://bot.example.com/wechat")),
        "route 'bot': 'reply' must be an https URL (http only on localhost)",
    ),
    "reply over http to a private address": (
        routes_text(reply_route(reply="http://10.0.0.1/wechat")),
        "route 'bot': 'reply'",
    ),
    "reply over http with loopback as userinfo": (
        routes_text(reply_route(reply="http://localhost@evil.example.com/")),
        "route 'bot': 'reply'",
    ),
    "reply over http to a name beginning with 127.0.0.1": (
        routes_text(reply_route(reply="http://127.0.0.1.evil.example.com/")),
        "route 'bot': 'reply'",
    ),
    "reply over ftp": (routes_text(reply_route(reply="ftp://127.0.0.1/x")), "route 'bot'"),
    "reply without source": (
        routes_text(reply_route(match={})),
        "route 'bot': a 'reply' route needs match.source \"messages\"",
    ),
    "reply on events": (
        routes_text(reply_route(match={"source": "events"})),
        "route 'bot': a 'reply' route needs match.source",
    ),
    "reply on both sources": (
        routes_text(reply_route(match={"source": ["messages", "events"]})),
        "route 'bot': a 'reply' route needs match.source",
    ),
    "deadline 0": (routes_text(reply_route(deadline=0)), "route 'bot': 'deadline'"),
    "deadline negative": (routes_text(reply_route(deadline=-1)), "route 'bot': 'deadline'"),
    "deadline 5": (routes_text(reply_route(deadline=5)), "route 'bot': 'deadline'"),
    "deadline 4.51": (routes_text(reply_route(deadline=4.51)), "route 'bot': 'deadline'"),
    "deadline true": (routes_text(reply_route(deadline=True)), "route 'bot': 'deadline'"),
    "deadline a string": (routes_text(reply_route(deadline="4")), "route 'bot': 'deadline'"),
    "deadline null": (routes_text(reply_route(deadline=None)), "route 'bot': 'deadline'"),
    "deadline NaN": (
        '[{"name": "bot", "match": {"source": "messages"}, "reply": "https://b.example/x",'
        ' "deadline": NaN}]',
        "route 'bot': 'deadline'",
    ),
    "match not an object": (
        routes_text({"name": "r1", "match": ["text"], "pubsub": "topic"}),
        "route 'r1': 'match' must be a JSON object",
    ),
    "unknown match key": (
        routes_text({"name": "r1", "match": {"appid": "wx1"}, "pubsub": "topic"}),
        "route 'r1': 'match' has unknown keys ['appid']",
    ),
    "match key in the singular": (
        routes_text({"name": "r1", "match": {"authorizer_appid": "wx1"}, "pubsub": "topic"}),
        "route 'r1': 'match' has unknown keys",
    ),
    "bad source": (
        routes_text({"name": "r1", "match": {"source": "message"}, "pubsub": "topic"}),
        "route 'r1': match.source takes messages or events",
    ),
    "empty list": (
        routes_text({"name": "r1", "match": {"msg_type": []}, "pubsub": "topic"}),
        "route 'r1': match.msg_type",
    ),
    "empty string": (
        routes_text({"name": "r1", "match": {"event": ""}, "pubsub": "topic"}),
        "route 'r1': match.event",
    ),
    "empty string in a list": (
        routes_text({"name": "r1", "match": {"event": ["CLICK", ""]}, "pubsub": "topic"}),
        "route 'r1': match.event",
    ),
    "a number": (
        routes_text({"name": "r1", "match": {"account_type": 1}, "pubsub": "topic"}),
        "route 'r1': match.account_type",
    ),
    "a number in a list": (
        routes_text({"name": "r1", "match": {"info_type": ["a", 2]}, "pubsub": "topic"}),
        "route 'r1': match.info_type",
    ),
    "null": (
        routes_text({"name": "r1", "match": {"msg_type": None}, "pubsub": "topic"}),
        "route 'r1': match.msg_type",
    ),
    "an object": (
        routes_text({"name": "r1", "match": {"authorizer_appids": {"a": 1}}, "pubsub": "topic"}),
        "route 'r1': match.authorizer_appids",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ROUTES), ids=list(BAD_ROUTES))
def test_bad_routes_are_refused_naming_the_route(case: str) -> None:
    text, expected = BAD_ROUTES[case]
    with pytest.raises(RouteError) as refused:
        parse_routes(text)
    assert expected in str(refused.value)


def test_a_bad_route_after_good_ones_is_named() -> None:
    text = routes_text(
        {"name": "first", "pubsub": "topic"},
        {"name": "second", "match": {"msg_type": "text"}, "pubsub": "x"},
    )
    with pytest.raises(RouteError, match="route 'second'"):
        parse_routes(text)


def test_route_error_is_a_value_error() -> None:
    assert issubclass(RouteError, ValueError)


# ----- first match -----------------------------------------------------------------------


def parsed(*routes: dict[str, Any]) -> tuple[Route, ...]:
    return parse_routes(routes_text(*routes))


def test_first_matching_route_wins() -> None:
    routes = parsed(
        {"name": "images", "match": {"msg_type": "image"}, "pubsub": "images"},
        {"name": "texts", "match": {"msg_type": "text"}, "pubsub": "texts"},
        {"name": "also-texts", "match": {"msg_type": "text"}, "pubsub": "more"},
        {"name": "all", "pubsub": "everything"},
    )
    assert _name(first_match(routes, pushed(msg_type="text"))) == "texts"
    assert _name(first_match(routes, pushed(msg_type="image"))) == "images"
    assert _name(first_match(routes, pushed(msg_type="voice"))) == "all"


def test_a_route_without_match_takes_everything_and_shadows_later_ones() -> None:
    routes = parsed(
        {"name": "all", "pubsub": "everything"},
        {"name": "texts", "match": {"msg_type": "text"}, "pubsub": "texts"},
    )
    for push in (
        pushed(),
        pushed(source="events", msg_type=None, info_type="authorized"),
        Pushed("events", None, None, None, None, None),
    ):
        assert _name(first_match(routes, push)) == "all"


def test_no_route_matches() -> None:
    routes = parsed({"name": "texts", "match": {"msg_type": "text"}, "pubsub": "texts"})
    assert first_match(routes, pushed(msg_type="image")) is None
    assert first_match((), pushed()) is None


@pytest.mark.parametrize(
    ("key", "wanted", "hit", "miss"),
    [
        ("source", "events", {"source": "events"}, {"source": "messages"}),
        (
            "authorizer_appids",
            ["wx00000000000000a1", "wx00000000000000a2"],
            {"authorizer_appid": "wx00000000000000a2"},
            {"authorizer_appid": "wx00000000000000a3"},
        ),
        ("account_type", "mini_program", {"account_type": "mini_program"}, {}),
        ("msg_type", ["text", "image"], {"msg_type": "image"}, {"msg_type": "voice"}),
        ("event", "CLICK", {"msg_type": "event", "event": "CLICK"}, {"event": "VIEW"}),
        (
            "info_type",
            "unauthorized",
            {"source": "events", "info_type": "unauthorized"},
            {"source": "events", "info_type": "authorized"},
        ),
    ],
)
def test_each_match_key_filters(
    key: str, wanted: Any, hit: dict[str, Any], miss: dict[str, Any]
) -> None:
    routes = parsed({"name": "only", "match": {key: wanted}, "pubsub": "topic"})
    assert _name(first_match(routes, pushed(**hit))) == "only"
    assert first_match(routes, pushed(**miss)) is None


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("authorizer_appids", "authorizer_appid"),
        ("account_type", "account_type"),
        ("msg_type", "msg_type"),
        ("event", "event"),
        ("info_type", "info_type"),
    ],
)
def test_an_unknown_field_never_matches_a_filter(key: str, field: str) -> None:
    """A push whose field is None (an events notice has no msg_type, an account whose type
    is not known yet has no account_type) is not taken by a route filtering on it."""
    routes = parsed(
        {"name": "filtered", "match": {key: ["None", "null", "x"]}, "pubsub": "topic"},
        {"name": "rest", "pubsub": "other"},
    )
    assert _name(first_match(routes, pushed(**{field: None}))) == "rest"


def test_all_match_keys_must_hold() -> None:
    routes = parsed(
        {
            "name": "clicks",
            "match": {"source": "messages", "msg_type": "event", "event": "CLICK"},
            "pubsub": "topic",
        }
    )
    assert first_match(routes, pushed(msg_type="event", event="CLICK")) is not None
    assert first_match(routes, pushed(msg_type="event", event="VIEW")) is None
    assert first_match(routes, pushed(source="events", msg_type="event", event="CLICK")) is None


# ----- topic paths -----------------------------------------------------------------------


def test_topic_path_puts_a_name_in_the_project() -> None:
    (route,) = parsed({"name": "all", "pubsub": "wechat-messages"})
    assert route.topic_path("my-project") == "projects/my-project/topics/wechat-messages"


def test_topic_path_keeps_a_full_path_whatever_the_project() -> None:
    (route,) = parsed({"name": "all", "pubsub": "projects/other-project/topics/wechat"})
    assert route.topic_path("my-project") == "projects/other-project/topics/wechat"
    assert route.topic_path(None) == "projects/other-project/topics/wechat"


@pytest.mark.parametrize("project", [None, ""])
def test_topic_path_of_a_name_needs_a_project(project: str | None) -> None:
    (route,) = parsed({"name": "all", "pubsub": "wechat-messages"})
    with pytest.raises(RouteError, match="route 'all'.*GOOGLE_CLOUD_PROJECT"):
        route.topic_path(project)


def _name(route: Route | None) -> str | None:
    return route.name if route is not None else None
