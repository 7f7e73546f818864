"""A real headless Chromium (Debian's, driven by Playwright) looking at dashboard pages: every page a test
opens is watched for console errors and failed scripts, can be checked with axe-core, and is
photographed into the artifact folder.

Playwright's own browser download cannot be reached here, so it launches the system's `chromium`
(KEYSTONE_CHROMIUM names another); CI installs it (scripts/bootstrap). The flags keep Chromium from
calling home, which this machine's closed network refuses.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright

ROOT = Path(__file__).resolve().parents[2]
AXE = Path(__file__).with_name("vendor") / "axe-core-4.14.1.min.js"
ARTIFACTS = Path(os.environ.get("KEYSTONE_ARTIFACTS") or ROOT / "build" / "artifacts") / "dashboard"
"""Where the screenshots go (CI keeps `build/artifacts`)."""

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
SERIOUS = ("serious", "critical")


def chromium_path() -> str:
    found = (
        os.environ.get("KEYSTONE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    assert found, "no chromium on PATH: scripts/bootstrap installs Debian's (apt-get install chromium)"
    return found


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)


@dataclass
class Watched:
    """A page and what went wrong on it: console errors, uncaught exceptions, failed requests."""

    page: Page
    problems: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert not self.problems, "the page reported problems:\n" + "\n".join(self.problems)


@dataclass
class Dashboard:
    """One browser session (cookies and all) against one served dashboard."""

    context: BrowserContext
    base_url: str
    opened: list[Watched] = field(default_factory=list)

    def open(self, path: str, *, wait_for: str | None = None) -> Page:
        """`path` in a new tab, loaded (and `wait_for`, a selector, visible); its problems are recorded."""
        watched = Watched(self.context.new_page())
        page = watched.page

        def console(message: ConsoleMessage) -> None:
            if message.type == "error":
                watched.problems.append(f"console error on {page.url}: {message.text}")

        page.on("console", console)
        page.on("pageerror", lambda error: watched.problems.append(f"uncaught on {page.url}: {error}"))
        page.on(
            "requestfailed",
            lambda request: (
                watched.problems.append(f"request failed: {request.url} ({request.failure})")
                if not request.url.endswith("/stream")  # an event stream is cut when the page closes
                else None
            ),
        )
        self.opened.append(watched)
        page.goto(self.base_url + path, wait_until="load")
        if wait_for:
            page.locator(wait_for).first.wait_for()
        return page

    def problems(self) -> list[str]:
        return [problem for watched in self.opened for problem in watched.problems]

    def sign_in(self, key: str) -> Page:
        """Through the sign-in form, as a user does; returns the page it lands on."""
        page = self.open("/ui/sign-in")
        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state("load")
        return page


def accessibility_violations(page: Page, impacts: tuple[str, ...] = SERIOUS) -> list[dict[str, Any]]:
    """axe-core's violations of at least serious impact on the page as it is now (WCAG 2.1 A and AA)."""
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate(
        "async () => await axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})"
    )
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
        if v["impact"] in impacts
    ]


def assert_accessible(page: Page) -> None:
    violations = accessibility_violations(page)
    assert not violations, f"axe-core found serious violations on {page.url}: {violations}"


def screenshot(page: Page, name: str) -> Path:
    """The whole page as `ARTIFACTS/NAME.png`."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@contextmanager
def dashboard_session(
    browser: Browser, base_url: str, viewport: dict[str, int] = DESKTOP
) -> Iterator[Dashboard]:
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    try:
        yield Dashboard(context, base_url)
    finally:
        context.close()
