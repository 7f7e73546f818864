"""The replica page in a real browser over real runs: why sloppy-agent failed (the forbidden rule, its
evidence and the file write in the audit timeline), refund-agent's passing invariants with their SQL, the
replay command and its Copy button, the trace, and an agent of this module's own that writes hostile
markup everywhere it can (output, a file name, a database row) and changes Postgres for the service-state
diff: all of it shows as text and runs nothing."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Browser, Page

from polarity_keystone.server.dashboard._replica_view import OUTPUT_LIMIT
from tests.dashboard.browser import Dashboard, assert_accessible, dashboard_session, screenshot
from tests.dashboard.conftest import Served, run_example

pytestmark = pytest.mark.docker

SCRIPT = "<script>alert(1)</script>"
IMAGE = "<img src=x onerror=alert(2)>"

HOSTILE_AGENT = f"""
import os, subprocess
def sql(statement):
    psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", os.environ["DB_URL"]]
    subprocess.run(psql + ["-c", statement], check=True)
sql("INSERT INTO notes (body) VALUES ('{SCRIPT}')")
open({IMAGE + ".txt"!r}, "w").write("{SCRIPT}")
print("padding " * 10000)
print({SCRIPT!r})
print({IMAGE!r}, file=__import__("sys").stderr)
"""

HOSTILE_SPEC = """
version: 1
id: hostile-agent
description: "Writes markup into its output, a file name and a row."
base: "ubuntu:24.04"
task: {prompt: "Leave a note."}
agent: {type: cli, path: agent, command: python3 /opt/agent/agent.py, timeout: 2m}
setup:
  packages: [python3, postgresql-client]
services:
  - {name: db, image: "postgres:16", env: {POSTGRES_DB: shop}}
fixtures:
  - {type: sql, service: db, sql: "CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL);"}
invariants:
  note_left:
    check: {type: sql, service: db, query: "SELECT body FROM notes", equals: "<script>alert(1)</script>"}
audit:
  db_writes: true
  service_state: true
forbidden:
  file_writes_outside: [notes/]
"""


@pytest.fixture(scope="module")
def hostile_id(served: Served, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An experiment of an agent that writes markup everywhere, failing on the file it writes."""
    folder = tmp_path_factory.mktemp("hostile")
    (folder / "agent").mkdir()
    (folder / "agent" / "agent.py").write_text(HOSTILE_AGENT)
    (folder / "hostile.yaml").write_text(HOSTILE_SPEC)
    with served.client() as client:
        return run_example(client, str(folder / "hostile.yaml"), commit="d4e5f6a", replicas=1)


@pytest.fixture(scope="module")
def llm_id(served: Served) -> str:
    """examples/llm-agent: the official openai client against the spec's mock model service."""
    with served.client() as client:
        return run_example(client, "llm-agent/llm-agent.yaml", commit="e5f6a7b", replicas=1)


def api_replica(served: Served, experiment_id: str, scenario: int = 0, replica: int = 0) -> dict:
    """The replica as the API serves it."""
    results = httpx.get(
        f"{served.url}/v1/experiments/{experiment_id}",
        headers={"Authorization": f"Bearer {served.key}"},
    ).json()
    return results["scenarios"][scenario]["replicas"][replica]


def replica_path(experiment_id: str, scenario_id: str, replica: int = 0) -> str:
    return f"/ui/experiments/{experiment_id}/scenarios/{scenario_id}/replicas/{replica}"


def section(page: Page, heading: str) -> str:
    """The text from the heading `heading` to the next h2."""
    return page.evaluate(
        """heading => {
            const start = [...document.querySelectorAll('h2')].find(h => h.textContent.trim() === heading);
            let text = '', node = start.nextElementSibling;
            while (node && node.tagName !== 'H2') {
                text += node.innerText + '\\n';
                node = node.nextElementSibling;
            }
            return text;
        }""",
        heading,
    )


