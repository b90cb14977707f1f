"""The mock reads the protocol on its own: it imports nothing of the service's but its crypto.

The mock is the service's examiner. If it took its tables (account types, auth_type,
permission sets, the release check's test accounts) or its XML from ``service``, a
misreading of the documents would be shared by both sides and pass every test. The one
exception is ``service.wechat.crypto``: the official test vectors pin it byte for byte
(``tests/service/wechat/test_crypto.py``), so there is nothing left to read differently.

Two checks: the source (every ``import`` in every module, at any depth, so the failure
names the file and line) and the running truth (every module imported in a fresh
interpreter, then which ``service`` modules got loaded, so nothing dynamic slips by).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import mock_wechat

ALLOWED = "service.wechat.crypto"
# Importing the allowed module loads its parent packages; they must stay empty of wiring.
LOADED_WITH_IT = {"service", "service.wechat", ALLOWED}
PACKAGE = Path(mock_wechat.__file__).parent


def _service_imports(path: Path) -> list[str]:
    """``file:line module`` for each import of ``service`` (or below) in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # ``from service.wechat import crypto`` names the module by its parts.
            modules = [f"{node.module}.{alias.name}" for alias in node.names]
            modules = [node.module] if node.module == ALLOWED else modules
        for module in modules:
            if module == "service" or module.startswith("service."):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {module}")
    return found


def test_the_mock_imports_only_the_service_crypto() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert sources, f"no modules found under {PACKAGE}"
    imports = [hit for path in sources for hit in _service_imports(path)]
    foreign = [hit for hit in imports if not hit.endswith(" " + ALLOWED)]
    assert not foreign, (
        "mock_wechat must read the protocol documents itself, not import the service's "
        f"reading of them (only {ALLOWED} is allowed):\n" + "\n".join(foreign)
    )


_LOAD_EVERY_MODULE = """
import importlib, json, pkgutil, sys
import mock_wechat
for info in pkgutil.walk_packages(mock_wechat.__path__, "mock_wechat."):
    importlib.import_module(info.name)
print(json.dumps(sorted(m for m in sys.modules if m == "service" or m.startswith("service."))))
"""


def test_loading_every_mock_module_loads_no_other_service_module() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_EVERY_MODULE],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PACKAGE.parent,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert loaded <= LOADED_WITH_IT, (
        f"importing mock_wechat loaded service modules besides {ALLOWED}: "
        f"{sorted(loaded - LOADED_WITH_IT)}"
    )


_IMPORT_CRYPTO = """
import json, sys
import service.wechat.crypto
heavy = ("flask", "google.cloud.firestore", "google.cloud", "service.config", "service.runtime")
print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
"""


def test_importing_the_service_crypto_is_cheap() -> None:
    """What the mock may import loads no Flask, no Firestore client, no settings: importing
    ``service`` runs nothing of the production wiring (``service.create_app`` is lazy)."""
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_CRYPTO],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PACKAGE.parent,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [], "importing service.wechat.crypto loaded these"


def test_the_factory_is_still_reached_through_service() -> None:
    """``from service import create_app`` and gunicorn's ``service:create_app()`` still work."""
    import service
    from service.app import create_app as factory

    assert callable(service.create_app) and service.create_app.__module__ == "service"
    assert service.create_app.__name__ == factory.__name__ == "create_app"
    assert service.Settings.__name__ == "Settings" and service.ConfigError.__name__ == "ConfigError"
