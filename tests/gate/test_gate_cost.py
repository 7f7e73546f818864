"""max-cost-per-run-usd per scenario, from the replicas' costs: a scenario over the limit is a threshold
failure naming itself, its mean cost and the limit (in the summary and the JUnit report); an unknown cost
is "not checked", saying why; the summary shows each scenario's mean cost against the baseline's."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from polarity_keystone.engine import aggregate_run, aggregate_scenario
from polarity_keystone.gate import GateReport, Policy, SpecRun, decide
from polarity_keystone.gate._junit import render_junit
from polarity_keystone.gate._summary import render
from polarity_keystone.results import CostInfo, RunResults
from tests.gate.gate_results import FINGERPRINT, replica

LIMIT = Policy(max_cost_per_run_usd=0.01)


def _cost(usd: float | None) -> CostInfo:
    unpriced = ["in-house-7b"] if usd is None else []
    return CostInfo(
        input_tokens=1000, output_tokens=100, estimated_usd=usd, llm_calls=1, unpriced_models=unpriced
    )


def _run(costs: dict[str, list[float | None]], experiment_id: str) -> RunResults:
    scenarios = []
    for scenario_id, usd in costs.items():
        replicas = [replica(i, "P", scenario_id=scenario_id) for i in range(len(usd))]
        for result, cost in zip(replicas, usd, strict=True):
            result.cost = _cost(cost)
        scenarios.append(aggregate_scenario("spec", scenario_id, {}, replicas))
    return aggregate_run(
        spec_id="spec",
        experiment_id=experiment_id,
        seed=1,
        scenarios=scenarios,
        fingerprint=FINGERPRINT,
        spec_file="spec.yaml",
        k=4,
    )


def test_a_scenario_over_the_limit_fails_naming_itself_its_cost_and_the_limit() -> None:
    baseline = _run({"s": [0.002] * 4, "t": [0.001] * 4}, "exp-base")
    candidate = _run({"s": [0.012, 0.018, 0.015, 0.015], "t": [0.001] * 4}, "exp-candidate")

    verdict = decide([SpecRun("spec", candidate, baseline, "file base.json")], LIMIT)

    assert (verdict.verdict, verdict.exit_code) == ("threshold_failed", 1)
    s, t = verdict.scenarios()
    assert s.outcome == "threshold_failed"
    assert s.reasons == ["mean cost per run of s $0.0150 exceeds max-cost-per-run-usd $0.0100"]
    assert (t.outcome, t.reasons) == ("passed", [])
    assert verdict.specs[0].notes == []
    junit = ET.fromstring(render_junit(verdict))
    failed = {case.get("name"): case.find("failure") for case in junit.iter("testcase")}
    assert failed["t"] is None
    assert failed["s"] is not None
    assert failed["s"].get("message") == s.reasons[0]
    summary = render(GateReport(verdict=verdict))
    assert "mean cost per run of s $0.0150 exceeds max-cost-per-run-usd $0.0100" in summary
    assert "#### Mean cost per run (baseline → candidate)" in summary
    assert "- spec / s: $0.0020 → $0.0150 (+650.0%)" in summary
    assert "- spec / t: $0.0010 → $0.0010 (+0.0%)" in summary


def test_at_the_limit_passes_and_without_a_baseline_the_summary_shows_the_cost_alone() -> None:
    verdict = decide([SpecRun("spec", _run({"s": [0.01] * 4}, "exp-candidate"), None, "")], LIMIT)

    assert verdict.scenarios()[0].outcome == "passed"
    assert "- spec / s: $0.0100\n" in render(GateReport(verdict=verdict))


def test_an_unknown_cost_is_not_checked_and_the_note_says_why() -> None:
    unpriced = decide([SpecRun("spec", _run({"s": [None] * 4}, "exp-candidate"), None, "")], LIMIT)

    assert unpriced.verdict == "passed"
    assert unpriced.specs[0].notes == [
        "the models called have no price (in-house-7b), so max-cost-per-run-usd was not checked; the "
        "server's operator prices them with ks serve --pricing"
    ]
    assert "Mean cost per run" not in render(GateReport(verdict=unpriced))

    partly = decide([SpecRun("spec", _run({"s": [0.02] * 4, "t": [None] * 4}, "exp-c"), None, "")], LIMIT)

    assert [s.outcome for s in partly.scenarios()] == ["threshold_failed", "passed"]
    assert "was not checked for t;" in partly.specs[0].notes[0]


def test_results_written_before_costs_were_known_still_load_and_gate() -> None:
    document = _run({"s": [0.001] * 4}, "exp-old").model_dump(mode="json")
    for scenario in document["scenarios"]:
        del scenario["mean_cost_per_run_usd"], scenario["cost"]
        for result in scenario["replicas"]:
            result["cost"] = None
    for key in ("runs_priced", "unpriced_models"):
        del document["metrics"][key]
    old = RunResults.model_validate(document)

    verdict = decide([SpecRun("spec", old, None, "")], LIMIT)

    assert verdict.verdict == "passed"
    assert verdict.specs[0].notes == ["the run reported no cost, so max-cost-per-run-usd was not checked"]
