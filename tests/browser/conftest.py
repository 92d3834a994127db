"""A real headless Chromium (the machine's own, never a downloaded one)
driving the web page of the session's real gateway."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

from tests.support.processes import Component

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "the browser tests need Chromium: apt-get install chromium"
    return found


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        yield launched
        await launched.close()


@dataclass
class Watched:
    """A page, and what went wrong in it that nobody asked for."""

    page: Page
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture
async def web(browser: Browser, gateway: Component) -> AsyncIterator[Watched]:
    context = await browser.new_context(base_url=gateway.base_url)
    page = await context.new_page()
    watched = Watched(page)
    page.on("pageerror", lambda exc: watched.errors.append(str(exc)))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.errors.append(message.text)

    page.on("console", on_console)
    # alert(), confirm(): nothing on the page opens one, an injected script would.
    page.on("dialog", lambda dialog: watched.dialogs.append(dialog.message))
    yield watched
    await context.close()
