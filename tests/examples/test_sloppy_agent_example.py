"""The sloppy-agent example as a user runs it, `ks eval run --json`: one run, shared by the assertions on
the exit code and report, on the forbidden write that fails it, and on its results surviving JSON."""

from __future__ import annotations

import json
import subprocess

import pytest

from polarity_keystone.results import RunResults
from tests.examples.shipped_examples import EXAMPLES
from tests.ks_command import run_ks

pytestmark = pytest.mark.docker

SLOPPY = EXAMPLES / "sloppy-agent" / "sloppy.yaml"


@pytest.fixture(scope="module")
def sloppy() -> subprocess.CompletedProcess[str]:
    return run_ks(["eval", "run", str(SLOPPY), "--json", "--seed", "3"])


@pytest.fixture(scope="module")
def results(sloppy: subprocess.CompletedProcess[str]) -> RunResults:
    return RunResults.model_validate_json(sloppy.stdout)


def test_ks_exits_1_and_names_the_rule(sloppy: subprocess.CompletedProcess[str], results: RunResults) -> None:
    assert sloppy.returncode == 1, sloppy.stderr
    assert "file_writes_outside" in sloppy.stderr
    assert results.failed == 1
    assert results.metrics.side_effect_violations == 1


def test_sloppy_agent_fails_on_its_forbidden_write_and_scores_zero(results: RunResults) -> None:
    (scenario,) = results.scenarios
    assert scenario.status == "fail"
    assert (results.passed, results.failed) == (0, 1)
    # The invariant passed, yet the forbidden rule fails the run and forces the composite to 0.
    assert [(i.name, i.passed) for i in scenario.invariants] == [("report_written", True)]
    assert scenario.composite_score == 0.0
    (rule,) = scenario.forbidden_checks
    assert rule.rule == "file_writes_outside"
    assert rule.violated
    assert rule.evidence["paths"] == ["scratch.txt"]
    (replica,) = scenario.replicas
    assert any("file_writes_outside" in reason for reason in replica.reasons)
    assert replica.reproducer is not None


def test_results_round_trip_through_json(results: RunResults) -> None:
    again = RunResults.model_validate_json(results.model_dump_json())

    assert again == results
    assert json.loads(results.model_dump_json())["scenarios"][0]["forbidden_checks"][0]["violated"] is True
