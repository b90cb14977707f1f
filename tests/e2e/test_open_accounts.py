"""Open platform accounts end to end (the seeds' scenes 1 and 2): gunicorn, mock WeChat and
the Firestore emulator, with two components in one deployment.

Scene 1: a merchant's own open platform account created, read, joined and left through
the internal API, WeChat's refusals carried with their meaning, a lost answer read back.
Scene 2: a merchant authorizes to both components; the group report shows it unbound,
bind-unbound binds it, and the report is clean; an account bound elsewhere is left alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.emulator import clear_emulator
from devstack.processes import ManagedProcess, free_port
from devstack.stack import (
    MockControl,
    demo_component,
    service_env,
    start_mock,
    start_service,
)
from service.store.firestore import FirestoreStore
from tests.e2e.helpers import (
    authorized_merchant,
    confirm_authorization,
    create_merchant,
    stored_authorizer,
)
from tests.stack import API_KEY, E2E_PROJECT, Stack

pytestmark = pytest.mark.e2e

PRINCIPAL = "示例集团有限公司"


@dataclasses.dataclass
class Pair:
    """One deployment with two components: a ``Stack`` view of each (the helpers act on a
    view's ``demo``), the environment to start more services on the same parts with."""

    c1: Stack
    c2: Stack
    env: dict[str, str]
    logs: Path

    @property
    def url(self) -> str:
        return self.c1.service_url


@pytest.fixture(scope="module")
def pair_processes(
    firestore_emulator: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    logs = tmp_path_factory.mktemp("open-accounts-logs")
    mock_port, service_port = free_port(), free_port()
    mock_process = start_mock(mock_port, logs / "mock-wechat.log")
    one, two = demo_component(), demo_component()
    mock_url = f"http://127.0.0.1:{mock_port}"
    service_url = f"http://127.0.0.1:{service_port}"
    env = service_env([one, two], service_url, mock_url, E2E_PROJECT, firestore_emulator, API_KEY)
    env["PROXY_TIMEOUT"] = "2"  # so a WeChat that does not answer is a 504 soon
    try:
        service = start_service(service_port, env, logs / "service.log", workers=2)
    except Exception:
        mock_process.stop()
        raise
    view = Stack(
        demo=one,
        service_url=service_url,
        mock_url=mock_url,
        mock=MockControl(mock_url, timeout=60),
        service=service,
        mock_process=mock_process,
        firestore_host=firestore_emulator,
        store=FirestoreStore(project=E2E_PROJECT),
    )
    yield Pair(view, dataclasses.replace(view, demo=two), env, logs)
    service.stop()
    mock_process.stop()


@pytest.fixture
def pair(pair_processes: Pair, monkeypatch: pytest.MonkeyPatch) -> Pair:
    """Both components registered on a reset mock, with tickets and tokens; an empty store."""
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", pair_processes.c1.firestore_host)
    pair_processes.c1.mock.reset()
    clear_emulator(pair_processes.c1.firestore_host, E2E_PROJECT)
    for view in (pair_processes.c1, pair_processes.c2):
        view.register_component()
        assert view.mock.push_ticket(view.demo.appid)["delivered"]
    report = requests.post(
        f"{pair_processes.url}/tasks/refresh", headers=pair_processes.c1.auth, timeout=60
    ).json()
    for view in (pair_processes.c1, pair_processes.c2):
        assert report["components"][view.demo.appid]["component_token"] == "renewed", report
    return pair_processes


def account_url(view: Stack, appid: str, base: str | None = None) -> str:
    root = base or view.service_url
    return f"{root}/api/v1/components/{view.demo.appid}/authorizers/{appid}/open-account"


def get_open(view: Stack, appid: str) -> requests.Response:
    return requests.get(account_url(view, appid), headers=view.auth, timeout=30)


def change(view: Stack, appid: str, **body: Any) -> requests.Response:
    return requests.post(account_url(view, appid), json=body, headers=view.auth, timeout=30)


def open_accounts(view: Stack) -> list[tuple[str, list[str]]]:
    response = requests.get(f"{view.mock_url}/_mock/open-accounts", timeout=10)
    assert response.status_code == 200, response.text
    return [(o["open_appid"], o["appids"]) for o in response.json()["open_accounts"]]


def open_calls(view: Stack, api: str) -> list[dict[str, Any]]:
    return view.mock.calls(api)


# ----- scene 1 -------------------------------------------------------------------------------


def test_scene_1_create_read_join_and_leave(pair: Pair) -> None:
    c1 = pair.c1
    oa = authorized_merchant(c1, principal_name=PRINCIPAL)
    mp = authorized_merchant(c1, "mini_program", principal_name=PRINCIPAL)
    stranger = authorized_merchant(c1, "mini_program", principal_name="另一家有限公司")

    nothing = get_open(c1, oa)
    assert nothing.status_code == 200, nothing.text
    assert nothing.json() == {"authorizer_appid": oa, "open_appid": None, "bound": False}
    created = change(c1, oa, action="create")
    assert created.status_code == 201, created.text
    open_appid = created.json()["open_appid"]
    assert created.json() == {
        "authorizer_appid": oa,
        "action": "create",
        "result": "created",
        "open_appid": open_appid,
        "previous_open_appid": None,
        "recovered": False,
    }
    assert get_open(c1, oa).json()["open_appid"] == open_appid
    # A second create is answered with where it is bound; WeChat is not asked to create.
    again = change(c1, oa, action="create")
    assert again.status_code == 409, again.text
    assert again.json()["errcode"] == 89000 and again.json()["open_appid"] == open_appid
    assert len(open_calls(c1, "open_create")) == 1

    # The mini program of the same principal joins; twice is still joined.
    joined = change(c1, mp, action="bind", open_appid=open_appid)
    assert joined.status_code == 200 and joined.json()["result"] == "bound", joined.text
    twice = change(c1, mp, action="bind", open_appid=open_appid)
    assert twice.status_code == 200 and twice.json()["result"] == "already_bound", twice.text
    # Another principal's may not: 89001, with its meaning.
    refused = change(c1, stranger, action="bind", open_appid=open_appid)
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["errcode"] == 89001 and "principal" in body["error"]
    assert "主体" in body["meaning_zh"] and "create" in body["what_to_do"]
    assert body["errmsg"].startswith("not same contractor")  # WeChat's own, with its rid

    left = change(c1, mp, action="unbind")
    assert left.status_code == 200, left.text
    assert left.json()["result"] == "unbound" and left.json()["previous_open_appid"] == open_appid
    assert get_open(c1, mp).json()["bound"] is False
    assert change(c1, mp, action="unbind").json()["result"] == "already_unbound"
    assert open_accounts(c1) == [(open_appid, [oa])]


def test_without_the_permission_set_the_answer_is_61007(pair: Pair) -> None:
    messages_only = authorized_merchant(pair.c1, category_ids=[1], principal_name=PRINCIPAL)
    for response in (
        get_open(pair.c1, messages_only),
        change(pair.c1, messages_only, action="create"),
    ):
        assert response.status_code == 403, response.text
        body = response.json()
        assert body["errcode"] == 61007 and "开放平台帐号管理" in body["error"]
        assert "authorize again" in body["what_to_do"]
    assert open_calls(pair.c1, "open_create") == []


def test_an_open_account_made_on_the_website_is_89003(pair: Pair) -> None:
    oa = authorized_merchant(pair.c1, principal_name=PRINCIPAL)
    mp = authorized_merchant(pair.c1, "mini_program", principal_name=PRINCIPAL)
    made = requests.post(
        f"{pair.c1.mock_url}/_mock/open-accounts",
        json={"principal_name": PRINCIPAL, "appids": [oa]},
        timeout=10,
    )
    assert made.status_code == 201, made.text
    website = made.json()["open_appid"]
    assert get_open(pair.c1, oa).json()["open_appid"] == website
    for response in (
        change(pair.c1, oa, action="unbind"),
        change(pair.c1, mp, action="bind", open_appid=website),
    ):
        assert response.status_code == 409, response.text
        assert response.json()["errcode"] == 89003
        assert "非通过 api 创建" in response.json()["meaning_zh"]
    assert open_accounts(pair.c1) == [(website, [oa])]


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ("not json", 400, "JSON object"),
        ({"action": "delete"}, 400, "action must be one of"),
        ({"action": "bind"}, 400, "bind needs open_appid"),
        ({"action": "bind", "open_appid": "gh_123"}, 400, "open_appid must be"),
        ({"action": "bind", "open_appid": 7}, 400, "open_appid must be"),
        ({"action": "create", "open_appid": "wx1234567890abcdef"}, 400, "unknown field"),
        ({"action": "unbind", "openappid": "wx1234567890abcdef"}, 400, "unknown field"),
    ],
)
def test_bad_requests_are_refused_before_wechat(
    pair: Pair, body: Any, status: int, reason: str
) -> None:
    oa = authorized_merchant(pair.c1, principal_name=PRINCIPAL)
    kwargs = {"data": body} if isinstance(body, str) else {"json": body}
    response = requests.post(account_url(pair.c1, oa), headers=pair.c1.auth, timeout=30, **kwargs)
    assert response.status_code == status and reason in response.json()["error"], response.text
    assert [c for c in pair.c1.mock.calls() if c["api"].startswith("open_")] == []


