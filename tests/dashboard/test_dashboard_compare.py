"""The compare page in a real browser over real runs: every scenario with the decision, pass rates, change
and p-values `POST /v1/experiments/compare` answers for the same pair and policy; experiments without a
scenario in common, an unfinished one, the chooser form, and ids the project does not have."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from polarity_keystone.server.dashboard._render import compare_url, experiment_url, percent
from tests.dashboard.browser import PHONE, Dashboard, assert_accessible, dashboard_session, screenshot
from tests.dashboard.conftest import Served

pytestmark = pytest.mark.docker


def api_compare(served: Served, baseline: str, candidate: str, **policy: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{served.url}/v1/experiments/compare",
        json={"baseline_id": baseline, "candidate_id": candidate, **policy},
        headers={"Authorization": f"Bearer {served.key}"},
        timeout=30,
    )
    response.raise_for_status()
    return dict(response.json())


def api_experiment(served: Served, experiment_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{served.url}/v1/experiments/{experiment_id}",
        headers={"Authorization": f"Bearer {served.key}"},
        timeout=30,
    )
    response.raise_for_status()
    return dict(response.json())


def p_value(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def change(before: float | None, after: float | None) -> str:
    return "-" if before is None or after is None else f"{round((after - before) * 100, 1) + 0.0:+.1f} pts"


@pytest.fixture(scope="module")
def unfinished_id(served: Served) -> str:
    """A refund-agent experiment created and never run: it stays `created`."""
    with served.client() as client:
        return client.experiments.create("refund-agent, never run", "refund-agent", replicas=1).id


def assert_shows(page: Page, comparison: dict[str, Any]) -> None:
    """The page prints every scenario of the API's comparison with its numbers, and the same policy."""
    rows = page.locator("#scenarios tbody tr")
    expect(rows).to_have_count(len(comparison["scenarios"]))
    for scenario in comparison["scenarios"]:
        row = page.locator(f'#scenarios tr[data-scenario="{scenario["scenario_id"]}"]')
        expect(row.locator(".decision")).to_have_text(scenario["decision"])
        expect(row.locator(".baseline")).to_contain_text(percent(scenario["baseline_pass_rate"], 1))
        expect(row.locator(".candidate")).to_contain_text(percent(scenario["candidate_pass_rate"], 1))
        expect(row.locator(".change")).to_have_text(
            change(scenario["baseline_pass_rate"], scenario["candidate_pass_rate"])
        )
        expect(row.locator(".p-value")).to_have_text(p_value(scenario["p_value"]))
        expect(row.locator(".p-adjusted")).to_have_text(p_value(scenario["p_adjusted"]))
    expect(page.locator("#suite-decision")).to_have_text(comparison["suite"]["decision"])
    expect(page.locator("#summary")).to_have_text(comparison["summary"])
    expect(page.locator("#policy-alpha")).to_have_text(str(comparison["policy"]["alpha"]))
    expect(page.locator("#policy-correction")).to_have_text(comparison["policy"]["correction"])


def test_the_page_shows_the_apis_decision_for_every_scenario(dashboard: Dashboard, served: Served) -> None:
    baseline, candidate = served.refund_ids[0], served.refund_ids[-1]
    comparison = api_compare(served, baseline, candidate)
    assert comparison["scenarios"], "refund-agent's runs share their scenarios"
    page = dashboard.open(compare_url(baseline, candidate), wait_for="#scenarios")
    assert_shows(page, comparison)
    for side, experiment_id in (("baseline", baseline), ("candidate", candidate)):
        for scenario in api_experiment(served, experiment_id)["scenarios"]:
            low, high = scenario["pass_rate_ci"]
            row = page.locator(f'#scenarios tr[data-scenario="{scenario["scenario_id"]}"]')
            interval = f"{percent(low, 1)} \N{EN DASH} {percent(high, 1)}"
            expect(row.locator(f".{side} .ci")).to_have_text(interval)
    expect(page.locator("#baseline-link")).to_have_attribute("href", experiment_url(baseline))
    expect(page.locator("#candidate-link")).to_have_attribute("href", experiment_url(candidate))
    assert_accessible(page)
    screenshot(page, "compare")
    for link in ("#baseline-link", "#candidate-link"):
        href = page.locator(link).get_attribute("href")
        assert page.context.request.get(f"{served.url}{href}").status == 200


