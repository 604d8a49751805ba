"""Shared browser fixtures: Playwright driving Debian's Chromium at /usr/bin/chromium, headless.

No browser is ever downloaded: without /usr/bin/chromium (``scripts/system-deps.sh``
installs it) or the ``playwright`` package the browser tests skip with a reason.

- ``browser``: one headless Chromium per test module.
- ``new_page(browser, ...)``: a page in a fresh context (its own storage, so two
  pages are two users), every Playwright wait bounded, and console errors, page
  errors and CSP violations collected in ``page.problems`` (see :func:`problems`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("OUTLAST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Every wait a test makes is bounded by this (milliseconds).
TIMEOUT_MS = 20_000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# ``./run screenshots`` sets this to docs/screenshots to refresh the README's pictures;
# otherwise screenshots go to a temporary directory and a test run leaves the tree clean.
SCREENSHOTS_ENV = "OUTLAST_SCREENSHOTS"


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory the browser tests save their screenshots in."""
    chosen = os.environ.get(SCREENSHOTS_ENV)
    if chosen:
        path = Path(chosen).resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from Debian, shared by the tests of one module."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (scripts/system-deps.sh installs Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS
        )
        try:
            yield instance
        finally:
            instance.close()


def new_page(browser: Any, *, viewport: dict[str, int] | None = None, **context_args: Any) -> Any:
    """A page in its own browser context, waits bounded, problems collected in ``page.problems``.

    ``page.problems`` lists every console error or warning mentioning a
    Content-Security-Policy violation and every uncaught page error, as strings.
    Close it with ``page.context.close()``.
    """
    context = browser.new_context(viewport=viewport or DESKTOP, **context_args)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.problems = []

    def on_console(message: Any) -> None:
        text = message.text
        if message.type == "error" or _is_csp(text):
            page.problems.append(f"console.{message.type}: {text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: page.problems.append(f"pageerror: {error}"))
    return page


def problems(page: Any, *, ignore: tuple[str, ...] = ()) -> list[str]:
    """The page's collected problems, minus those containing any of ``ignore``."""
    return [p for p in page.problems if not any(part in p for part in ignore)]


def csp_violations(page: Any) -> list[str]:
    """Only the problems that are Content-Security-Policy violations."""
    return [p for p in page.problems if _is_csp(p)]


def _is_csp(text: str) -> bool:
    return "Content Security Policy" in text or "Content-Security-Policy" in text