def test_guard_unknown_component_and_authorizer(pair: Pair) -> None:
    oa = "wx00000000000000aa"
    url = account_url(pair.c1, oa)
    assert requests.get(url, timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer not-the-key"}
    assert requests.get(url, headers=wrong, timeout=10).status_code == 403
    unknown = url.replace(pair.c1.demo.appid, "wx00000000000000ff")
    assert requests.get(unknown, headers=pair.c1.auth, timeout=10).status_code == 404
    bad = requests.get(account_url(pair.c1, "nope"), headers=pair.c1.auth, timeout=10)
    assert bad.status_code == 400
    missing = get_open(pair.c1, oa)
    assert missing.status_code == 404 and "no authorizer" in missing.json()["error"]
    group = requests.get(f"{pair.url}/api/v1/open-account-group", timeout=10)
    assert group.status_code == 401


def test_a_lost_answer_is_read_back_never_repeated(pair: Pair) -> None:
    c1 = pair.c1
    oa = authorized_merchant(c1, principal_name=PRINCIPAL)
    mp = authorized_merchant(c1, "mini_program", principal_name=PRINCIPAL)
    # WeChat creates the account, then the connection drops before its answer.
    c1.mock.set_faults([{"api": "open_create", "delay_after": 0.05, "drop": True, "times": 1}])
    created = change(c1, oa, action="create")
    assert created.status_code == 201, created.text
    assert created.json()["recovered"] is True
    [(open_appid, members)] = open_accounts(c1)
    assert created.json()["open_appid"] == open_appid and members == [oa]
    assert len(open_calls(c1, "open_create")) == 1

    # Dropped before WeChat acted: nothing happened, and the answer says it is safe to retry.
    c1.mock.set_faults([{"api": "open_bind", "drop": True, "times": 1}])
    lost = change(c1, mp, action="bind", open_appid=open_appid)
    assert lost.status_code == 502, lost.text
    assert lost.json()["outcome"] == "unchanged" and "safe to try again" in lost.json()["error"]
    assert open_accounts(c1) == [(open_appid, [oa])]
    # Too slow: the 2 s PROXY_TIMEOUT passes while WeChat binds it; 504, then read back.
    c1.mock.set_faults([{"api": "open_bind", "delay_after": 3, "times": 1}])
    slow = change(c1, mp, action="bind", open_appid=open_appid)
    assert slow.status_code == 200, slow.text
    assert slow.json()["result"] == "bound" and slow.json()["recovered"] is True
    assert open_accounts(c1) == [(open_appid, [oa, mp])]
    assert len(open_calls(c1, "open_bind")) == 2


# ----- scene 2 -------------------------------------------------------------------------------


@dataclasses.dataclass
class Group:
    pair: Pair
    open_appid: str  # GROUP_OPEN_APPID
    hq: str  # the account whose create made it
    url: str  # the service started with GROUP_OPEN_APPID


@pytest.fixture
def group(pair: Pair) -> Iterator[Group]:
    """The group's open platform account, made by its headquarters' account through scene
    1's create (the API binds only to one made through the API), and a service started
    with GROUP_OPEN_APPID naming it, on the same store and mock."""
    hq = authorized_merchant(pair.c1, principal_name=PRINCIPAL)
    created = change(pair.c1, hq, action="create")
    assert created.status_code == 201, created.text
    open_appid = created.json()["open_appid"]
    port = free_port()
    service: ManagedProcess = start_service(
        port,
        {**pair.env, "GROUP_OPEN_APPID": open_appid},
        pair.logs / f"group-service-{port}.log",
        workers=1,
    )
    try:
        yield Group(pair, open_appid, hq, f"http://127.0.0.1:{port}")
    finally:
        service.stop()


def report(url: str) -> dict[str, Any]:
    response = requests.get(
        f"{url}/api/v1/open-account-group",
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bind_unbound(url: str) -> dict[str, Any]:
    response = requests.post(
        f"{url}/api/v1/open-account-group/bind-unbound",
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def authorize_to_both(pair: Pair, kind: str = "official_account", **kw: str) -> str:
    appid = create_merchant(pair.c1, kind, kw.get("principal_name", PRINCIPAL))
    for view in (pair.c1, pair.c2):
        confirmed = confirm_authorization(view, appid)
        assert confirmed["push"]["delivered"] is True, confirmed
        assert stored_authorizer(view, appid).status == "authorized"
    return appid


def test_scene_2_a_merchant_of_two_components_is_found_unbound_then_bound(
    group: Group,
) -> None:
    pair = group.pair
    merchant = authorize_to_both(pair)

    before = report(group.url)
    assert before["group_open_appid"] == group.open_appid and before["clean"] is False
    assert before["counts"] == {
        "accounts": 2,
        "bound": 1,
        "bound_elsewhere": 0,
        "unbound": 1,
        "unchecked": 0,
    }
    assert before["bound"] == [group.hq]
    [unbound] = before["unbound"]
    assert unbound["appid"] == merchant and unbound["principal_name"] == PRINCIPAL
    assert unbound["components"] == [pair.c1.demo.appid, pair.c2.demo.appid]
    # One open/get per account, however many components it authorized (+1: create's check).
    assert before["asked"] == 2 and len(open_calls(pair.c1, "open_get")) == 3

    done = bind_unbound(group.url)
    assert [(b["appid"], b["result"]) for b in done["bound"]] == [(merchant, "bound")]
    assert done["failed"] == [] and done["bound_elsewhere"] == []

    after = report(group.url)
    assert after["clean"] is True and sorted(after["bound"]) == sorted([group.hq, merchant])
    assert open_accounts(pair.c1) == [(group.open_appid, [group.hq, merchant])]


def test_scene_2_never_touches_an_account_bound_elsewhere(group: Group) -> None:
    pair = group.pair
    unbound = authorize_to_both(pair, "mini_program")
    elsewhere = authorize_to_both(pair)
    theirs = change(pair.c2, elsewhere, action="create").json()["open_appid"]
    other = authorize_to_both(pair, principal_name="另一家有限公司")

    done = bind_unbound(group.url)
    assert [b["appid"] for b in done["bound"]] == [unbound]
    assert [(f["appid"], f["errcode"]) for f in done["failed"]] == [(other, 89001)]
    assert [(a["appid"], a["open_appid"]) for a in done["bound_elsewhere"]] == [(elsewhere, theirs)]
    assert (theirs, [elsewhere]) in open_accounts(pair.c1)
    assert open_calls(pair.c1, "open_unbind") == []
    after = report(group.url)
    assert after["clean"] is False
    assert [a["appid"] for a in after["bound_elsewhere"]] == [elsewhere]
    assert [a["appid"] for a in after["unbound"]] == [other]


def test_without_group_open_appid_the_group_endpoints_say_how_to_set_it(pair: Pair) -> None:
    for method, path in (("GET", ""), ("POST", "/bind-unbound")):
        response = requests.request(
            method,
            f"{pair.url}/api/v1/open-account-group{path}",
            headers=pair.c1.auth,
            timeout=10,
        )
        assert response.status_code == 404, response.text
        assert "GROUP_OPEN_APPID" in response.json()["error"]
