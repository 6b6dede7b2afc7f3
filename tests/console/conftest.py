"""Fixtures for the web console's tests: Debian's headless Chromium driven by Playwright, and
where screenshots go.

Chromium is /usr/bin/chromium (`bash tools/run setup` installs Debian's package; Playwright's own
browser download is not used). It runs without the sandbox (root in CI) and with its background
services off, so a test run sends nothing beyond the loopback gateway. Screenshots go to
`<pytest's temp folder>/console-screenshots/` and, when NAVSEAL_CONSOLE_SHOTS names a folder (the
docs' pictures: docs/console/), there too.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

# The gateway tests' helpers (scripted seals, the HTTP harness) are shared with these.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gateway"))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--no-first-run", "--disable-domain-reliability", "--metrics-recording-only",
    "--disable-features=Translate,OptimizationHints,MediaRouter", "--no-pings", "--disable-breakpad",
]
VIEWPORT = {"width": 1400, "height": 900}


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module: Playwright's sync API keeps an asyncio loop running while it
    is open, which would break later tests that call asyncio.run()."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `bash tools/run setup` installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Shots:
    def __init__(self, folder: Path, copy_to: Path | None) -> None:
        self.folder = folder
        self.copy_to = copy_to
        folder.mkdir(parents=True, exist_ok=True)

    def take(self, page, name: str, **kw) -> Path:
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), **kw)
        if self.copy_to is not None:
            self.copy_to.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, self.copy_to / path.name)
        return path


@pytest.fixture(scope="session")
def shots(tmp_path_factory) -> Shots:
    target = os.environ.get("NAVSEAL_CONSOLE_SHOTS")
    return Shots(tmp_path_factory.getbasetemp() / "console-screenshots", Path(target) if target else None)


def log_in(page, base: str, name: str, password: str, *, lang: str = "en") -> None:
    """The login form, as a person fills it."""
    page.goto(f"{base}/console/")
    page.evaluate(f"localStorage.setItem('navseal.lang', '{lang}')")
    page.reload()
    page.fill("#login-name", name)
    page.fill("#login-password", password)
    page.click("#login-submit")
    page.wait_for_selector("#logout")


def new_page(browser, problems: list[str]):
    """A fresh browser context (its own cookies), recording script errors."""
    context = browser.new_context(viewport=VIEWPORT, locale="en-US", timezone_id="Asia/Almaty")
    page = context.new_page()
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    # Refused requests (401 before logging in, 404 for another office's escort) are answers the
    # tests check themselves; the browser also logs each as "Failed to load resource".
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    return page
