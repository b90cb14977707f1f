"""The console in-process (Flask's test client) on the Firestore emulator: who gets in, the
session cookie and CSRF, finding an authorizer among 2,000, the push log's cost and
masking, replay into the routes (never into the authorization logic), and the audit log.

The flows that need WeChat (renewing, sync, links) run on the real stack in
tests/browser/test_console.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service import create_app
from service.console_auth import GCLOUD_CLIENT_ID, SESSION_COOKIE, SessionCodec, new_session
from service.console_pushlog import PushLog, ReplayRefused, replay
from service.console_store import ConsoleStore
from service.delivery import Delivery
from service.publisher import Publisher
from service.routes import parse_routes
from service.store.firestore import FirestoreStore
from service.store.records import AuthorizerRecord
from service.web.console_log import push_log
from service.wechat.messages import parse_account_message, parse_message
from tests.service.google_keys import CertsServer, SigningKey, claims, strip_signature
from tests.service.test_config import PER_VARIABLE

COMPONENT = "wx0123456789abcdef"
API_KEY = "console-test-key-0123456789"
OPERATOR = "ops@example.com"
INTERNAL_URL = "https://wcg-internal-123456789012.asia-east2.run.app"
CODE = "queryauthcode@@@SECRETcodeSECRETcodeSECRETcode"
TOKEN_TEXT = "access_token=TOKEN-VALUE-123456"


def local_env(project: str, **overrides: str) -> dict[str, str]:
    return {
        **PER_VARIABLE,
        "SERVICE_API_KEYS": API_KEY,
        "GOOGLE_CLOUD_PROJECT": project,
        "WECHAT_API_BASE": "http://127.0.0.1:9",
        **overrides,
    }


@pytest.fixture
def app(firestore_project: str) -> Flask:
    return create_app(local_env(firestore_project))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def sign_in(client: FlaskClient) -> str:
    """Sign in with the API key; the CSRF token of the session."""
    form = client.get("/console/login")
    response = client.post(
        "/console/login", data={"key": API_KEY, "csrf_token": csrf_of(form.get_data(True))}
    )
    assert response.status_code == 302, response.get_data(True)
    return csrf_of(client.get("/console/").get_data(True))


# ----- signing in ---------------------------------------------------------------------------


def test_pages_need_a_session_and_the_key_signs_in(client: FlaskClient) -> None:
    response = client.get("/console/authorizers")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/console/login?next=")
    form = client.get("/console/login")
    assert form.status_code == 200 and "登录控制台" in form.get_data(True)
    token = csrf_of(form.get_data(True))
    wrong = client.post("/console/login", data={"key": "not-the-key", "csrf_token": token})
    assert wrong.status_code == 401 and "密钥不正确" in wrong.get_data(True)
    token = csrf_of(wrong.get_data(True))
    right = client.post(
        "/console/login",
        data={"key": API_KEY, "csrf_token": token, "next": "/console/authorizers"},
    )
    assert right.status_code == 302 and right.headers["Location"] == "/console/authorizers"
    cookie = right.headers["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=1800"):
        assert attribute in cookie
    assert API_KEY not in cookie
    page = client.get("/console/authorizers")
    assert page.status_code == 200
    assert "当前登录" in page.get_data(True) and API_KEY not in page.get_data(True)
    assert page.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


def test_sign_in_goes_nowhere_but_the_console(client: FlaskClient) -> None:
    token = csrf_of(client.get("/console/login").get_data(True))
    for target in ("https://evil.example/", "//evil.example/console", "/api/v1/x"):
        response = client.post(
            "/console/login", data={"key": API_KEY, "csrf_token": token, "next": target}
        )
        assert response.headers["Location"] == "/console/"
        token = csrf_of(client.get("/console/").get_data(True))
        client.post("/console/logout", data={"csrf_token": token})
        token = csrf_of(client.get("/console/login").get_data(True))


def test_the_session_lasts_30_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    codec = SessionCodec(b"k" * 32)
    cookie = codec.dump(new_session("someone"))
    assert codec.load(cookie) == codec.load(cookie) is not None
    later = time.time() + 1801
    monkeypatch.setattr(time, "time", lambda: later)
    assert codec.load(cookie) is None
    assert SessionCodec(b"x" * 32).load(codec.dump(new_session("a"))) is None  # another key


def test_every_form_post_needs_the_sessions_csrf_token(client: FlaskClient) -> None:
    token = sign_in(client)
    path = f"/console/components/{COMPONENT}/sync"
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": token[:-1]}):
        response = client.post(path, data=data)
        assert response.status_code == 403 and "CSRF" in response.get_data(True)
    # Without a session at all, a POST goes to the sign-in page instead.
    assert FlaskClient(client.application).post(path).status_code == 302


def test_signing_out_ends_the_session(client: FlaskClient) -> None:
    token = sign_in(client)
    response = client.post("/console/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert client.get("/console/").status_code == 302


def test_the_public_role_serves_no_console(firestore_project: str) -> None:
    public = create_app(local_env(firestore_project, SERVICE_ROLE="public")).test_client()
    response = public.get("/console/")
    assert response.status_code == 404
    assert "internal service" in response.get_json()["error"]


# ----- in the cloud: the identity gcloud run services proxy sends ---------------------------


@pytest.fixture
def signing_key() -> SigningKey:
    return SigningKey("console-key")


@pytest.fixture
def cloud_client(firestore_project: str, signing_key: SigningKey) -> Iterator[FlaskClient]:
    with CertsServer(signing_key).running() as certs:
        env = local_env(
            firestore_project,
            SERVICE_ROLE="internal",
            INTERNAL_AUTH="cloud_run_iam",
            INTERNAL_AUDIENCE=INTERNAL_URL,
            INTERNAL_INVOKERS="scheduler@p.iam.gserviceaccount.com",
            CONSOLE_OPERATORS=f"{OPERATOR}, second@example.com",
            ID_TOKEN_CERTS_URL=certs.url,
        )
        yield create_app(env).test_client()


def test_in_the_cloud_the_operators_gcloud_token_gets_in(
    cloud_client: FlaskClient, signing_key: SigningKey
) -> None:
    # What Cloud Run passes on from the proxy: gcloud's audience, the signature removed.
    token = strip_signature(signing_key.sign(claims(OPERATOR, GCLOUD_CLIENT_ID)))
    response = cloud_client.get("/console/", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_data(True)
    html = response.get_data(True)
    assert OPERATOR in html and "退出" not in html
    assert "HttpOnly" in response.headers["Set-Cookie"]
    # An intact token for the service's own URL is verified and taken too.
    intact = signing_key.sign(claims(OPERATOR, INTERNAL_URL))
    assert (
        cloud_client.get("/console/", headers={"Authorization": f"Bearer {intact}"}).status_code
        == 200
    )


@pytest.mark.parametrize(
    ("email", "audience", "status", "says"),
    [
        ("scheduler@p.iam.gserviceaccount.com", GCLOUD_CLIENT_ID, 403, "console_operators"),
        ("intruder@example.com", GCLOUD_CLIENT_ID, 403, "CONSOLE_OPERATORS"),
        (OPERATOR, "https://another-service.run.app", 401, "audience"),
    ],
)
def test_in_the_cloud_anyone_else_is_refused(
    cloud_client: FlaskClient,
    signing_key: SigningKey,
    email: str,
    audience: str,
    status: int,
    says: str,
) -> None:
    token = strip_signature(signing_key.sign(claims(email, audience)))
    response = cloud_client.get("/console/", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == status
    assert says in response.get_data(True)


def test_in_the_cloud_no_token_no_page_and_posts_need_csrf(
    cloud_client: FlaskClient, signing_key: SigningKey
) -> None:
    response = cloud_client.get("/console/")
    assert response.status_code == 401 and "gcloud run services proxy" in response.get_data(True)
    token = strip_signature(signing_key.sign(claims(OPERATOR, GCLOUD_CLIENT_ID)))
    headers = {"Authorization": f"Bearer {token}"}
    # The proxy adds the operator's token to any request, a forged one too: CSRF stops it.
    forged = cloud_client.post(f"/console/components/{COMPONENT}/sync", headers=headers)
    assert forged.status_code == 403 and "CSRF" in forged.get_data(True)


# ----- finding an authorizer among 2,000 -------------------------------------------------------


def seed(store: FirestoreStore, count: int) -> list[str]:
    """``count`` authorizers written in batches: names 商户0000..., every third revoked,
    every second a mini program."""
    appids = []
    collection = store.client.collection("components").document(COMPONENT).collection("authorizers")
    batch = store.client.batch()
    for i in range(count):
        appid = f"wx{i:016x}"
        appids.append(appid)
        record = AuthorizerRecord(
            component_appid=COMPONENT,
            appid=appid,
            status="revoked" if i % 3 == 0 else "authorized",
            account_type="mini_program" if i % 2 else "official_account",
            nick_name=f"商户{i:04d}",
            access_token_expires_at=time.time() + 3600,
        )
        batch.set(collection.document(appid), record.to_document())
        if i % 400 == 399:
            batch.commit()
            batch = store.client.batch()
    batch.commit()
    return appids


def appids_on(html: str) -> list[str]:
    return re.findall(r'<tr data-appid="(wx[0-9a-f]{16})"', html)


def test_two_thousand_authorizers_page_by_appid_with_bounded_reads(
    app: Flask, client: FlaskClient, store: FirestoreStore
) -> None:
    appids = seed(store, 2000)
    sign_in(client)
    counter = app.extensions["gateway"].store.ops
    seen: list[str] = []
    url: str | None = f"/console/authorizers?component={COMPONENT}"
    pages = 0
    while url is not None:
        before = counter.snapshot()[0]
        started = time.monotonic()
        html = client.get(url).get_data(True)
        elapsed = time.monotonic() - started
        # One query of one page (51 documents), whatever the page number.
        assert counter.snapshot()[0] - before <= 51
        assert elapsed < 5, f"page {pages} took {elapsed:.1f} s"
        seen += appids_on(html)
        found = re.search(r'href="([^"]+)" id="next-page"', html)
        url = found.group(1).replace("&amp;", "&") if found else None
        pages += 1
    assert pages == 40 and seen == appids


def test_search_by_appid_prefix_name_prefix_status_and_type(
    client: FlaskClient, store: FirestoreStore
) -> None:
    appids = seed(store, 2000)
    sign_in(client)
    base = f"/console/authorizers?component={COMPONENT}"
    # A whole appid: that one.
    assert appids_on(client.get(f"{base}&q={appids[1234]}").get_data(True)) == [appids[1234]]
    # A prefix: wx00000000000004d? = 0x4d0..0x4df.
    prefix = appids[0x4D0][:-1]
    assert appids_on(client.get(f"{base}&q={prefix}").get_data(True)) == appids[0x4D0:0x4E0]
    # A name's beginning, with filters: 商户12xx, authorized mini programs.
    html = client.get(f"{base}&q=商户12&status=authorized&type=mini_program").get_data(True)
    expected = [f"wx{i:016x}" for i in range(1200, 1300) if i % 3 and i % 2]
    assert appids_on(html) == expected[:50]
    assert "只显示名称以" not in html or len(expected) > 50
    # Nothing found, said so.
    assert "没有符合条件的授权方" in client.get(f"{base}&q=不存在").get_data(True)
    # Bad filters are refused with a reason.
    for query in ("&status=gone", "&type=robot", "&after=../../x"):
        response = client.get(base + query)
        assert response.status_code == 400 and "参数错误" in response.get_data(True)


def test_the_detail_page_shows_the_record_never_the_token(
    client: FlaskClient, store: FirestoreStore
) -> None:
    appid = "wx00000000000000aa"
    record = AuthorizerRecord(
        component_appid=COMPONENT,
        appid=appid,
        nick_name="详情公众号",
        account_type="official_account",
        func_info=(1, 15),
        access_token="AT-SECRET-VALUE",
        refresh_token="RT-SECRET-VALUE",
        access_token_expires_at=time.time() + 3000,
        last_error="api_authorizer_token: errcode 61023",
        sync_flag="not_listed_by_wechat",
    ).with_event(time.time(), "authorized", source="callback")
    store.modify_authorizer(COMPONENT, appid, lambda _: record)
    sign_in(client)
    html = client.get(f"/console/components/{COMPONENT}/authorizers/{appid}").get_data(True)
    for shown in (
        "详情公众号",
        "消息管理",
        "自定义菜单",
        "61023",
        "微信授权列表中没有",
        "authorized",
    ):
        assert shown in html
    assert "AT-SECRET-VALUE" not in html and "RT-SECRET-VALUE" not in html
    missing = client.get(f"/console/components/{COMPONENT}/authorizers/wx00000000000000ab")
    assert missing.status_code == 404
    assert client.get(f"/console/components/{COMPONENT}/authorizers/bad").status_code == 400
    assert client.get("/console/components/wx9999999999999999/authorizers/x").status_code == 404


# ----- the push log -------------------------------------------------------------------------


class FakePublisher(Publisher):
    def __init__(self) -> None:
        super().__init__(1.0, 0.0)
        self.published: list[tuple[str, bytes, dict[str, str]]] = []

    def publish(self, topic_path: str, data: bytes, attributes: Mapping[str, str]) -> str:
        self.published.append((topic_path, data, dict(attributes)))
        return f"m-{len(self.published)}"


ROUTES = parse_routes(
    '[{"name": "bot", "match": {"source": "messages", "msg_type": "text",'
    ' "authorizer_appids": ["wx00000000000000bb"]}, "reply": "https://bot.example.com/reply"},'
    ' {"name": "all", "pubsub": "gateway-pushes"}]'
)

AUTHORIZED_XML = (
    f"<xml><AppId>{COMPONENT}</AppId><CreateTime>1700000000</CreateTime>"
    "<InfoType>authorized</InfoType><AuthorizerAppid>wx00000000000000cc</AuthorizerAppid>"
    f"<AuthorizationCode>{CODE}</AuthorizationCode>"
    "<AuthorizationCodeExpiredTime>1700003600</AuthorizationCodeExpiredTime>"
    "<PreAuthCode>preauthcode@@@PRECODEPRECODE</PreAuthCode></xml>"
)
TICKET_XML = (
    f"<xml><AppId>{COMPONENT}</AppId><CreateTime>1700000000</CreateTime>"
    "<InfoType>component_verify_ticket</InfoType>"
    "<ComponentVerifyTicket>ticket@@@TICKETVALUE</ComponentVerifyTicket></xml>"
)


def text_xml(appid_user: str, content: str, msg_id: int) -> str:
    return (
        f"<xml><ToUserName>gh_{appid_user}</ToUserName><FromUserName>openid-1</FromUserName>"
        f"<CreateTime>1700000000</CreateTime><MsgType>text</MsgType>"
        f"<Content>{content}</Content><MsgId>{msg_id}</MsgId></xml>"
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def a_push_log(store: FirestoreStore, clock: Clock, capacity: int = 500) -> PushLog:
    delivery = Delivery(ROUTES, FakePublisher(), "gateway-test")
    return PushLog(ConsoleStore(store), delivery, capacity, 60.0, clock=clock)


def log_message(log: PushLog, content: str, msg_id: int, at: float) -> Any:
    xml = text_xml("ab", content, msg_id)
    message = parse_account_message(xml)
    return log.message(COMPONENT, "wx00000000000000aa", message, xml, "pubsub", "all", at)


def test_messages_cost_no_write_each_and_one_per_flush(store: FirestoreStore) -> None:
    clock = Clock()
    log = a_push_log(store, clock)
    flush = log_message(log, "hello", 1, clock.now)
    assert flush() is False  # the first write comes an interval after the start
    clock.now += 60
    assert store.ops.snapshot() == (0, 0)
    assert flush() is True
    assert store.ops.snapshot() == (0, 1)
    for i in range(300):  # the bulk: no write while the minute runs
        assert log_message(log, f"m{i}", 100 + i, clock.now + i / 1000)() is False
    assert store.ops.snapshot() == (0, 1)
    clock.now += 59.9
    assert log.flush_if_due() is False
    clock.now += 0.2
    assert log.due() and log.flush_if_due() is True
    assert store.ops.snapshot() == (0, 2)  # 301 messages: two writes
    shown = log.recent([COMPONENT], clock.now - 3600)
    assert len(shown) == 301 and all(p.stored for p in shown)
    assert shown[0].xml.count("<Content>m299</Content>") == 1


def test_past_its_bound_the_buffer_drops_the_oldest(store: FirestoreStore) -> None:
    clock = Clock()
    log = a_push_log(store, clock, capacity=10)
    clock.now += 60
    log_message(log, "first", 1, clock.now)()
    for i in range(25):
        log_message(log, f"m{i}", 10 + i, clock.now)
    clock.now += 61
    assert log.flush_if_due()
    batches = ConsoleStore(store).recent_batches(0, 10)
    newest = max(batches, key=lambda b: b.flushed_at)
    assert len(newest.entries) == 10 and newest.dropped == 15
    assert [e["xml"].split("<Content>")[1][:3] for e in newest.entries][0] == "m15"


def test_bodies_are_masked_and_bounded(store: FirestoreStore) -> None:
    clock = Clock()
    log = a_push_log(store, clock)
    clock.now += 60
    log_message(log, f"my {TOKEN_TEXT} and {CODE} " + "长" * 2000, 1, clock.now)()
    log.event(parse_message(AUTHORIZED_XML), AUTHORIZED_XML, "exchanged", clock.now)
    stored = log.recent([COMPONENT], 0)
    assert {p.source for p in stored} == {"events", "messages"}
    for push in stored:
        for secret in ("TOKEN-VALUE-123456", "SECRETcode", "PRECODEPRECODE"):
            assert secret not in push.xml
    message = next(p for p in stored if p.source == "messages")
    assert message.truncated and len(message.xml.encode()) <= 1500 + 10


def test_events_are_one_write_each_and_tickets_none(store: FirestoreStore) -> None:
    clock = Clock()
    log = a_push_log(store, clock)
    log.event(parse_message(TICKET_XML), TICKET_XML, "stored", clock.now)
    assert store.ops.snapshot() == (0, 0)
    log.event(parse_message(AUTHORIZED_XML), AUTHORIZED_XML, "duplicate", clock.now)
    assert store.ops.snapshot() == (0, 0)
    log.event(parse_message(AUTHORIZED_XML), AUTHORIZED_XML, "exchanged", clock.now)
    assert store.ops.snapshot() == (0, 1)
    (event,) = log.recent([COMPONENT], 0)
    assert (event.info_type, event.outcome, event.route) == ("authorized", "exchanged", "all")
    assert event.authorizer_appid == "wx00000000000000cc"


def test_a_replayed_authorized_push_is_delivered_and_exchanges_nothing(
    store: FirestoreStore,
) -> None:
    clock = Clock()
    log = a_push_log(store, clock)
    log.event(parse_message(AUTHORIZED_XML), AUTHORIZED_XML, "exchanged", clock.now)
    (push,) = log.recent([COMPONENT], 0)
    found = log.find(push.ref)
    assert found is not None and found.xml == push.xml
    # The store is only read (the authorizer for the envelope's result), never written.
    before = store.ops.snapshot()[1]
    replayed = replay(found, store, log.delivery, clock=clock)
    assert store.ops.snapshot()[1] == before
    assert replayed.route == "all" and replayed.message_id == "m-1"
    publisher = log.delivery.publisher
    assert isinstance(publisher, FakePublisher)
    (topic, data, attributes) = publisher.published[0]
    assert topic == "projects/gateway-test/topics/gateway-pushes"
    body = data.decode()
    assert "SECRETcode" not in body and "<AuthorizationCode>" not in body
    assert '"replayed_at"' in body and push.ref.rsplit(":", 1)[1] in body  # same dedup_key
    assert attributes["info_type"] == "authorized"


def test_a_reply_route_is_not_replayed(store: FirestoreStore) -> None:
    clock = Clock()
    log = a_push_log(store, clock)
    clock.now += 60
    xml = text_xml("bb", "hi", 7)
    log.message(
        COMPONENT,
        "wx00000000000000bb",
        parse_account_message(xml),
        xml,
        "replied",
        "bot",
        clock.now,
    )()
    (push,) = log.recent([COMPONENT], 0)
    with pytest.raises(ReplayRefused, match="reply 路由"):
        replay(push, store, log.delivery)
    assert log.delivery.publisher.published == []  # type: ignore[attr-defined]


def test_the_push_log_page_filters_and_replays(app: Flask, client: FlaskClient) -> None:
    token = sign_in(client)
    with app.test_request_context():
        log = push_log()
        log.delivery = Delivery(ROUTES, FakePublisher(), "gateway-test")
        log.event(parse_message(AUTHORIZED_XML), AUTHORIZED_XML, "exchanged", time.time())
        xml = text_xml("ab", "hello page", 9)
        log.message(
            COMPONENT,
            "wx00000000000000aa",
            parse_account_message(xml),
            xml,
            "pubsub",
            "all",
            time.time(),
        )
    html = client.get("/console/pushes").get_data(True)
    assert "authorized" in html and "hello page" in html and "SECRETcode" not in html
    assert "exchanged" in html and "ticket@@@[redacted]" in html
    only_text = client.get("/console/pushes?kind=text").get_data(True)
    assert "hello page" in only_text and 'data-kind="authorized"' not in only_text
    by_appid = client.get("/console/pushes?appid=wx00000000000000cc").get_data(True)
    assert 'data-kind="authorized"' in by_appid and "hello page" not in by_appid
    ref = re.search(r'data-ref="(e:[^"]+)"', html)
    assert ref is not None
    replayed = client.post(
        "/console/pushes/replay", data={"ref": ref.group(1), "csrf_token": token}
    )
    assert replayed.status_code == 200 and "已重新投递到路由 all" in replayed.get_data(True)
    audit = client.get("/console/audit").get_data(True)
    assert "replay_push" in audit and "sign_in" in audit
    assert (
        client.post(
            "/console/pushes/replay", data={"ref": "e:nope:nope", "csrf_token": token}
        ).status_code
        == 404
    )


def test_the_overview_stands_out_when_unhealthy(client: FlaskClient) -> None:
    sign_in(client)
    html = client.get("/console/").get_data(True)
    # No ticket, no token, no sweep yet: the component's card says so.
    assert 'data-healthy="no"' in html
    assert "从未收到" in html and "没有记录" in html