def test_the_sloppy_replica_shows_the_violated_rule_its_file_write_and_its_replay_command(
    browser: Browser, served: Served
) -> None:
    replica = api_replica(served, served.sloppy_id)
    with dashboard_session(browser, served.url) as session:
        session.context.grant_permissions(["clipboard-read", "clipboard-write"])
        session.sign_in(served.key)
        page = session.open(replica_path(served.sloppy_id, "sloppy-agent"), wait_for="h1")
        assert "fail" in page.locator("h1 .status").inner_text()
        rule = page.locator("tr[data-rule=file_writes_outside]")
        assert "violated" in rule.locator(".status").inner_text()
        assert "scratch.txt" in rule.locator(".evidence").inner_text()
        assert "forbidden rule 'file_writes_outside' violated" in page.locator(".reasons").inner_text()
        writes = page.locator("table.audit tr[data-kind=file_write]")
        assert "scratch.txt" in writes.all_inner_texts()[-1]
        command = replica["reproducer"]["command"]
        assert page.locator("#replay-command").inner_text() == command
        assert_accessible(page)
        screenshot(page, "replica-failed")
        page.get_by_role("button", name="Copy").click()
        assert page.evaluate("navigator.clipboard.readText()") == command
        assert "report written" in page.locator("pre").first.inner_text()
        breadcrumb = page.get_by_role("navigation", name="Breadcrumb").get_by_role("link").last
        assert breadcrumb.get_attribute("href") == f"/ui/experiments/{served.sloppy_id}"
        assert not session.problems(), session.problems()


def test_a_refund_replica_shows_its_four_invariants_passing_with_their_sql(
    dashboard: Dashboard, served: Served
) -> None:
    experiment_id = served.refund_ids[0]
    replica = api_replica(served, experiment_id, replica=1)
    page = dashboard.open(replica_path(experiment_id, "refund-agent", 1), wait_for="h1")
    rows = page.locator("table.invariants tbody tr")
    assert rows.count() == 4
    for invariant in replica["invariants"]:
        row = page.locator(f"tr[data-invariant={invariant['name']}]")
        assert row.locator(".status").inner_text().endswith("passed")
        if "query" in invariant["evidence"]:
            assert invariant["evidence"]["query"] in row.locator(".evidence").inner_text()
    assert page.locator("tr[data-invariant=order_refunded] td").nth(2).inner_text() == "gate"
    sql = page.locator("table.audit tr[data-kind=sql]").all_inner_texts()
    assert any("UPDATE orders SET status = 'refunded'" in text for text in sql)
    assert "refunded order 1042" in page.locator("pre").first.inner_text()
    assert replica["reproducer"] is None and "this one passed" in section(page, "Replay")
    assert "Not recorded" in section(page, "Service-state diff"), "refund-agent asks only for db_writes"
    assert "No trace events" in section(page, "Trace")
    assert page.locator("h1").inner_text().startswith("refund-agent · replica 1")
    assert_accessible(page)
    screenshot(page, "replica")


def test_the_kind_filter_narrows_the_audit_timeline_with_and_without_script(
    dashboard: Dashboard, served: Served, browser: Browser
) -> None:
    path = replica_path(served.refund_ids[0], "refund-agent")
    page = dashboard.open(path, wait_for="table.audit")
    page.get_by_label("file_write").uncheck()
    page.get_by_label("command").uncheck()
    assert page.locator("table.audit tr[data-kind=file_write]").is_hidden()
    assert page.locator("table.audit tr[data-kind=sql]").first.is_visible()
    scriptless = browser.new_context(java_script_enabled=False)
    try:
        scriptless.add_cookies(dashboard.context.cookies())  # type: ignore[arg-type]
        bare = scriptless.new_page()
        bare.goto(f"{served.url}{path}")
        bare.get_by_label("command").uncheck()
        bare.get_by_label("file_write").uncheck()
        bare.get_by_role("button", name="Show").click()
        bare.wait_for_url(f"{served.url}{path}?kind=db_write&kind=sql")
        assert bare.locator("table.audit tr[data-kind=sql]").first.is_visible()
        assert bare.locator("table.audit tr[data-kind=file_write]").is_hidden()
    finally:
        scriptless.close()


def test_hostile_markup_from_the_agent_shows_as_text_and_runs_nothing(
    dashboard: Dashboard, served: Served, hostile_id: str
) -> None:
    replica = api_replica(served, hostile_id)
    dialogs: list[str] = []
    page = dashboard.context.new_page()
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(served.url + replica_path(hostile_id, "hostile-agent"))
    stdout, stderr = page.locator("pre").all_inner_texts()
    assert SCRIPT in stdout and IMAGE in stderr
    assert len(replica["agent_output"]) > OUTPUT_LIMIT
    assert len(stdout) <= OUTPUT_LIMIT, "the page shows the end of a long output"
    cut = len(replica["agent_output"]) - OUTPUT_LIMIT
    assert f"The first {cut} characters are left out" in section(page, "Agent output")
    evidence = page.locator("tr[data-rule=file_writes_outside] .evidence").inner_text()
    assert IMAGE + ".txt" in evidence
    assert SCRIPT in page.locator("tr[data-invariant=note_left]").inner_text()
    assert any(
        IMAGE in text for text in page.locator("table.audit tr[data-kind=file_write]").all_inner_texts()
    )
    assert page.locator("main script, main img").count() == 0
    assert dialogs == []
    state = section(page, "Service-state diff")
    (added,) = replica["service_state"]["db"]["added"]
    assert "1 added, 0 changed, 0 removed" in state
    assert added["item"] in state and SCRIPT in state
    page.close()


