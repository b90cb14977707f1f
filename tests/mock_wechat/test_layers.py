"""The mock's layers, moto's split: the state apart from the HTTP that serves it.

The state (``models`` and its parts, their rules, WeChat's formats) takes typed values
and never imports the HTTP side (Flask, the routes, the request readers, the API table)
or the clients that push and play the merchant. The API table is plain data that imports
nothing of the mock, so no import cycle can come back through it.

Two checks, as ``test_independence`` makes them: the source (every ``import`` at any
depth, so a failure names the file and line) and the running truth (every state module
imported in a fresh interpreter, then which modules got loaded). Every module must be
placed in one layer below, so a new one is placed on purpose.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import mock_wechat

PACKAGE = Path(mock_wechat.__file__).parent

# The state, its rules and WeChat's formats as the mock reads them: no HTTP, no network.
STATE = frozenset(
    {
        "auth_rules",
        "authorization",
        "clock",
        "config",
        "crypto",
        "deliveries",
        "errcodes",
        "faults",
        "grants",
        "merchant_accounts",
        "models",
        "open_accounts",
        "outbox",
        "protocol",
        "pushlog",
        "quotas",
        "reply_judge",
        "state_part",
        "user_messages",
        "wire",
    }
)
# What serves HTTP: the app, its routes and pages, and what reads requests and shapes answers.
HTTP = frozenset(
    {
        "api",
        "api_bodies",
        "api_dispatch",
        "api_handlers",
        "api_table",
        "app",
        "app_services",
        "authorization_management",
        "authorization_pages",
        "authorizer_apis",
        "control_inputs",
        "control_plane",
        "server",
    }
)
# The mock acting on others (pushes, the ticket clock, the release check, the merchant's
# browser) and the command line.
CLIENTS = frozenset(
    {
        "__main__",
        "event_pusher",
        "json_logs",
        "merchant_client",
        "message_cli",
        "message_pusher",
        "release_check",
        "ticket_scheduler",
        "workers",
    }
)
# The mock's libraries for serving, rendering and sending HTTP; the state imports none of
# them, nor the standard library's ``http`` (a status code is the HTTP side's business).
HTTP_LIBRARIES = frozenset({"flask", "werkzeug", "jinja2", "segno", "requests", "gunicorn"})
HTTP_IMPORTS = HTTP_LIBRARIES | {"http", "urllib3"}


def _module_names() -> set[str]:
    return {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}


def _imports(name: str) -> list[tuple[int, str]]:
    """``(line, module)`` for every import in ``mock_wechat/<name>.py``, at any depth;
    ``from mock_wechat import x`` counts as ``mock_wechat.x``."""
    path = PACKAGE / f"{name}.py"
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                module = "mock_wechat." + node.module  # relative: within the package
            else:
                module = node.module
            if module == "mock_wechat":
                found += [(node.lineno, f"mock_wechat.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, module))
    return found


def _mock_module(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "mock_wechat" and len(parts) > 1 else None


def test_every_module_has_one_layer() -> None:
    layers = [STATE, HTTP, CLIENTS]
    placed = [name for layer in layers for name in layer]
    assert len(placed) == len(set(placed)), "a module is in two layers"
    assert _module_names() == set(placed), (
        f"unplaced: {sorted(_module_names() - set(placed))}; "
        f"gone: {sorted(set(placed) - _module_names())}"
    )


def test_the_state_imports_no_http_side_and_no_client() -> None:
    bad = []
    for name in sorted(STATE & _module_names()):  # a missing one fails the test above
        for line, module in _imports(name):
            mine = _mock_module(module)
            if mine is not None and mine not in STATE:
                bad.append(f"mock_wechat/{name}.py:{line} imports {module}")
            if module.split(".")[0] in HTTP_IMPORTS:
                bad.append(f"mock_wechat/{name}.py:{line} imports {module}")
    assert not bad, "the state must not know HTTP (moto's split):\n" + "\n".join(bad)


def test_the_api_table_is_data_that_imports_nothing_of_the_mock() -> None:
    mine = [f"{line} {m}" for line, m in _imports("api_table") if m.startswith("mock_wechat")]
    assert mine == [], f"mock_wechat/api_table.py imports {mine}"


_LOAD_THE_STATE = """
import importlib, json, sys
names = json.loads(sys.argv[1])
for name in names:
    importlib.import_module("mock_wechat." + name)
print(json.dumps(sorted(sys.modules)))
"""


def test_loading_the_state_loads_nothing_of_the_http_side() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_THE_STATE, json.dumps(sorted(STATE & _module_names()))],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PACKAGE.parent,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    mine = {m.split(".")[1] for m in loaded if m.startswith("mock_wechat.")}
    assert mine - STATE == set(), "importing the state loaded these modules of the mock"
    libraries = {m.split(".")[0] for m in loaded} & HTTP_LIBRARIES
    assert libraries == set(), "importing the state loaded these HTTP libraries"
