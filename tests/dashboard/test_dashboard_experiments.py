"""The experiments list and the experiment page, in a real browser over real runs: the filters narrow the
rows, the pass rates and intervals are the API's, the trend draws the spec's runs on main, the experiment
page's scenarios and replicas are the API's with a link per replica, and another project's experiment is
as missing as an unknown one."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from polarity_keystone.sdk import Keystone
from polarity_keystone.server.dashboard._experiment_list import PAGE_ROWS
from polarity_keystone.server.dashboard._render import (
    compare_url,
    experiment_url,
    percent,
    replica_url,
    spec_url,
)
from tests.dashboard.browser import PHONE, Dashboard, assert_accessible, dashboard_session, screenshot
from tests.dashboard.conftest import Served, _key
from tests.examples.shipped_examples import EXAMPLES

pytestmark = pytest.mark.docker

FEATURE_BRANCH = "feature/faster-refunds"
FEATURE_NAME = 'refund-agent on a feature branch <img src=x onerror="window.pwned = 1">'
"""Experiment names are anyone's text: the pages show them as text, never as markup."""


def api(served: Served, path: str, **params: str) -> Any:
    response = httpx.get(
        served.url + path, params=params, headers={"Authorization": f"Bearer {served.key}"}, timeout=30
    )
    response.raise_for_status()
    return response.json()


def start_refund(client: Keystone, name: str, branch: str, replicas: int, concurrency: int = 1) -> str:
    """refund-agent started (not waited for) on `branch`; the experiment's id."""
    path = EXAMPLES / "refund-agent/refund.yaml"
    spec = client.specs.create(path=path)
    experiment = client.experiments.create(
        name,
        spec.id,
        spec_path=path,
        metadata={"branch": branch, "commit": "f00dfee"},
        replicas=replicas,
        concurrency=concurrency,
        seed=11,
    )
    client.experiments.run(experiment.id)
    return experiment.id


@pytest.fixture(scope="module")
def feature_id(served: Served) -> str:
    """refund-agent run once on a feature branch: the branch filter must keep it apart from main's."""
    with served.client() as client:
        experiment_id = start_refund(client, FEATURE_NAME, FEATURE_BRANCH, 1)
        results = client.experiments.wait(experiment_id, timeout=300)
        assert results.status == "completed", (results.status, results.error)
        return experiment_id


def listed_ids(page: Page) -> list[str]:
    rows = page.locator("#experiments tbody tr[data-experiment]").all()
    return [str(row.get_attribute("data-experiment")) for row in rows]


def interval(ci: list[float]) -> str:
    return f"{percent(ci[0], 1)} \u2013 {percent(ci[1], 1)}"


def test_the_filters_narrow_the_rows(dashboard: Dashboard, served: Served, feature_id: str) -> None:
    page = dashboard.open("/ui/experiments", wait_for="#experiments")
    every = listed_ids(page)
    assert {*served.refund_ids, served.sloppy_id, feature_id} <= set(every)

    page.get_by_label("Spec").fill("refund-agent")
    page.get_by_label("Branch").fill("main")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/ui/experiments?spec=refund-agent&branch=main**")
    on_main = listed_ids(page)
    assert set(served.refund_ids) <= set(on_main)
    assert served.sloppy_id not in on_main and feature_id not in on_main
    expect(page.get_by_label("Spec")).to_have_value("refund-agent")  # the form keeps what was asked

    page = dashboard.open(f"/ui/experiments?branch={FEATURE_BRANCH}", wait_for="#experiments")
    assert listed_ids(page) == [feature_id]
    feature_row = page.locator(f'tr[data-experiment="{feature_id}"]')
    expect(feature_row).to_contain_text(FEATURE_BRANCH)
    expect(feature_row.get_by_role("link").first).to_have_text(FEATURE_NAME)
    page = dashboard.open(experiment_url(feature_id), wait_for="#scenarios")
    expect(page.get_by_role("heading", level=1)).to_have_text(FEATURE_NAME)
    assert page.locator("main img").count() == 0
    assert page.evaluate("window.pwned") is None

    page = dashboard.open("/ui/experiments?spec=sloppy-agent&status=completed", wait_for="#experiments")
    assert served.sloppy_id in listed_ids(page)
    for row in page.locator("#experiments tbody tr").all():
        expect(row.locator("td").nth(1)).to_contain_text("sloppy-agent")
        expect(row.locator(".status")).to_have_text("completed")
    page = dashboard.open("/ui/experiments?status=failed", wait_for="#experiments")
    assert not {*served.refund_ids, served.sloppy_id} & set(listed_ids(page))

    page = dashboard.open("/ui/experiments?until=2000-01-01", wait_for="#experiments")
    assert listed_ids(page) == []
    expect(page.locator("#experiments tbody")).to_contain_text("No experiment matches these filters.")
    created = api(served, f"/v1/experiments/{served.refund_ids[0]}")["created_at"][:10]
    page = dashboard.open(f"/ui/experiments?since={created}&until={created}", wait_for="#experiments")
    assert set(served.refund_ids) <= set(listed_ids(page))


