"""A failed replica's exit code and last output lines, in every report that shows the failure: the CLI
report, and the gate's JUnit, Markdown summary and PR comment (written by the real publish step)."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from polarity_keystone.cli._report import print_run
from polarity_keystone.engine._aggregate import aggregate_run, aggregate_scenario
from polarity_keystone.gate import GateReport, Policy, SpecRun, decide
from polarity_keystone.gate._report import write_report
from polarity_keystone.results import EVIDENCE_CHARS, EVIDENCE_LINES, RunResults, failure_evidence
from polarity_keystone.secrets import Redactor
from tests.gate.gate_env import gate, github_env
from tests.gate.gate_forges import Forge, running_forge
from tests.gate.gate_results import FINGERPRINT, replica

NOT_FOUND = "sh: 1: python3: not found"
LEAKED = "pat-alice"
"""The comment token's value: a secret input of the gate, so every output must mask it."""


@pytest.fixture
def forge() -> Iterator[Forge]:
    with running_forge() as running:
        yield running


def python_missing(stderr: str = f"using token {LEAKED}\n{NOT_FOUND}") -> RunResults:
    """hello-world on an image without python3: every replica exits 127 and the check sees no file."""
    replicas = []
    for index in range(3):
        failed = replica(index, "F", scenario_id="default")
        failed.exit_code, failed.agent_stderr, failed.wall_ms = 127, stderr, 1500
        replicas.append(failed)
    scenario = aggregate_scenario("hello-world", "default", {}, replicas)
    return aggregate_run(
        spec_id="hello-world",
        experiment_id="exp-1",
        seed=1,
        scenarios=[scenario],
        fingerprint=dict(FINGERPRINT, spec_id="hello-world"),
        spec_file="hello.yaml",
        k=3,
    )


def test_the_evidence_is_the_exit_code_and_the_tail_of_stderr_else_stdout() -> None:
    (outcome,) = python_missing().scenarios
    assert (
        failure_evidence(outcome)
        == f"agent exited 127; last lines of stderr:\nusing token {LEAKED}\n{NOT_FOUND}"
    )
    chatty = outcome.model_copy(update={"agent_stderr": "\n".join(f"line {i}" for i in range(100))})
    assert failure_evidence(chatty).splitlines()[1:] == [
        f"line {i}" for i in range(100 - EVIDENCE_LINES, 100)
    ]
    long_line = outcome.model_copy(update={"agent_stderr": "x" * 5000 + "END"})
    tail = failure_evidence(long_line).splitlines()[1]
    assert len(tail) == EVIDENCE_CHARS and tail.startswith("…") and tail.endswith("xEND")
    quiet = outcome.model_copy(update={"agent_stderr": "  \n", "agent_output": "done\n", "exit_code": 0})
    assert failure_evidence(quiet) == "agent exited 0; last lines of stdout:\ndone"
    assert failure_evidence(quiet.model_copy(update={"agent_output": ""})) == "agent exited 0"
    assert failure_evidence(quiet.model_copy(update={"agent_output": "", "exit_code": None})) == ""


def test_ks_eval_run_prints_the_exit_code_and_stderr_of_each_failed_replica() -> None:
    console = Console(file=io.StringIO(), width=200)
    print_run(console, python_missing())
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert text.count("agent exited 127; last lines of stderr:") == 3
    assert text.count(NOT_FOUND) == 3


def test_junit_summary_and_comment_show_the_exit_code_and_stderr_masked(tmp_path: Path, forge: Forge) -> None:
    candidate = python_missing()
    verdict = decide([SpecRun("hello-world", candidate)], Policy())
    results = tmp_path / "earlier.json"
    write_report(results, GateReport(verdict=verdict, runs=[candidate]), Redactor({}))
    environ = github_env(tmp_path, GITHUB_API_URL=forge.base_url, KEYSTONE_COMMENT_TOKEN=LEAKED)
    result = gate(tmp_path, environ, "--from-results", str(results))
    assert result.code == 1

    case = ET.fromstring(result.junit).find("testsuite/testcase")
    assert case is not None and case.get("time") == "4.500000"
    failure = case.find("failure")
    assert failure is not None
    assert f"agent exited 127; last lines of stderr:\nusing token ***\n{NOT_FOUND}" in (failure.text or "")

    summary = (tmp_path / "keystone-summary.md").read_text()
    (comment,) = forge.github.values()
    for markdown in (summary, comment["body"]):
        block = f"    ```\n    using token ***\n    {NOT_FOUND}\n    ```\n"
        assert f"  - agent exited 127; last lines of stderr:\n{block}" in markdown
        assert LEAKED not in markdown
    assert LEAKED not in result.junit


def test_backticks_in_the_output_cannot_close_the_code_block(tmp_path: Path) -> None:
    candidate = python_missing(stderr="```\n## not a heading\n````")
    verdict = decide([SpecRun("hello-world", candidate)], Policy())
    results = tmp_path / "earlier.json"
    write_report(results, GateReport(verdict=verdict, runs=[candidate]), Redactor({}))
    gate(tmp_path, github_env(tmp_path), "--from-results", str(results), "--comment", "off")
    summary = (tmp_path / "keystone-summary.md").read_text()
    assert "    `````\n    ```\n    ## not a heading\n    ````\n    `````\n" in summary
