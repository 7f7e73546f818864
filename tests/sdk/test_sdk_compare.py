"""`ks.experiments.compare()` and `ks gate` answer the regression question the same way: one pair of stored
experiments, compared through the SDK and decided by the gate as it fetches them."""

from __future__ import annotations

import pytest

from polarity_keystone import BadRequestError
from polarity_keystone.gate import GateVerdict, Policy, ScenarioVerdict, SpecRun, decide
from polarity_keystone.sdk import Comparison
from tests.gate.gate_results import run
from tests.sdk.sdk_servers import KeystoneServer
from tests.server.stored_results import store_finished

BASELINE = {
    "steady": "P" * 10,
    "drifted": "P" * 100,
    "broken": "P" * 10,
    "shaky": "P" * 10,
    "fixed": "F" * 10,
    "infra": "P" * 5,
}
CANDIDATE = {
    "steady": "P" * 10,
    "drifted": "P" * 92 + "F" * 8,  # significant, but a smaller drop than min-effect 0.1
    "broken": "F" * 10,
    "shaky": "P" * 6 + "F" * 4,  # significant alone (p=0.043), not among all scenarios
    "fixed": "P" * 10,
    "infra": "PPPPE",  # could not be evaluated: no decision
}


def _gate_decision(scenario: ScenarioVerdict) -> str:
    """The gate's regression decision of a scenario (no threshold breaks in these experiments)."""
    if scenario.comparison is None:
        return "untested"
    return scenario.outcome if scenario.outcome in ("regressed", "inconclusive") else "passed"


def _compare_decision(decision: str) -> str:
    """The gate passes an improvement as it passes no change."""
    return "passed" if decision in ("improved", "unchanged") else decision


def _compare_and_gate(server: KeystoneServer) -> tuple[Comparison, GateVerdict]:
    store_finished(server.store, run(BASELINE, experiment_id="exp-base"))
    store_finished(server.store, run(CANDIDATE, experiment_id="exp-cand"))
    ks = server.client()
    comparison = ks.experiments.compare("exp-base", "exp-cand")
    baseline, candidate = ks.experiments.get("exp-base"), ks.experiments.get("exp-cand")
    verdict = decide([SpecRun(candidate.spec_id, candidate, baseline, "experiment exp-base")], Policy())
    return comparison, verdict


def test_compare_and_the_gate_make_the_same_decision_on_the_same_experiments(server: KeystoneServer) -> None:
    comparison, verdict = _compare_and_gate(server)
    gate = {s.scenario_id: s for s in verdict.scenarios()}
    rows = {row.scenario_id: row for row in comparison.scenarios}

    # The old compare (min-effect 0.05, no suite test in the family) called `drifted` a regression.
    assert {sid: row.regressed for sid, row in rows.items()} == {
        sid: s.outcome == "regressed" for sid, s in gate.items()
    }
    assert {sid: _compare_decision(row.decision) for sid, row in rows.items()} == {
        sid: _gate_decision(s) for sid, s in gate.items()
    }
    assert {sid: row.decision for sid, row in rows.items()} == {
        "steady": "unchanged",
        "drifted": "unchanged",
        "broken": "regressed",
        "shaky": "inconclusive",
        "fixed": "improved",
        "infra": "untested",
    }
    for sid, row in rows.items():
        test = gate[sid].comparison
        assert (row.p_value, row.p_adjusted) == ((test.p_value, test.p_adjusted) if test else (None, None))
    shaky = gate["shaky"].comparison
    assert shaky is not None and rows["shaky"].replicas_needed == shaky.replicas_needed == 19
    assert comparison.regressed is (verdict.verdict == "regressed") is True
    assert comparison.suite is not None and verdict.suite is not None
    assert comparison.suite.decision == "unchanged" and verdict.suite_outcome == "passed"
    assert (comparison.suite.p_value, comparison.suite.p_adjusted) == (
        verdict.suite.p_value,
        verdict.suite.p_adjusted,
    )
    policy = verdict.policy
    assert comparison.policy is not None
    assert comparison.policy.model_dump() == {k: policy[k] for k in ("alpha", "correction", "min_effect")}


def test_compare_takes_the_gates_parameters(server: KeystoneServer) -> None:
    """A looser min-effect makes the 8-point drop a regression; a stricter alpha keeps it one; BH reads
    `shaky` as significant among the others, as the gate with the same inputs does."""
    _compare_and_gate(server)
    ks = server.client()

    loose = ks.experiments.compare("exp-base", "exp-cand", min_effect=0.05)
    bh = ks.experiments.compare("exp-base", "exp-cand", correction="bh", alpha=0.1)

    assert loose.policy is not None and loose.policy.min_effect == 0.05
    assert [r.decision for r in loose.scenarios if r.scenario_id == "drifted"] == ["regressed"]
    assert bh.policy is not None and (bh.policy.alpha, bh.policy.correction) == (0.1, "bh")
    baseline, candidate = ks.experiments.get("exp-base"), ks.experiments.get("exp-cand")
    gate = decide([SpecRun("spec", candidate, baseline)], Policy(alpha=0.1, correction="bh"))
    assert {r.scenario_id: r.regressed for r in bh.scenarios} == {
        s.scenario_id: s.outcome == "regressed" for s in gate.scenarios()
    }
    assert [r.decision for r in bh.scenarios if r.scenario_id == "shaky"] == ["regressed"]


def test_a_bad_parameter_is_a_bad_request(server: KeystoneServer) -> None:
    """The server validates (its tests cover every bound); the SDK passes the 400 on as it is."""
    _compare_and_gate(server)

    with pytest.raises(BadRequestError) as caught:
        server.client().experiments.compare("exp-base", "exp-cand", alpha=0.6)

    assert (caught.value.status_code, caught.value.error) == (400, "invalid_request")
    assert caught.value.message.startswith("alpha:") and caught.value.request_id
