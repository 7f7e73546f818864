"""The experiment page follows a running experiment without a reload: refund-agent with four replicas run
one at a time, watched from the moment it starts until it completes."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from polarity_keystone.server.dashboard._render import experiment_url, replica_url
from tests.dashboard.browser import Dashboard, assert_accessible, screenshot
from tests.dashboard.conftest import Served
from tests.dashboard.test_dashboard_experiments import start_refund

pytestmark = pytest.mark.docker

REPLICAS = 4
DONE = "parseInt(document.getElementById('live-count').textContent, 10)"


def test_a_running_experiment_updates_in_place_until_done(dashboard: Dashboard, served: Served) -> None:
    with served.client() as client:
        experiment_id = start_refund(client, "refund-agent followed live", "live-test", REPLICAS)
    page = dashboard.open(experiment_url(experiment_id), wait_for="#live-count")
    page.evaluate("window.keystoneMarker = 'still the first load'")
    expect(page.locator("#experiment-status")).to_have_text("running", timeout=60_000)
    # Opened as the run starts: its first replica is still booting its sandbox, and each takes seconds.
    assert page.evaluate(DONE) == 0
    expect(page.locator("#live-count")).not_to_have_text(re.compile(r"^0 of"), timeout=120_000)
    middle = page.evaluate(DONE)
    assert middle < REPLICAS
    expect(page.locator("#live-count")).to_have_text(f"{middle} of {REPLICAS} replicas done")
    expect(page.locator("#experiment-progress")).to_have_attribute("value", str(middle))
    expect(page.locator(".replica-grid a.replica")).to_have_count(middle)
    expect(page.locator(".replica-grid .status-pending")).to_have_count(REPLICAS - middle)
    assert_accessible(page)
    screenshot(page, "experiment-live")
    listed = dashboard.open("/ui/experiments?branch=live-test", wait_for="#experiments")
    row = listed.locator(f'tr[data-experiment="{experiment_id}"]')
    expect(row.locator(".status")).to_have_text("running")
    expect(row.locator(".pass-rate")).to_contain_text(re.compile(rf"\d of {REPLICAS} done"))

    expect(page.locator("#experiment-status")).to_have_text("completed", timeout=300_000)
    expect(page.locator("#live-count")).to_have_text(f"{REPLICAS} of {REPLICAS} replicas done")
    assert page.evaluate("window.keystoneMarker") == "still the first load"
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    links = page.locator(".replica-grid a.replica")
    expect(links).to_have_count(REPLICAS)
    scenario = page.locator(".replica-grid").first.get_attribute("data-scenario")
    assert scenario
    for index, link in enumerate(links.all()):
        expect(link).to_have_attribute("href", replica_url(experiment_id, scenario, index))
    expect(page.locator(".replica-grid .status-pending")).to_have_count(0)
    expect(page.locator(f'#scenarios tr[data-scenario="{scenario}"]')).to_contain_text(f"/{REPLICAS}")
    expect(page.locator(".fingerprint dt").first).to_be_visible()
    expect(page.locator("#experiment-progress")).to_have_count(0)