def test_the_policy_in_the_query_is_the_one_the_api_applies(dashboard: Dashboard, served: Served) -> None:
    baseline, candidate = served.refund_ids[1], served.refund_ids[0]
    comparison = api_compare(served, baseline, candidate, alpha=0.2, correction="bh", min_effect=0.05)
    query = "&alpha=0.2&correction=bh&min_effect=0.05"
    page = dashboard.open(compare_url(baseline, candidate) + query, wait_for="#scenarios")
    assert_shows(page, comparison)
    expect(page.locator("#policy-min-effect")).to_have_text("5.0%")
    expect(page.get_by_label("Correction")).to_have_value("bh")
    refused = dashboard.context.request.get(f"{served.url}{compare_url(baseline, candidate)}&alpha=0.9")
    assert refused.status == 400, "held to the API's limits"
    assert "alpha" in refused.text()


def test_experiments_without_a_scenario_in_common_say_so(dashboard: Dashboard, served: Served) -> None:
    comparison = api_compare(served, served.refund_ids[-1], served.sloppy_id)
    assert comparison["scenarios"] == [] and comparison["suite"] is None
    page = dashboard.open(compare_url(served.refund_ids[-1], served.sloppy_id), wait_for="#summary")
    expect(page.locator("#summary")).to_have_text(comparison["summary"])
    expect(page.locator("#suite-decision")).to_have_text("not compared")
    expect(page.locator("#no-common")).to_contain_text("no scenario in common")
    expect(page.locator("#metrics tbody tr")).to_have_count(len(comparison["metrics"]))


def test_the_chooser_offers_finished_experiments_and_leads_to_the_comparison(
    browser: Browser, served: Served, unfinished_id: str
) -> None:
    baseline, candidate = served.refund_ids[0], served.refund_ids[1]
    with dashboard_session(browser, served.url, viewport=PHONE) as session:
        session.sign_in(served.key)
        page = session.open("/ui/compare", wait_for="form.compare-form")
        options = page.locator("#compare-baseline option")
        offered = options.evaluate_all("options => options.map(option => option.value)")
        assert {*served.refund_ids, served.sloppy_id} <= set(offered)
        assert unfinished_id not in offered
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        assert_accessible(page)
        screenshot(page, "compare-chooser-phone")
        page.get_by_label("Baseline").select_option(baseline)
        page.get_by_label("Candidate").select_option(candidate)
        page.get_by_role("button", name="Compare").click()
        page.wait_for_url(f"{served.url}{compare_url(baseline, candidate)}**")
        assert_shows(page, api_compare(served, baseline, candidate))
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        screenshot(page, "compare-phone")
        assert not session.problems()


def test_an_unfinished_experiment_is_named_as_the_api_names_it(
    browser: Browser, served: Served, unfinished_id: str
) -> None:
    refused = httpx.post(
        f"{served.url}/v1/experiments/compare",
        json={"baseline_id": served.refund_ids[0], "candidate_id": unfinished_id},
        headers={"Authorization": f"Bearer {served.key}"},
        timeout=30,
    )
    assert refused.status_code == 409
    path = compare_url(served.refund_ids[0], unfinished_id)
    with dashboard_session(browser, served.url) as session:
        session.sign_in(served.key)
        page = session.open(path, wait_for="form.compare-form")
        assert page.context.request.get(served.url + path).status == 409
        expect(page.get_by_role("alert")).to_contain_text(refused.json()["message"])
        expect(page.get_by_role("alert")).to_contain_text(f"experiment {unfinished_id} is created")
        expect(page.locator("#scenarios")).to_have_count(0)
        assert_accessible(page)
        # The browser reports the page's own 409 as a console error; nothing else may fail.
        assert all("status of 409" in problem for problem in session.problems()), session.problems()


def test_an_unknown_or_foreign_experiment_is_a_404_page(browser: Browser, served: Served) -> None:
    with dashboard_session(browser, served.url) as session:
        session.sign_in(served.other_key)
        for path in (
            compare_url(served.refund_ids[0], served.refund_ids[1]),  # project A's: unknown to B
            compare_url("exp_does_not_exist", "exp_nor_this"),
        ):
            page = session.open(path)
            assert page.context.request.get(served.url + path).status == 404
            expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
            expect(page.get_by_role("alert")).to_contain_text("no experiment")
        page = session.open("/ui/compare", wait_for="form.compare-form")
        expect(page.locator("#compare-baseline option")).to_have_count(1)  # B has no experiment to offer
