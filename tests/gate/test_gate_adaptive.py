"""The gate's adaptive replicas without Docker: which scenarios a look grows, when the run stops, and a
design cut short (the server would not run more) reported as such."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from polarity_keystone.gate import Policy, SpecRun, decide_adaptively
from tests.gate.gate_results import run

POLICY = Policy(max_replicas=16)
BASE = {"steady": "P" * 16, "leaning": "P" * 16}


def test_after_the_first_look_only_the_scenarios_leaning_towards_a_drop_grow() -> None:
    asked: list[tuple[list[str], int]] = []

    def grow(runs: list[SpecRun], wanted: Mapping[str, list[str]], target: int) -> None:
        asked.append((wanted["spec"], target))
        candidate = runs[0].candidate
        assert candidate is not None
        named = wanted["spec"]
        grown = {
            s.scenario_id: "P" * (target if s.scenario_id in named else s.replicas_total)
            for s in candidate.scenarios
        }
        grown["leaning"] = "F" + "P" * (target - 1)  # one failure, then passes: it never gets clear
        runs[0] = replace(runs[0], candidate=run(grown))

    runs = [SpecRun("spec", run({"steady": "PPPP", "leaning": "FPPP"}), run(BASE, experiment_id="exp-b"))]
    runs, verdict = decide_adaptively(runs, POLICY, grow)

    # Every undecided scenario gets a second look; 8/8 is level with 16/16 and stops there, 7/8 still
    # leans (p = 0.33 <= 0.6); 15/16 at the last look is not significant, and the last look leaves
    # nothing inconclusive
    assert asked == [(["steady", "leaning"], 8), (["leaning"], 16)]
    assert verdict.exit_code == 0 and verdict.scenarios()[1].outcome == "passed"
    assert runs[0].candidate is not None and runs[0].candidate.scenarios[1].replicas_total == 16


def test_a_design_cut_short_reports_the_leaning_drop_inconclusive_and_why() -> None:
    def grow(runs: list[SpecRun], wanted: Mapping[str, list[str]], target: int) -> str:
        return "the timeout (30s) ran out"

    runs = [SpecRun("spec", run({"steady": "PPPP", "leaning": "FFPP"}), run(BASE, experiment_id="exp-b"))]
    runs, verdict = decide_adaptively(runs, POLICY, grow)

    assert (verdict.verdict, verdict.exit_code) == ("inconclusive", 4)
    assert "adaptive replicas stopped at 4 per scenario: the timeout (30s) ran out" in verdict.specs[0].notes
    assert "replicas would tell" in verdict.scenarios()[1].reasons[0]


def test_a_clear_regression_or_a_broken_rule_ends_the_run_at_once() -> None:
    def grow(runs: list[SpecRun], wanted: Mapping[str, list[str]], target: int) -> None:
        raise AssertionError(f"asked for {target} replicas of {wanted}")

    broken = [SpecRun("spec", run({"steady": "PPPP", "leaning": "FFFF"}), run(BASE, experiment_id="exp-b"))]
    assert decide_adaptively(broken, POLICY, grow)[1].verdict == "regressed"  # 0/4 vs 16/16: at look one
    no_baseline = [SpecRun("spec", run({"steady": "PPPP", "leaning": "FPPP"}))]
    assert decide_adaptively(no_baseline, POLICY, grow)[1].verdict == "passed"
