"""Browser tests of the web UI: a live server with the fake model, and Debian's Chromium
driven by Playwright (never a downloaded browser; .ci/run installs the package)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, sync_playwright

from personae.app import build_app
from personae.settings import Settings
from personae.testing import FakeChatModel
from tests.live_server import live_server
from tests.transports.conftest import REPO_CHARACTERS

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN_KEY = "sk-web-admin-7f3a9c"
SCREENSHOTS = Path(__file__).parents[2] / "docs" / "screenshots"


@dataclass
class Site:
    url: str
    model: FakeChatModel
    folder: Path

    def http(self, method: str, path: str, *, key: str = ADMIN_KEY, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def new_key(self, role: str = "user", subject: str = "sam") -> str:
        answer = self.http("POST", "/api/admin/keys", json={"role": role, "subject": subject})
        answer.raise_for_status()
        return str(answer.json()["token"])


@contextmanager
def serve(tmp_path: Path, *, watch_characters: bool = False, **settings: Any) -> Iterator[Site]:
    """A server with its own copy of the sample characters (imports write into it)."""
    folder = tmp_path / "characters"
    shutil.copytree(REPO_CHARACTERS, folder)
    config = Settings(
        data_dir=tmp_path / "data",
        characters_dir=folder,
        api_keys=[ADMIN_KEY],
        watch_characters=watch_characters,
        routes={"retry": {"retries": 0}},  # type: ignore[arg-type]
        **settings,
    )
    model = FakeChatModel()
    with live_server(build_app(config, backends={"fake": model})) as url:
        yield Site(url, model, folder)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with serve(tmp_path) as served:
        yield served


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("the browser tests need Debian's chromium: apt-get install chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Tab:
    """A page, with what it logged as errors and the dialogs it opened."""

    page: Page
    errors: list[str] = field(default_factory=list)
    dialogs: list[tuple[str, str]] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append((dialog.type, dialog.message))
        if dialog.type == "confirm":
            dialog.accept()
        else:
            dialog.dismiss()

    def screenshot(self, name: str) -> None:
        """Saved to docs/screenshots only when PERSONAE_SCREENSHOTS=1 (CI leaves them be)."""
        if os.environ.get("PERSONAE_SCREENSHOTS") == "1":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=False)


def open_tab(browser: Browser, **context: Any) -> Iterator[Tab]:
    ctx = browser.new_context(**({"viewport": {"width": 1200, "height": 800}} | context))
    ctx.set_default_timeout(10_000)
    page = ctx.new_page()
    tab = Tab(page)
    page.on("console", tab.on_console)
    page.on("pageerror", lambda error: tab.errors.append(f"uncaught: {error}"))
    page.on("dialog", tab.on_dialog)
    yield tab
    ctx.close()


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    yield from open_tab(browser)


@pytest.fixture
def phone(browser: Browser) -> Iterator[Tab]:
    yield from open_tab(
        browser, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )


def sign_in(tab: Tab, url: str, key: str, path: str = "/") -> None:
    tab.page.goto(url + path)
    tab.page.fill("#api-key", key)
    tab.page.press("#api-key", "Enter")
