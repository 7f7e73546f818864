"""The sandboxes pages in a real browser against a real Docker sandbox created through the API: the list
shows it live with its spec and owner, its page shows the commands run in it (escaped) and the trace its
agent reported, updates itself while it lives, and stops polling once it is destroyed."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.dashboard.browser import (
    PHONE,
    Dashboard,
    assert_accessible,
    dashboard_session,
    screenshot,
)
from tests.dashboard.conftest import Served
from tests.dashboard.test_dashboard_isolation import session_cookie
from tests.server.server_api import spec_yaml

pytestmark = pytest.mark.docker

MARKUP = "<b id=injected>bold</b>"
"""Echoed by a command: the page must show it as text."""


@pytest.fixture(scope="module")
def api(served: Served) -> Iterator[httpx.Client]:
    with served.client() as keystone:
        keystone.specs.create(spec_yaml("ui-box"))
    headers = {"Authorization": f"Bearer {served.key}"}
    with httpx.Client(base_url=served.url, headers=headers, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def sandbox_id(api: httpx.Client) -> Iterator[str]:
    """A live sandbox of `ui-box` that ran one command and reported one trace event."""
    created = api.post(
        "/v1/sandboxes", json={"spec_id": "ui-box", "timeout": "10m", "metadata": {"run": "ui"}}
    )
    assert created.status_code == 201, created.text
    identifier = created.json()["id"]
    ran = api.post(f"/v1/sandboxes/{identifier}/commands", json={"command": f"echo '{MARKUP}'"})
    assert ran.status_code == 200 and ran.json()["exit_code"] == 0, ran.text
    traced = api.post(
        f"/v1/sandboxes/{identifier}/trace",
        json={"events": [{"type": "tool_call", "tool": "lookup_order", "success": True, "duration_ms": 12}]},
    )
    assert traced.status_code == 200, traced.text
    yield identifier
    api.delete(f"/v1/sandboxes/{identifier}")


def test_the_list_shows_the_live_sandbox_and_leads_to_its_page(
    dashboard: Dashboard, sandbox_id: str, served: Served
) -> None:
    page = dashboard.open("/ui/sandboxes", wait_for="#live")
    row = page.locator("table").first.locator("tr", has_text=sandbox_id)
    expect(row.locator(".status")).to_have_text("running")
    expect(row.get_by_role("link", name="ui-box")).to_have_attribute("href", "/ui/specs/ui-box")
    expect(row).to_contain_text("dashboard-tests")  # the owner key's name
    assert_accessible(page)
    screenshot(page, "sandboxes")

    row.get_by_role("link", name=sandbox_id).click()
    page.wait_for_url(f"{served.url}/ui/sandboxes/{sandbox_id}")
    events = page.locator("table.sandbox-events")
    expect(events).to_contain_text('"state": "ready"')
    expect(events.locator("tr", has_text="command")).to_contain_text(MARKUP)
    assert page.locator("#injected").count() == 0
    expect(page.locator("table.sandbox-trace")).to_contain_text("lookup_order")
    expect(page.locator(".facts")).to_contain_text("ui")  # metadata
    assert_accessible(page)
    screenshot(page, "sandbox")


def test_the_page_follows_the_sandbox_until_it_is_destroyed(
    dashboard: Dashboard, api: httpx.Client, served: Served
) -> None:
    created = api.post("/v1/sandboxes", json={"spec_id": "ui-box", "timeout": "10m"})
    assert created.status_code == 201, created.text
    identifier = created.json()["id"]
    page = dashboard.open(f"/ui/sandboxes/{identifier}", wait_for="#sandbox-events")
    section = page.locator("#sandbox-events")
    expect(section).to_have_attribute("hx-trigger", "every 2s")
    assert api.post(f"/v1/sandboxes/{identifier}/commands", json={"command": "echo later"}).status_code == 200
    expect(section).to_contain_text('"command": "echo later"', timeout=10_000)  # without a reload
    assert api.delete(f"/v1/sandboxes/{identifier}").status_code == 204
    expect(section.locator(".status")).to_have_text("destroyed", timeout=10_000)
    expect(section).not_to_have_attribute("hx-get", f"/ui/sandboxes/{identifier}/events")
    listed = dashboard.open("/ui/sandboxes", wait_for="#ended")
    ended = listed.locator("table").nth(1).locator("tr", has_text=identifier)
    expect(ended.locator(".status")).to_have_text("destroyed")


def test_a_phone_reads_the_sandbox_page(browser: Browser, served: Served, sandbox_id: str) -> None:
    with dashboard_session(browser, served.url, viewport=PHONE) as session:
        session.sign_in(served.key)
        page = session.open(f"/ui/sandboxes/{sandbox_id}", wait_for="#sandbox-events")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the page is {width} px wide on a phone"
        assert_accessible(page)
        screenshot(page, "sandbox-phone")
        assert not session.problems()


def test_a_missing_sandbox_is_a_404_page(served: Served) -> None:
    cookies = {"ks_session": session_cookie(served.url, served.key)}
    for path in ("/ui/sandboxes/sb-missing", "/ui/sandboxes/sb-missing/events"):
        answer = httpx.get(served.url + path, cookies=cookies)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("text/html")
