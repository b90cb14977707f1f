"""Delivery by route: Pub/Sub (the real emulator), reply routes (a real local HTTP server),
and the events URL's inbox when a delivery fails (the Firestore emulator)."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from devstack.processes import free_port
from devstack.pubsub_emulator import PubSubAdmin
from service.authorization_event_dispatch import Opened, PushDispatcher, inbox_key
from service.authorization_pushes import AuthorizationPushes
from service.config import Settings
from service.delivery import Delivered, Delivery, DeliveryFailed
from service.envelopes import attributes, encode, message_envelope, notice_envelope
from service.publisher import Publisher, PublishError
from service.routes import Pushed, parse_routes
from service.runtime import Runtime
from service.store.firestore import FirestoreStore
from service.store.records import AuthorizerRecord
from service.wechat.messages import (
    AccountMessage,
    build_xml,
    parse_account_message,
    parse_message,
    parse_xml_tree,
)
from tests.service.push_component import APPID, service_env

PROJECT = "delivery-test"
MERCHANT = "wx00000000000000a1"
MERCHANT_GH = "gh_00000000000a"
OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
NOW = 1700000123
PUBLISH_DEADLINE = 2.0


def text_message(content: str = "hello", msg_id: str = "6427251175451672521") -> str:
    return build_xml(
        {
            "ToUserName": MERCHANT_GH,
            "FromUserName": OPENID,
            "CreateTime": 1700000000,
            "MsgType": "text",
            "Content": content,
            "MsgId": msg_id,
        }
    )


def event_message(event: str = "CLICK") -> str:
    return build_xml(
        {
            "ToUserName": MERCHANT_GH,
            "FromUserName": OPENID,
            "CreateTime": 1700000000,
            "MsgType": "event",
            "Event": event,
            "EventKey": "V1001",
        }
    )


@dataclass(frozen=True)
class Push:
    pushed: Pushed
    envelope: dict[str, Any]
    message: AccountMessage


def push(xml: str) -> Push:
    """A message to MERCHANT as MessageDispatcher would deliver it."""
    message = parse_account_message(xml)
    envelope = message_envelope(APPID, MERCHANT, "official_account", message, xml, NOW)
    pushed = Pushed(
        source="messages",
        authorizer_appid=MERCHANT,
        account_type="official_account",
        msg_type=message.msg_type,
        event=message.event,
        info_type=None,
    )
    return Push(pushed, envelope, message)


def deliver(delivery: Delivery, given: Push) -> Delivered:
    return delivery.deliver(given.pushed, given.envelope, given.message)


# ----- Pub/Sub, on the emulator ----------------------------------------------------------


class Emulator:
    """Topics, each with a pull subscription made before anything is published to it."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.admin = PubSubAdmin(host, PROJECT)

    def topic(self) -> str:
        """A new topic's id; its pull subscription has the same id."""
        name = f"t-{uuid.uuid4().hex[:12]}"
        self.admin.create_topic(name)
        self._call("PUT", f"subscriptions/{name}", {"topic": f"projects/{PROJECT}/topics/{name}"})
        return name

    def pull(self, topic: str, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Exactly ``count`` messages: waits for them, then checks that no more are there."""
        got: list[dict[str, Any]] = []
        give_up = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < give_up:
            got += self._pull(topic)
        got += self._pull(topic)
        assert len(got) == count, got
        return got

    def _pull(self, topic: str) -> list[dict[str, Any]]:
        answer = self._call(
            "POST",
            f"subscriptions/{topic}:pull",
            {"maxMessages": 10, "returnImmediately": True},
        )
        received = answer.get("receivedMessages", [])
        if received:
            ack_ids = [r["ackId"] for r in received]
            self._call("POST", f"subscriptions/{topic}:acknowledge", {"ackIds": ack_ids})
        return [r["message"] for r in received]

    def _call(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = requests.request(
            method, f"http://{self.host}/v1/projects/{PROJECT}/{path}", json=body, timeout=10
        )
        response.raise_for_status()
        answer: dict[str, Any] = response.json() if response.content else {}
        return answer


@pytest.fixture
def emulator(pubsub_emulator: str, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator)
    return Emulator(pubsub_emulator)


@pytest.fixture
def publisher(emulator: Emulator) -> Iterator[Publisher]:
    publisher = Publisher(PUBLISH_DEADLINE)
    yield publisher
    publisher.client.stop()


def pubsub_delivery(publisher: Publisher, *routes: dict[str, Any]) -> Delivery:
    return Delivery(parse_routes(json.dumps(list(routes))), publisher, PROJECT)


def data(received: dict[str, Any]) -> bytes:
    return base64.b64decode(received["data"])


def test_a_pubsub_route_publishes_the_envelope_and_its_attributes(
    emulator: Emulator, publisher: Publisher
) -> None:
    topic = emulator.topic()
    delivery = pubsub_delivery(publisher, {"name": "all", "pubsub": topic})
    text = push(text_message())
    delivered = deliver(delivery, text)
    assert (delivered.kind, delivered.route, delivered.reply) == ("pubsub", "all", None)
    (received,) = emulator.pull(topic, 1)
    assert received["messageId"] == delivered.message_id
    assert data(received) == encode(text.envelope)
    assert json.loads(data(received)) == text.envelope
    assert received["attributes"] == {
        "component_appid": APPID,
        "authorizer_appid": MERCHANT,
        "source": "messages",
        "msg_type": "text",
    }


def test_an_events_notice_is_published_with_its_info_type(
    emulator: Emulator, publisher: Publisher
) -> None:
    topic = emulator.topic()
    delivery = Delivery(
        parse_routes(json.dumps([{"name": "ev", "pubsub": f"projects/{PROJECT}/topics/{topic}"}])),
        publisher,
        None,  # a full path needs no project
    )
    xml = build_xml(
        {"AppId": APPID, "CreateTime": 1, "InfoType": "unauthorized", "AuthorizerAppid": MERCHANT}
    )
    envelope = notice_envelope(parse_message(xml), xml, NOW, "key", None)
    pushed = Pushed("events", MERCHANT, None, None, None, "unauthorized")
    delivered = delivery.deliver(pushed, envelope)
    assert (delivered.kind, delivered.route) == ("pubsub", "ev")
    (received,) = emulator.pull(topic, 1)
    assert json.loads(data(received)) == envelope
    assert received["attributes"] == attributes(envelope)
    assert received["attributes"]["info_type"] == "unauthorized"
    assert "msg_type" not in received["attributes"]


def test_the_first_matching_route_publishes_and_an_unrouted_push_goes_nowhere(
    emulator: Emulator, publisher: Publisher
) -> None:
    texts, clicks = emulator.topic(), emulator.topic()
    delivery = pubsub_delivery(
        publisher,
        {"name": "texts", "match": {"msg_type": "text"}, "pubsub": texts},
        {"name": "clicks", "match": {"event": "CLICK"}, "pubsub": clicks},
        {"name": "late-texts", "match": {"msg_type": "text"}, "pubsub": clicks},
    )
    assert deliver(delivery, push(event_message("VIEW"))) == Delivered("unrouted")
    assert deliver(delivery, push(text_message("first"))).route == "texts"
    assert deliver(delivery, push(event_message("CLICK"))).route == "clicks"
    (text,) = emulator.pull(texts, 1)
    (click,) = emulator.pull(clicks, 1)
    assert json.loads(data(text))["fields"]["Content"] == "first"
    assert json.loads(data(click))["event"] == "CLICK"


def test_concurrent_publishes_are_each_acknowledged_once(
    emulator: Emulator, publisher: Publisher
) -> None:
    """Batching shares requests between messages; each still gets its own id."""
    topic = emulator.topic()
    delivery = pubsub_delivery(publisher, {"name": "all", "pubsub": topic})
    results: list[Delivered] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        delivered = deliver(delivery, push(text_message(f"m{i}", msg_id=str(i))))
        with lock:
            results.append(delivered)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(results) == 20
    ids = {r.message_id for r in results}
    assert len(ids) == 20 and None not in ids
    received = emulator.pull(topic, 20)
    assert {r["messageId"] for r in received} == ids
    assert sorted(json.loads(data(r))["fields"]["Content"] for r in received) == sorted(
        f"m{i}" for i in range(20)
    )


def test_a_missing_topic_fails_the_delivery_quickly(
    emulator: Emulator, publisher: Publisher
) -> None:
    delivery = pubsub_delivery(publisher, {"name": "gone", "pubsub": "no-such-topic"})
    started = time.monotonic()
    with pytest.raises(DeliveryFailed) as failed:
        deliver(delivery, push(text_message()))
    assert time.monotonic() - started < PUBLISH_DEADLINE + 1
    assert "route 'gone'" in str(failed.value)
    assert "NotFound" in str(failed.value)
    assert "hello" not in str(failed.value)  # the message itself is never in the error


def test_publisher_without_pubsub_gives_up_within_its_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{free_port()}")  # nothing listens
    publisher = Publisher(deadline=1.0)
    started = time.monotonic()
    with pytest.raises(PublishError) as failed:
        publisher.publish(f"projects/{PROJECT}/topics/anything", b"secret-body", {"a": "b"})
    elapsed = time.monotonic() - started
    assert elapsed < publisher.deadline + 1, elapsed
    assert "secret-body" not in str(failed.value)


class Forwarder:
    """A TCP port that forwards to Pub/Sub only once opened: Pub/Sub coming back."""

    def __init__(self, target: str) -> None:
        self.target = target.rsplit(":", 1)
        self.port = free_port()
        self.server: socketserver.ThreadingTCPServer | None = None

    def open(self) -> None:
        host, port = self.target[0], int(self.target[1])

        class Pipe(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with socket.create_connection((host, port), timeout=5) as upstream:
                    upstream.settimeout(None)
                    there = threading.Thread(target=_copy, args=(self.request, upstream))
                    there.start()
                    _copy(upstream, self.request)
                    there.join(5)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Pipe)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _copy(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def forwarder(emulator: Emulator) -> Iterator[Forwarder]:
    forwarder = Forwarder(emulator.host)
    yield forwarder
    forwarder.close()


def test_a_message_given_up_on_is_not_published_once_pubsub_is_back(
    emulator: Emulator, forwarder: Forwarder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client's own retries end with the deadline: WeChat's retry is the only one."""
    topic = emulator.topic()
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{forwarder.port}")
    publisher = Publisher(deadline=1.0)
    with pytest.raises(PublishError):
        publisher.publish(f"projects/{PROJECT}/topics/{topic}", b"given up", {})
    forwarder.open()
    opened = time.monotonic()
    # The same client reaches Pub/Sub now (its channel reconnects on its own)...
    message_id = ""
    while not message_id and time.monotonic() < opened + 10:
        with contextlib.suppress(PublishError):
            message_id = publisher.publish(f"projects/{PROJECT}/topics/{topic}", b"after", {})
    # ...and only the message published after it came back is there. A client retrying
    # on its own (measured: retries bounded by 30 s instead) publishes the first one
    # within 1.5 s of Pub/Sub's return: watch for 3 s.
    time.sleep(max(0.0, opened + 3 - time.monotonic()))
    (received,) = emulator.pull(topic, 1)
    assert data(received) == b"after" and received["messageId"] == message_id
    publisher.client.stop()


def test_delivery_without_pubsub_fails_so_wechat_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    delivery = pubsub_delivery(Publisher(deadline=0.5), {"name": "all", "pubsub": "topic"})
    started = time.monotonic()
    with pytest.raises(DeliveryFailed, match="route 'all'"):
        deliver(delivery, push(text_message()))
    assert time.monotonic() - started < 0.5 + 1


def test_no_route_is_unrouted_and_needs_no_pubsub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{free_port()}")  # nothing listens
    images = {"name": "images", "match": {"msg_type": "image"}, "pubsub": "images"}
    text = push(text_message())
    started = time.monotonic()
    assert deliver(pubsub_delivery(Publisher(deadline=0.5), images), text) == Delivered("unrouted")
    assert Delivery((), Publisher(deadline=0.5), None).deliver(
        text.pushed, text.envelope
    ) == Delivered("unrouted")
    assert time.monotonic() - started < 0.2  # no publish was tried


# ----- reply routes, against a real HTTP server ------------------------------------------


@dataclass
class ReplyService:
    """What the local reply service answers; what it was asked."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    hold: threading.Event | None = None  # answer only once it is set
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    def answer(self, status: int, body: Any = b"", **headers: str) -> None:
        self.status = status
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.headers = headers


ELSEWHERE = "/elsewhere"
REDIRECTED_REPLY = json.dumps({"msgtype": "text", "content": "redirected"}).encode()


@pytest.fixture
def reply_service() -> Iterator[ReplyService]:
    service = ReplyService()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            service.requests.append((self.path, dict(self.headers), body))
            if self.path == ELSEWHERE:  # where a redirect points: it would answer
                self.send_response(200)
                self.send_header("Content-Length", str(len(REDIRECTED_REPLY)))
                self.end_headers()
                self.wfile.write(REDIRECTED_REPLY)
                return
            if service.hold is not None:
                service.hold.wait(10)
            try:
                self.send_response(service.status)
                for name, value in service.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(service.body)))
                self.end_headers()
                self.wfile.write(service.body)
            except ConnectionError:
                pass  # the gateway gave up waiting: the late answer has nobody to go to

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    service.url = f"http://127.0.0.1:{server.server_address[1]}/wechat/reply"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield service
    if service.hold is not None:
        service.hold.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def reply_delivery(url: str, deadline: float = 2.0) -> Delivery:
    route = {"name": "bot", "match": {"source": "messages"}, "reply": url, "deadline": deadline}
    return Delivery(parse_routes(json.dumps([route])), Publisher(), PROJECT, clock=lambda: NOW)


def test_a_reply_route_answers_with_a_passive_reply(reply_service: ReplyService) -> None:
    reply_service.answer(200, {"msgtype": "text", "content": "你说：hello"})
    text = push(text_message())
    delivered = deliver(reply_delivery(reply_service.url), text)
    assert (delivered.kind, delivered.route, delivered.message_id) == ("reply", "bot", None)
    assert delivered.reply is not None
    assert parse_xml_tree(delivered.reply) == {
        "ToUserName": OPENID,
        "FromUserName": MERCHANT_GH,
        "CreateTime": str(NOW),
        "MsgType": "text",
        "Content": "你说：hello",
    }
    # The service was asked once, with the envelope as JSON.
    ((path, headers, body),) = reply_service.requests
    assert path == "/wechat/reply"
    assert headers["Content-Type"].startswith("application/json")
    assert body == encode(text.envelope)


def test_a_news_reply(reply_service: ReplyService) -> None:
    articles = [{"title": f"T{i}", "url": f"https://a.example/{i}"} for i in range(3)]
    reply_service.answer(200, {"msgtype": "news", "articles": articles})
    delivered = deliver(reply_delivery(reply_service.url), push(text_message()))
    assert delivered.reply is not None
    fields = parse_xml_tree(delivered.reply)
    assert fields["ArticleCount"] == "3"
    assert [a["Title"] for a in fields["Articles"]["item"]] == ["T0", "T1", "T2"]


NO_REPLY: dict[str, tuple[int, Any]] = {
    "204": (204, b""),
    "200 empty": (200, b""),
    "200 blank": (200, b" \n"),
    "200 {}": (200, {}),
    "500 with a reply": (500, {"msgtype": "text", "content": "x"}),
    "404": (404, b"not found"),
    "302 not followed": (302, b""),
    "307 not followed": (307, b""),
    "not JSON": (200, b"hello there"),
    "JSON list": (200, [{"msgtype": "text", "content": "x"}]),
    "JSON string": (200, "text"),
    "unknown msgtype": (200, {"msgtype": "mpnews", "media_id": "m"}),
    "text without content": (200, {"msgtype": "text"}),
    "a character XML does not allow": (200, {"msgtype": "text", "content": "a\u0001b"}),
    "a lone surrogate": (200, b'{"msgtype": "text", "content": "a\\ud800b"}'),
}


@pytest.mark.parametrize("case", list(NO_REPLY), ids=list(NO_REPLY))
def test_anything_but_a_reply_leaves_the_user_without_one(
    case: str, reply_service: ReplyService
) -> None:
    status, body = NO_REPLY[case]
    extra = {"Location": reply_service.url.replace("/wechat/reply", ELSEWHERE)}
    reply_service.answer(status, body, **extra)
    delivered = deliver(reply_delivery(reply_service.url), push(text_message()))
    assert delivered == Delivered("reply", "bot")
    assert len(reply_service.requests) == 1  # never asked twice: the service may act on it


@pytest.mark.parametrize(
    ("status", "body"), [(204, b""), (200, b""), (200, {})], ids=["204", "empty", "{}"]
)
def test_no_reply_on_purpose_is_not_a_warning(
    status: int, body: Any, reply_service: ReplyService, caplog: pytest.LogCaptureFixture
) -> None:
    reply_service.answer(status, body)
    with caplog.at_level(logging.INFO, logger="service.delivery"):
        assert deliver(reply_delivery(reply_service.url), push(text_message())).reply is None
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize(
    ("status", "body", "logged"),
    [
        (500, b"boom", "reply route answered an error"),
        (200, b"hello", "not a reply"),
        (200, {"msgtype": "bogus"}, "not a reply"),
    ],
)
def test_a_failing_reply_route_is_a_warning(
    status: int,
    body: Any,
    logged: str,
    reply_service: ReplyService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reply_service.answer(status, body)
    assert deliver(reply_delivery(reply_service.url), push(text_message())).reply is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [logged in r.getMessage() for r in warnings] == [True]
    assert getattr(warnings[0], "route", None) == "bot"


def test_a_reply_route_past_its_deadline_gives_no_reply_in_time(
    reply_service: ReplyService, caplog: pytest.LogCaptureFixture
) -> None:
    reply_service.hold = threading.Event()
    reply_service.answer(200, {"msgtype": "text", "content": "too late"})
    delivery = reply_delivery(reply_service.url, deadline=0.5)
    started = time.monotonic()
    delivered = deliver(delivery, push(text_message()))
    elapsed = time.monotonic() - started
    assert delivered == Delivered("reply", "bot")
    assert 0.45 <= elapsed < 0.5 + 0.5, elapsed
    assert len(reply_service.requests) == 1
    assert any("did not answer within 0.5 s" in r.getMessage() for r in caplog.records)


def test_a_reply_route_nobody_listens_on_gives_no_reply(reply_service: ReplyService) -> None:
    url = f"http://127.0.0.1:{free_port()}/wechat"
    started = time.monotonic()
    delivered = deliver(reply_delivery(url, deadline=1.0), push(text_message()))
    assert delivered == Delivered("reply", "bot")
    assert time.monotonic() - started < 1.0
    assert reply_service.requests == []


def test_events_never_go_to_a_reply_route(reply_service: ReplyService) -> None:
    """Reply routes need match.source "messages": a notice falls through to the next one."""
    route = {"name": "bot", "match": {"source": "messages"}, "reply": reply_service.url}
    delivery = Delivery(parse_routes(json.dumps([route])), Publisher(), PROJECT)
    pushed = Pushed("events", MERCHANT, None, None, None, "unauthorized")
    assert delivery.deliver(pushed, {"source": "events"}) == Delivered("unrouted")
    assert reply_service.requests == []


# ----- the events URL: a push handled but not delivered ----------------------------------


class FlakyDelivery(Delivery):
    """Fails the first ``failures`` deliveries, then delivers; records every envelope."""

    def __init__(self, failures: int) -> None:
        routes = parse_routes('[{"name": "all", "pubsub": "all"}]')  # it never publishes
        super().__init__(routes, Publisher(), PROJECT)
        self.failures = failures
        self.envelopes: list[dict[str, Any]] = []

    def deliver(
        self,
        pushed: Pushed,
        envelope: Mapping[str, Any],
        message: AccountMessage | None = None,
    ) -> Delivered:
        self.envelopes.append(dict(envelope))
        if len(self.envelopes) <= self.failures:
            raise DeliveryFailed("route 'all': Pub/Sub did not acknowledge within 3 s")
        return Delivered("pubsub", "all", message_id=str(len(self.envelopes)))


@dataclass
class Dispatch:
    dispatcher: PushDispatcher
    delivery: FlakyDelivery
    handled: list[str]


@pytest.fixture
def dispatch(
    store: FirestoreStore, firestore_project: str, monkeypatch: pytest.MonkeyPatch
) -> Dispatch:
    runtime = Runtime(Settings.from_env(service_env(firestore_project)), store=store)
    pushes: AuthorizationPushes = runtime.authorization_pushes
    handled: list[str] = []
    on_unauthorized = pushes.on_unauthorized

    def counted(push: Any) -> Any:
        handled.append(push.authorizer_appid)
        return on_unauthorized(push)

    monkeypatch.setattr(pushes, "on_unauthorized", counted)
    delivery = FlakyDelivery(failures=1)
    return Dispatch(PushDispatcher(runtime.tickets, pushes, store, delivery), delivery, handled)


def unauthorized(create_time: int = 1700000000) -> Opened:
    xml = build_xml(
        {
            "AppId": APPID,
            "CreateTime": create_time,
            "InfoType": "unauthorized",
            "AuthorizerAppid": MERCHANT,
        }
    )
    return Opened(parse_message(xml), xml, used_previous_key=False)


def test_a_push_not_delivered_is_delivered_on_the_next_try_without_being_handled_again(
    dispatch: Dispatch, store: FirestoreStore
) -> None:
    held = AuthorizerRecord(
        component_appid=APPID,
        appid=MERCHANT,
        account_type="official_account",
        access_token="SECRET-ACCESS",
        refresh_token="SECRET-REFRESH",
    )
    store.modify_authorizer(APPID, MERCHANT, lambda _: held)
    opened = unauthorized()
    key = inbox_key(opened.message)

    with pytest.raises(DeliveryFailed, match="did not acknowledge"):
        dispatch.dispatcher.dispatch(opened, received_at=NOW)
    assert dispatch.handled == [MERCHANT]
    entry = store.get_inbox_entry(APPID, key)
    assert entry is not None
    assert (entry.outcome, entry.final, entry.delivered) == ("revoked", True, False)
    record = store.get_authorizer(APPID, MERCHANT)
    assert record is not None and record.status == "revoked"  # handled, though not delivered

    # WeChat's next try: delivered, not handled again (a second revocation would say
    # "already_revoked" and add a second history entry).
    assert dispatch.dispatcher.dispatch(opened, received_at=NOW + 5) == "revoked"
    assert dispatch.handled == [MERCHANT]
    entry = store.get_inbox_entry(APPID, key)
    assert entry is not None
    assert (entry.outcome, entry.final, entry.delivered) == ("revoked", True, True)
    assert len(dispatch.delivery.envelopes) == 2
    delivered = dispatch.delivery.envelopes[-1]
    assert delivered["dedup_key"] == key == dispatch.delivery.envelopes[0]["dedup_key"]
    assert delivered["result"]["status"] == "revoked"
    assert "SECRET" not in encode(delivered).decode()
    record = store.get_authorizer(APPID, MERCHANT)
    assert record is not None
    assert sum(1 for h in record.history if h["event"] == "unauthorized") == 1

    # A third try is a duplicate: neither handled nor delivered.
    assert dispatch.dispatcher.dispatch(opened, received_at=NOW + 10) == "duplicate"
    assert dispatch.handled == [MERCHANT]
    assert len(dispatch.delivery.envelopes) == 2


def test_a_push_delivered_at_once_is_a_duplicate_next_time(dispatch: Dispatch) -> None:
    dispatch.delivery.failures = 0
    opened = unauthorized()
    assert dispatch.dispatcher.dispatch(opened, received_at=NOW) == "revoked"
    assert dispatch.dispatcher.dispatch(opened, received_at=NOW) == "duplicate"
    assert dispatch.handled == [MERCHANT]
    assert len(dispatch.delivery.envelopes) == 1


def test_another_push_is_handled_and_delivered_on_its_own(
    dispatch: Dispatch, store: FirestoreStore
) -> None:
    with pytest.raises(DeliveryFailed):
        dispatch.dispatcher.dispatch(unauthorized(1700000000), received_at=NOW)
    later = unauthorized(1700000100)
    assert dispatch.dispatcher.dispatch(later, received_at=NOW) == "already_revoked"
    assert dispatch.handled == [MERCHANT, MERCHANT]
    entry = store.get_inbox_entry(APPID, inbox_key(later.message))
    assert entry is not None and entry.delivered
    first = store.get_inbox_entry(APPID, inbox_key(unauthorized(1700000000).message))
    assert first is not None and not first.delivered


def test_without_routes_a_push_is_not_enveloped_and_its_authorizer_not_read(
    dispatch: Dispatch, store: FirestoreStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    dispatch.delivery.routes = ()
    reads: list[str] = []
    get_authorizer = store.get_authorizer

    def counted(component_appid: str, appid: str, **kwargs: Any) -> Any:
        reads.append(appid)
        return get_authorizer(component_appid, appid, **kwargs)

    monkeypatch.setattr(store, "get_authorizer", counted)
    assert dispatch.dispatcher.dispatch(unauthorized(), received_at=NOW) == "revoked"
    assert dispatch.delivery.envelopes == []  # not even asked
    revocation_reads = len(reads)
    dispatch.delivery.routes = parse_routes('[{"name": "all", "pubsub": "all"}]')
    dispatch.delivery.failures = 0
    assert dispatch.dispatcher.dispatch(unauthorized(1700000001), received_at=NOW) != "duplicate"
    assert len(reads) == revocation_reads * 2 + 1  # the same reads, and one for the envelope
