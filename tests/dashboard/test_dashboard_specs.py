"""The specs list and a spec's page in a real browser: the project's specs with their latest versions, a
spec's versions, its YAML shown as text (never as markup), a diff between two versions with every changed
line marked by its prefix and its class, its experiments, and specs the project does not have."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from polarity_keystone.sdk import Keystone
from polarity_keystone.server.dashboard._pages_specs import SPECS_PER_PAGE
from polarity_keystone.server.dashboard._render import experiment_url, spec_url
from tests.dashboard.browser import PHONE, Dashboard, assert_accessible, dashboard_session, screenshot
from tests.dashboard.conftest import Served
from tests.server.server_api import spec_yaml

pytestmark = pytest.mark.docker

EDITED = "dashboard-spec-edited"
HOSTILE = "dashboard-spec-hostile"
SCRIPT = '<script>window.pwned = true</script><img src=x onerror="window.pwned = true">'


def api(served: Served, path: str) -> Any:
    response = httpx.get(served.url + path, headers={"Authorization": f"Bearer {served.key}"}, timeout=30)
    response.raise_for_status()
    return response.json()


@pytest.fixture(scope="module")
def uploaded(served: Served) -> None:
    """EDITED in two versions that differ in their description; HOSTILE with markup in its description."""
    with served.client() as client:
        first = client.specs.create(spec_yaml(EDITED, description="refunds the first way"))
        second = client.specs.create(spec_yaml(EDITED, description="refunds the second way"))
        assert (first.version, second.version) == (1, 2)
        client.specs.create(spec_yaml(HOSTILE, description=f"'{SCRIPT}'"))


def row(page: Page, table: str, key: str, value: str) -> Any:
    return page.locator(f'#{table} tr[data-{key}="{value}"]')


def test_the_list_shows_every_spec_with_its_latest_version(
    dashboard: Dashboard, served: Served, uploaded: None
) -> None:
    page = dashboard.open("/ui/specs", wait_for="#specs")
    for spec in api(served, "/v1/specs?limit=200"):
        listed = row(page, "specs", "spec", spec["id"])
        expect(listed.get_by_role("link")).to_have_attribute("href", spec_url(spec["id"]))
        expect(listed.locator(".version")).to_have_text(f"v{spec['version']}")
    for spec_id in ("refund-agent", "sloppy-agent", EDITED):
        expect(row(page, "specs", "spec", spec_id)).to_have_count(1)
    expect(row(page, "specs", "spec", EDITED).locator(".version")).to_have_text("v2")
    expect(row(page, "specs", "spec", HOSTILE)).to_contain_text(SCRIPT)  # as text
    assert page.evaluate("window.pwned") is None
    assert_accessible(page)
    screenshot(page, "specs")
    row(page, "specs", "spec", "refund-agent").get_by_role("link").click()
    page.wait_for_url(served.url + spec_url("refund-agent"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("refund-agent")


def test_a_spec_page_shows_its_yaml_versions_and_experiments(dashboard: Dashboard, served: Served) -> None:
    spec = api(served, "/v1/specs/refund-agent")
    page = dashboard.open(spec_url("refund-agent"), wait_for="#yaml")
    expect(page.locator("#yaml")).to_have_text(spec["yaml"])
    expect(row(page, "versions", "version", str(spec["version"]))).to_contain_text(spec["sha256"][:12])
    listed = page.locator("#spec-experiments tbody tr[data-experiment]")
    ids = listed.evaluate_all("rows => rows.map(row => row.dataset.experiment)")
    assert set(served.refund_ids) <= set(ids)
    assert served.sloppy_id not in ids
    link = row(page, "spec-experiments", "experiment", served.refund_ids[0]).get_by_role("link")
    expect(link).to_have_attribute("href", experiment_url(served.refund_ids[0]))
    assert_accessible(page)


def test_the_diff_marks_the_changed_line_removed_and_added(
    dashboard: Dashboard, served: Served, uploaded: None
) -> None:
    page = dashboard.open(spec_url(EDITED), wait_for="#versions")
    expect(page.locator("#versions tbody tr")).to_have_count(2)
    expect(page.locator("#yaml")).to_contain_text("refunds the second way")
    page.get_by_label("From version").select_option("1")
    page.get_by_label("To version").select_option("2")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(f"{served.url}{spec_url(EDITED)}?against=1&version=2")
    removed, added = page.locator("#diff .diff-removed"), page.locator("#diff .diff-added")
    expect(removed).to_have_count(1)
    expect(removed).to_have_text("-description: refunds the first way")
    expect(added).to_have_count(1)
    expect(added).to_have_text("+description: refunds the second way")
    expect(page.locator("#diff .diff-same").first).to_have_text(" version: 1")
    assert_accessible(page)
    screenshot(page, "spec")
    # A version's own link shows that version; its diff link compares it with the one shown.
    row(page, "versions", "version", "1").get_by_role("link", name="v1", exact=True).click()
    page.wait_for_url(served.url + spec_url(EDITED, 1))
    expect(page.locator("#yaml")).to_contain_text("refunds the first way")
    expect(page.locator("#diff")).to_have_count(0)


def test_markup_in_a_spec_is_shown_as_text(browser: Browser, served: Served, uploaded: None) -> None:
    with dashboard_session(browser, served.url, viewport=PHONE) as session:
        session.sign_in(served.key)
        page = session.open(spec_url(HOSTILE), wait_for="#yaml")
        expect(page.locator("#description")).to_have_text(SCRIPT)
        expect(page.locator("#yaml")).to_contain_text(SCRIPT)
        assert page.evaluate("window.pwned") is None
        assert page.locator("main script, main img").count() == 0
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        assert_accessible(page)
        screenshot(page, "spec-phone")
        assert not session.problems()


def test_an_unknown_or_foreign_spec_is_a_404_page(browser: Browser, served: Served) -> None:
    with dashboard_session(browser, served.url) as session:
        session.sign_in(served.other_key)
        for path in (spec_url("refund-agent"), spec_url("no-such-spec"), spec_url(EDITED, 7)):
            page = session.open(path)
            assert page.context.request.get(served.url + path).status == 404
            expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
            expect(page.get_by_role("alert")).to_contain_text("no spec")
        page = session.open("/ui/specs", wait_for="#specs")
        expect(page.locator("#specs tbody tr[data-spec]")).to_have_count(0)


def test_a_long_list_pages_with_a_next_link(browser: Browser, served: Served) -> None:
    key = served.new_project("spec-paging")
    names = [f"paged-{index:03d}" for index in range(SPECS_PER_PAGE + 1)]
    with Keystone(api_key=key, base_url=served.url) as client:
        for name in names:
            client.specs.create(spec_yaml(name))
    with dashboard_session(browser, served.url) as session:
        session.sign_in(key)
        page = session.open("/ui/specs", wait_for="#specs")
        listed = page.locator("#specs tbody tr[data-spec]")
        assert listed.evaluate_all("rows => rows.map(row => row.dataset.spec)") == names[:SPECS_PER_PAGE]
        page.get_by_role("link", name="Next").click()
        page.wait_for_url("**/ui/specs?cursor=**")
        assert listed.evaluate_all("rows => rows.map(row => row.dataset.spec)") == names[SPECS_PER_PAGE:]
        expect(page.get_by_role("link", name="Next")).to_have_count(0)
        assert not session.problems()
