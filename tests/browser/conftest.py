"""Headless Chromium (Debian's package) driven by Playwright, with screenshots kept.

Screenshots go to ``.artifacts/browser/<test>/`` (or ``$TEST_ARTIFACTS/browser``), so a
failing run in CI leaves pictures of every step.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from devstack.stack import REPO

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", REPO / ".artifacts")) / "browser"


@pytest.fixture(scope="module", autouse=True)
def many_merchants_from_one_address() -> Iterator[None]:
    """Each module plays many merchants from 127.0.0.1 within seconds: its service (started
    after this) gets a rate limit they never reach."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PUBLIC_RATE_LIMIT", "100000")
        env.setenv("PUBLIC_RATE_BURST", "100000")
        yield


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(
            "Chromium is missing: install Debian's package with "
            "`sudo apt-get install chromium` (make setup does it)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


class Shots:
    """Numbered screenshots of one test's steps."""

    def __init__(self, page: Page, folder: Path) -> None:
        self.page = page
        self.folder = folder
        self.count = 0
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    def take(self, step: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{step}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1000, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def shots(page: Page, request: pytest.FixtureRequest) -> Shots:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    return Shots(page, ARTIFACTS / name)
