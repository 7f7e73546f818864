"""`POST /v1/sandboxes/{id}/checks` in a real sandbox of the refund example (Postgres beside it): the
sandbox scorers of the SDK run their spec checks in it through `ks.sandboxes` (the judge's against a
local fake model server), another project's sandbox
is a 404, a bad check a 400 naming its key, and a call holds at most 20 checks; the README's snippet
prints what it says."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from polarity_keystone import CommandExits, FileContains, FileExists, Keystone, LLMJudge, SQLEquals
from polarity_keystone.scorers import Case
from polarity_keystone.server import create_api_key
from polarity_keystone.store import ProjectRecord
from tests.scoring.test_llm_judge import ENV_VARS
from tests.sdk.readme_snippets import run_readme_snippet
from tests.sdk.sdk_servers import keystone_on_socket
from tests.server.server_api import Api, MakeApi
from tests.server.test_server_scoring import configured_judge
from tests.stores import ENGINE_ON_ONE_STORE

pytestmark = [pytest.mark.docker, ENGINE_ON_ONE_STORE]

REFUND_SPEC = Path(__file__).parents[2] / "examples" / "refund-agent" / "refund.yaml"


@pytest.fixture
def refund_box(make_api: MakeApi) -> Iterator[tuple[Api, Keystone, str]]:
    """A server with a ready sandbox of the refund example, and an SDK client of it."""
    api = make_api()
    ks = Keystone(api_key=api.key, base_url=api.base_url, transport=api.transport)
    ks.specs.create(path=REFUND_SPEC)
    sandbox = ks.sandboxes.create("refund-agent", timeout="5m")
    yield api, ks, sandbox.id
    ks.sandboxes.destroy(sandbox.id)
    ks.close()


def test_the_sandbox_scorers_run_their_checks_in_a_live_sandbox(
    refund_box: tuple[Api, Keystone, str],
) -> None:
    _api, ks, sandbox_id = refund_box
    ks.sandboxes.write_file(sandbox_id, "notes/refund-1042.md", "Refunded: damaged in transit.\n")
    case = Case(sandbox_id=sandbox_id, sandbox_checker=ks.sandboxes)

    scores = {
        "note": FileExists("notes/refund-1042.md")(case),
        "missing": FileExists("notes/other.md")(case),
        "says_why": FileContains("notes/refund-1042.md", pattern="(?i)damaged", not_contains="sorry")(case),
        "grep": CommandExits("grep -q transit notes/refund-1042.md")(case),
        "failing": CommandExits("exit 3", exit_code=0)(case),
        "paid": SQLEquals("db", "SELECT status FROM orders WHERE id = 1042", expected="paid")(case),
        "count": SQLEquals("db", "SELECT count(*) FROM orders", 3)(case),
    }

    assert {name: score.status for name, score in scores.items()} == {
        "note": "pass",
        "missing": "fail",
        "says_why": "pass",
        "grep": "pass",
        "failing": "fail",
        "paid": "pass",
        "count": "fail",
    }
    assert scores["missing"].message == "notes/other.md does not exist"
    assert "exited 3 (expected 0)" in scores["failing"].message
    assert scores["count"].message == "query returned '2', expected 3"
    assert scores["paid"].metadata["evidence"]["rows"] == [["paid"]]


def test_llm_judge_reads_the_live_workspace_with_the_servers_judge_and_is_skipped_without_one(
    refund_box: tuple[Api, Keystone, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _api, ks, sandbox_id = refund_box
    ks.sandboxes.write_file(sandbox_id, "notes/refund-1042.md", "Refunded: damaged in transit.\n")
    case = Case(sandbox_id=sandbox_id, sandbox_checker=ks.sandboxes)
    scorer = LLMJudge("The note says why the order was refunded", model="judge-model", pass_threshold=0.7)
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)

    unjudged = scorer(case)
    with configured_judge(monkeypatch) as judge:
        judge.answer('{"score": 0.9, "reasoning": "damage in transit is the reason"}')
        judged = scorer(case)

    assert unjudged.status == "skipped" and unjudged.passed is None
    assert (judged.status, judged.score) == ("pass", 0.9)
    assert "Refunded: damaged in transit." in judge.prompt  # the workspace, LLMJudge's default input
    assert "The note says why the order was refunded" in judge.prompt


def test_checks_are_bounded_validated_and_kept_within_the_project(
    refund_box: tuple[Api, Keystone, str],
) -> None:
    api, _ks, sandbox_id = refund_box
    url = f"/v1/sandboxes/{sandbox_id}/checks"
    store = api.context.store
    store.add_project(ProjectRecord("proj_other", "other", datetime.now(UTC)))
    other = api.as_key(create_api_key(store, "other", "proj_other")[0])
    exists = {"type": "file_exists", "path": "a.txt"}

    token = api.client.post(
        f"/v1/sandboxes/{sandbox_id}/commands", json={"command": "echo $KEYSTONE_API_KEY"}
    )
    own_token = api.as_key(token.json()["stdout"].strip()).post(url, json={"invariants": {"a": exists}})
    foreign = other.post(url, json={"invariants": {"a": exists}})
    bad = api.client.post(
        url, json={"invariants": {"ok": exists, "note": {"type": "file_content", "path": "n"}}}
    )
    no_service = api.client.post(
        url, json={"invariants": {"q": {"type": "sql", "service": "nope", "query": "x", "equals": 1}}}
    )
    too_many = api.client.post(url, json={"invariants": {f"c{i}": exists for i in range(21)}})
    too_big = api.client.post(
        url, json={"invariants": {"c": {"type": "command_exit", "command": "x" * 70_000}}}
    )
    as_invariant = api.client.post(
        url, json={"invariants": {"a": {"check": exists, "weight": 2, "gate": True}}}
    )

    assert foreign.status_code == 404, foreign.text
    assert own_token.status_code == 403, own_token.text  # checks run as the container's user, not the agent's
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"
    assert bad.json()["message"].startswith("invariants.note.check.file_content: ")
    assert (
        no_service.status_code == 400
        and "no service 'nope' (it has: cache, db)" in no_service.json()["message"]
    )
    assert too_many.status_code == 400 and "at most 20" in too_many.text
    assert too_big.status_code == 413 and too_big.json()["error"] == "payload_too_large"
    assert as_invariant.status_code == 200, as_invariant.text
    [result] = as_invariant.json()["results"]
    assert (result["name"], result["passed"], result["gate"], result["weight"]) == ("a", False, True, 2.0)


def test_the_readme_snippet_prints_what_it_says(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REFUND_SPEC.parents[2])  # the snippet names the example from the checkout's root
    with keystone_on_socket(store_url) as server:
        printed, expected = run_readme_snippet("Sandbox scorers", server, monkeypatch)
    assert printed == expected
