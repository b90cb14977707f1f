"""One module owns every change of an authorizer's status: ``service/authorizer_status.py``.

A scan of the service's source (``ast``): outside that module, no code writes an
``AuthorizerStatus`` into a ``status`` (a keyword of any call, such as ``record.but(...)``
or ``AuthorizerRecord(...)``, or a ``"status"`` key of a dict), and nothing builds an
``AuthorizerRecord`` with a ``status`` of its own. Reading a status (``==``, ``in``, a
query's filter, an error that names it) is anyone's business.

What a scan cannot see, it does not claim: a status passed in through a parameter of no
known kind. The planted snippets below show what it does catch.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from service.store.records import AuthorizerStatus

SERVICE = Path(__file__).resolve().parents[2] / "service"
OWNER = SERVICE / "authorizer_status.py"
STATUS_VALUES = {s.value for s in AuthorizerStatus}


def _mentions(node: ast.AST, names: set[str]) -> bool:
    """True if ``node`` names ``AuthorizerStatus``, a name bound to it, or a status value."""
    for inner in ast.walk(node):
        if isinstance(inner, ast.Name) and (inner.id == "AuthorizerStatus" or inner.id in names):
            return True
        if isinstance(inner, ast.Constant) and inner.value in STATUS_VALUES:
            return True
    return False


def _bound_to_a_status(tree: ast.AST) -> set[str]:
    """Names assigned an expression that names ``AuthorizerStatus`` (``s = A.X if c else A.Y``)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if _mentions(node.value, set()):
                names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def status_writes(source: str, filename: str = "<source>") -> list[str]:
    """Each place in ``source`` that writes an authorizer's status, as ``file:line``."""
    tree = ast.parse(source, filename)
    names = _bound_to_a_status(tree)
    found: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg != "status":
                    continue
                if _callee(node) == "AuthorizerRecord" or _mentions(keyword.value, names):
                    found.append(keyword.value.lineno)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "status":
                    if _mentions(value, names):
                        found.append(value.lineno)
    return [f"{filename}:{line}" for line in sorted(found)]


def test_only_the_status_module_writes_an_authorizer_s_status() -> None:
    offenders = [
        hit
        for path in sorted(SERVICE.rglob("*.py"))
        if path != OWNER
        for hit in status_writes(path.read_text(), str(path.relative_to(SERVICE.parent)))
    ]
    assert offenders == [], "authorizer status changes belong in service/authorizer_status.py"


def test_the_status_module_is_where_the_changes_are() -> None:
    # Every status the gateway gives an authorizer is written there (so the scan finds them).
    source = OWNER.read_text()
    assert len(status_writes(source)) >= 4
    for status in AuthorizerStatus:
        assert f"AuthorizerStatus.{status.name}.value" in source


@pytest.mark.parametrize(
    "source",
    [
        "record.but(status=AuthorizerStatus.REVOKED.value)",
        "record.but(access_token=None, status=AuthorizerStatus.NEEDS_REAUTHORIZATION)",
        "record.but(status='revoked')",
        "replace(record, status='authorized')",
        "AuthorizerRecord(component_appid=c, appid=a, status=s)",
        "record.but(**{'status': AuthorizerStatus.AUTHORIZED.value})",
        "changes = {'status': 'needs_reauthorization'}",
        "s = AuthorizerStatus.REVOKED if gone else AuthorizerStatus.NEEDS_REAUTHORIZATION\n"
        "changes = {'status': s.value}",
        "s = AuthorizerStatus.REVOKED\nrecord.but(status=s.value)",
    ],
)
def test_the_scan_finds_a_status_written(source: str) -> None:
    assert status_writes(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "if record.status == AuthorizerStatus.REVOKED: pass",
        "ok = record.status in (AuthorizerStatus.AUTHORIZED, AuthorizerStatus.REVOKED)",
        "query.where(FieldFilter('status', '==', AuthorizerStatus.AUTHORIZED.value))",
        "raise Unavailable(AuthorizerStatus.REVOKED.value, 'cancelled')",
        "exchange.but(status=ExchangeStatus.DONE.value)",
        "send.but(status=ReleaseSendStatus.SENT.value)",
        "jsonify(error=str(exc), status=exc.status)",
        "HeldAccount(appid=a, status=record.status)",
        "Response(body, status=200)",
    ],
)
def test_the_scan_leaves_reads_and_other_statuses_alone(source: str) -> None:
    assert status_writes(source) == []