def test_a_malformed_filter_is_a_400_page(browser: Browser, served: Served) -> None:
    with dashboard_session(browser, served.url) as session:
        session.sign_in(served.key)
        page = session.open("/ui/experiments?since=yesterday")
        assert page.context.request.get(page.url).status == 400
        expect(page.get_by_role("alert")).to_contain_text("since must be a date as YYYY-MM-DD")


def test_pass_rates_and_intervals_are_the_apis(dashboard: Dashboard, served: Served) -> None:
    page = dashboard.open("/ui/experiments?spec=refund-agent", wait_for="#experiments")
    for experiment_id in served.refund_ids:
        document = api(served, f"/v1/experiments/{experiment_id}")
        metrics = document["metrics"]
        row = page.locator(f'tr[data-experiment="{experiment_id}"]')
        expect(row.locator(".pass-rate")).to_contain_text(percent(metrics["pass_rate"], 1))
        expect(row.locator(".pass-rate .ci")).to_have_text(interval(metrics["pass_rate_ci"]))
        expect(row.locator(".status")).to_have_text("completed")
        expect(row.get_by_role("link").first).to_have_attribute("href", experiment_url(experiment_id))
        spec_link = row.get_by_role("link", name="refund-agent", exact=True)
        expect(spec_link).to_have_attribute("href", spec_url("refund-agent", document["spec_version"]))


def test_the_trend_draws_each_completed_run_on_main(dashboard: Dashboard, served: Served) -> None:
    page = dashboard.open("/ui/experiments?spec=refund-agent", wait_for="#trend-chart canvas")
    on_main = api(
        served,
        "/v1/experiments",
        spec_id="refund-agent",
        status="completed",
        **{"metadata.branch": "main"},
    )
    oldest_first = [experiment["id"] for experiment in reversed(on_main)]
    assert served.refund_ids == [found for found in oldest_first if found in served.refund_ids]
    drawn = page.evaluate("JSON.parse(document.getElementById('trend-data').textContent)")
    assert len(drawn["x"]) == len(drawn["pass_rate"]) == len(oldest_first)
    rows = page.locator("#trend-table tbody tr")
    expect(rows).to_have_count(len(oldest_first))
    for index, experiment_id in enumerate(oldest_first):
        metrics = api(served, f"/v1/experiments/{experiment_id}")["metrics"]
        assert drawn["pass_rate"][index] == metrics["pass_rate"]
        assert [drawn["low"][index], drawn["high"][index]] == metrics["pass_rate_ci"]
        cells = rows.nth(index).locator("td")
        expect(cells.nth(1)).to_have_text(experiment_id)
        expect(cells.nth(3)).to_have_text(percent(metrics["pass_rate"], 1))
        expect(cells.nth(4)).to_have_text(interval(metrics["pass_rate_ci"]))
    assert drawn["x"] == sorted(drawn["x"])
    assert_accessible(page)
    screenshot(page, "experiments")


def test_the_list_reads_at_phone_width(browser: Browser, served: Served) -> None:
    with dashboard_session(browser, served.url, viewport=PHONE) as session:
        session.sign_in(served.key)
        page = session.open("/ui/experiments?spec=refund-agent", wait_for="#trend-chart canvas")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        assert_accessible(page)
        screenshot(page, "experiments-phone")
        assert not session.problems()