def test_the_trace_section_lists_what_the_agent_reported(
    dashboard: Dashboard, served: Served, hostile_id: str
) -> None:
    """Events sent as an agent reports them (the API's trace route for the replica's sandbox): agents in
    these sandboxes cannot reach a server that listens on loopback only."""
    sandbox_id = api_replica(served, hostile_id)["sandbox_id"]
    events = [
        {
            "event_type": "llm_call",
            "model": "gpt-4o-mini",
            "usage": {"input_tokens": 412, "output_tokens": 18},
            "duration_ms": 840,
        },
        {"event_type": "tool_call", "tool": SCRIPT, "phase": "end", "status": "ok", "duration_ms": 12},
    ]
    sent = httpx.post(
        f"{served.url}/v1/sandboxes/{sandbox_id}/trace",
        json={"events": events},
        headers={"Authorization": f"Bearer {served.key}"},
    )
    assert sent.status_code == 200, sent.text
    page = dashboard.open(replica_path(hostile_id, "hostile-agent"), wait_for="table.trace")
    llm, tool = page.locator("table.trace tbody tr").all()
    assert llm.locator("td").all_inner_texts()[:7] == [
        "1",
        "llm_call",
        "-",
        "gpt-4o-mini",
        "412",
        "18",
        "840.0 ms",
    ]
    assert tool.locator("td").nth(2).inner_text() == SCRIPT
    assert_accessible(page)


def test_the_model_calls_of_the_llm_agent_are_listed_with_their_model_and_tokens(
    dashboard: Dashboard, served: Served, llm_id: str
) -> None:
    replica = api_replica(served, llm_id)
    (exchanges,) = replica["recordings"].values()
    page = dashboard.open(replica_path(llm_id, "llm-agent"), wait_for="table.trace")
    rows = page.locator("table.trace tbody tr").all()
    assert len(rows) == len(exchanges) == 3
    for row, exchange, tools, (tokens_in, tokens_out) in zip(
        rows, exchanges, ["lookup_order", "refund_order", "-"], [(412, 18), (530, 27), (590, 21)], strict=True
    ):
        cells = row.locator("td").all_inner_texts()
        assert cells[1:6] == ["llm_call", tools, exchange["model"], str(tokens_in), str(tokens_out)]
        assert cells[7] == "ok"
    assert_accessible(page)


def test_an_unknown_replica_or_scenario_or_another_projects_experiment_is_a_404_page(
    dashboard: Dashboard, served: Served, browser: Browser
) -> None:
    for path in (
        replica_path(served.sloppy_id, "sloppy-agent", 9),
        replica_path(served.sloppy_id, "no-such-scenario"),
        replica_path("exp-000000000000", "sloppy-agent"),
    ):
        response = httpx.get(served.url + path, cookies=_cookies(dashboard))
        assert response.status_code == 404, path
    page = dashboard.context.new_page()  # not `open`: a 404 is what it expects
    page.goto(served.url + replica_path(served.sloppy_id, "sloppy-agent", 9))
    assert "no finished replica 9" in page.locator("main").inner_text()
    with dashboard_session(browser, served.url) as other:
        other.sign_in(served.other_key)
        foreign = httpx.get(
            served.url + replica_path(served.sloppy_id, "sloppy-agent"), cookies=_cookies(other)
        )
        assert foreign.status_code == 404


def _cookies(session: Dashboard) -> dict[str, str]:
    return {cookie["name"]: cookie["value"] for cookie in session.context.cookies()}


def test_the_page_reads_at_phone_width(browser: Browser, served: Served) -> None:
    with dashboard_session(browser, served.url, viewport={"width": 390, "height": 844}) as session:
        session.sign_in(served.key)
        page = session.open(replica_path(served.sloppy_id, "sloppy-agent"), wait_for="h1")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert_accessible(page)
        screenshot(page, "replica-phone")
        assert not session.problems(), session.problems()