@pytest.mark.parametrize("which", ["refund", "sloppy"])
def test_the_experiment_page_shows_the_apis_scenarios_and_every_replica(
    dashboard: Dashboard, served: Served, which: str
) -> None:
    experiment_id = served.refund_ids[-1] if which == "refund" else served.sloppy_id
    document = api(served, f"/v1/experiments/{experiment_id}")
    page = dashboard.open(experiment_url(experiment_id), wait_for="#scenarios")
    expect(page.locator("#experiment-status")).to_have_text(document["status"])
    expect(page.locator(".facts").first).to_contain_text(document["metadata"]["commit"])
    for scenario in document["scenarios"]:
        row = page.locator(f'#scenarios tr[data-scenario="{scenario["scenario_id"]}"]')
        cells = row.locator("td")
        expect(cells.nth(0)).to_have_text(scenario["status"])
        expect(cells.nth(1)).to_have_text(percent(scenario["pass_rate"], 1))
        expect(cells.nth(2)).to_have_text(interval(scenario["pass_rate_ci"]))
        expect(cells.nth(3)).to_have_text(f"{scenario['replicas_passed']}/{scenario['replicas_total']}")
        expect(cells.nth(4)).to_have_text(f"{scenario['composite_score']:.2f}")
        grid = page.locator(f'.replica-grid[data-scenario="{scenario["scenario_id"]}"] a.replica')
        expect(grid).to_have_count(len(scenario["replicas"]))
        for link, replica in zip(grid.all(), scenario["replicas"], strict=True):
            expect(link).to_have_attribute(
                "href", replica_url(experiment_id, scenario["scenario_id"], replica["replica"])
            )
            expect(link.locator(".status")).to_have_text(replica["status"])
            expect(link).to_contain_text(f"seed {replica['seed']}")
    fingerprint = page.locator(".fingerprint dt")
    expect(fingerprint).to_have_count(len(document["fingerprint"]))
    assert document["fingerprint"], "a finished run records its fingerprint"
    expect(page.locator(".fingerprint")).to_contain_text(sorted(document["fingerprint"])[0])
    if which == "refund":
        compare = page.locator("a.compare")
        expect(compare).to_have_attribute("href", compare_url(served.refund_ids[-2], experiment_id))
        assert_accessible(page)
        screenshot(page, "experiment")
    else:
        expect(page.locator("a.compare")).to_have_count(0)  # its spec has no earlier run
        expect(page.locator("#scenarios .status-fail, #scenarios .status-flaky").first).to_be_visible()
    expect(page.locator("#live-count")).to_have_count(0)  # a finished experiment is not followed


def test_an_unknown_or_foreign_experiment_is_a_404_page(browser: Browser, served: Served) -> None:
    with dashboard_session(browser, served.url) as session:
        session.sign_in(served.other_key)
        foreign = experiment_url(served.refund_ids[0])
        for path in (foreign, experiment_url("exp_does_not_exist")):
            page = session.open(path)
            response = page.context.request.get(served.url + path)
            assert response.status == 404
            expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
            expect(page.get_by_role("alert")).to_contain_text("no experiment")
        for suffix in ("/live", "/stream"):
            assert page.context.request.get(served.url + foreign + suffix).status == 404
        page = session.open("/ui/experiments", wait_for="#experiments")
        assert listed_ids(page) == []


def test_a_long_list_pages_with_next_links(browser: Browser, served: Served) -> None:
    """A project of its own with one page and one more of experiments (created, never run)."""
    workdir, store = served.server.output.parent, served.store_url
    subprocess.run(
        [sys.executable, "-m", "polarity_keystone", "projects", "create", "paging", "--store", store],
        cwd=workdir,
        capture_output=True,
        check=True,
    )
    key = _key(served.store_url, workdir, "paging-key", "--project", "paging")
    with Keystone(api_key=key, base_url=served.url) as client:
        spec = client.specs.create(path=EXAMPLES / "refund-agent/refund.yaml")
        created = [
            client.experiments.create(f"never run {index}", spec.id, metadata={"branch": "main"}).id
            for index in range(PAGE_ROWS + 1)
        ]
    with dashboard_session(browser, served.url) as session:
        session.sign_in(key)
        page = session.open("/ui/experiments?branch=main", wait_for="#experiments")
        first = listed_ids(page)
        assert first == created[::-1][:PAGE_ROWS]
        expect(page.locator("#experiments tbody tr").first).to_contain_text("0 of")
        page.get_by_role("link", name="Next").click()
        page.wait_for_url("**cursor=**")
        assert listed_ids(page) == [created[0]]
        expect(page.get_by_label("Branch")).to_have_value("main")  # the filters go along
        expect(page.get_by_role("link", name="Next")).to_have_count(0)
        assert not session.problems()
