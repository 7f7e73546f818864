"""The gate's decision on known data: regressions, noise, inconclusive, thresholds, fingerprints."""

from __future__ import annotations

import itertools

import pytest

from polarity_keystone.analysis import MAX_REPLICAS_HINT, fisher_exact_one_sided, min_replicas_to_detect
from polarity_keystone.gate import Policy, SpecRun, decide
from tests.gate.gate_results import FINGERPRINT, run

BASE = run({"s": "P" * 10}, experiment_id="exp-base")


def gate(
    candidate: dict[str, str], baseline: dict[str, str] | None, policy: Policy | None = None, **kw: object
):
    base = run(baseline, experiment_id="exp-base") if baseline is not None else None
    return decide([SpecRun("spec", run(candidate, **kw), base, "file base.json")], policy or Policy())  # type: ignore[arg-type]


def test_a_significant_large_drop_is_a_regression_naming_the_invariant_with_intervals() -> None:
    verdict = gate({"s": "PP" + "F" * 8}, {"s": "P" * 10})
    assert (verdict.verdict, verdict.exit_code) == ("regressed", 1)
    scenario = verdict.scenarios()[0]
    assert scenario.outcome == "regressed"
    assert scenario.comparison is not None
    assert scenario.comparison.p_value == pytest.approx(fisher_exact_one_sided(10, 10, 2, 10))
    reason = scenario.reasons[0]
    assert "task_done 10/10 (100%, CI 72%-100%) -> 2/10 (20%, CI 6%-51%)" in reason
    assert "tidy_output" not in reason  # it did not drop
    assert scenario.replay == "ks replay spec.yaml --seed 1002"


def test_no_baseline_and_passing_replicas_pass() -> None:
    verdict = gate({"s": "PPPPP"}, None)
    assert (verdict.verdict, verdict.exit_code, verdict.suite) == ("passed", 0, None)


def test_a_flaky_agent_with_few_replicas_is_inconclusive_with_the_replicas_that_would_tell() -> None:
    verdict = gate({"s": "PPFF"}, {"s": "PPPP"})
    assert (verdict.verdict, verdict.exit_code) == ("inconclusive", 4)
    test = verdict.scenarios()[0].comparison
    assert test is not None
    assert test.replicas_needed == min_replicas_to_detect(1.0, 0.5, 0.05, 0.8, MAX_REPLICAS_HINT)
    assert f"about {test.replicas_needed} replicas would tell" in verdict.scenarios()[0].reasons[0]
    non_blocking = gate({"s": "PPFF"}, {"s": "PPPP"}, Policy(inconclusive_blocking=False))
    assert (non_blocking.verdict, non_blocking.exit_code) == ("inconclusive", 0)


def test_losing_one_replica_of_five_is_noise_not_inconclusive() -> None:
    verdict = gate({"s": "PPPPF"}, {"s": "PPPPP"})
    assert (verdict.verdict, verdict.exit_code) == ("passed", 0)


def test_a_significant_drop_smaller_than_the_minimum_effect_passes() -> None:
    verdict = gate({"s": "P" * 900 + "F" * 100}, {"s": "P" * 990 + "F" * 10})
    test = verdict.scenarios()[0].comparison
    assert test is not None and test.p_adjusted < 1e-6
    assert (verdict.verdict, verdict.exit_code) == ("passed", 0)
    assert gate(
        {"s": "P" * 900 + "F" * 100}, {"s": "P" * 990 + "F" * 10}, Policy(min_effect=0.05)
    ).verdict == ("regressed")


def test_thirty_unchanged_noisy_scenarios_do_not_block() -> None:
    """Every way 5 replicas can come out for both runs, one pattern per scenario: raw drops abound, but
    nothing is significant once corrected, and the suite as a whole did not drop."""
    patterns = ["".join(p) for p in itertools.product("PF", repeat=5) if p.count("F") <= 2]
    baseline = {f"s{i}": patterns[i % len(patterns)] for i in range(30)}
    candidate = {f"s{i}": patterns[(i * 7 + 3) % len(patterns)] for i in range(30)}
    verdict = gate(candidate, baseline)
    assert any(s.comparison and s.comparison.drop >= 0.2 for s in verdict.scenarios())
    assert (verdict.verdict, verdict.exit_code) == ("passed", 0)


def test_a_small_drop_everywhere_is_caught_by_the_suite_test_not_by_any_scenario() -> None:
    baseline = {f"s{i}": "PPPPP" for i in range(30)}
    candidate = {f"s{i}": "PPPFF" if i % 2 else "PPPPF" for i in range(30)}
    verdict = gate(candidate, baseline)
    assert all(s.outcome != "regressed" for s in verdict.scenarios())
    assert verdict.suite is not None and verdict.suite.drop == pytest.approx(0.3)
    assert (verdict.suite_outcome, verdict.verdict, verdict.exit_code) == ("regressed", "regressed", 1)


def test_benjamini_hochberg_flags_what_holm_leaves_inconclusive() -> None:
    """Three scenarios 8/8 -> 3/8 (p = 0.0128 each) among six, plus the suite test: Holm needs 6p <= 0.05,
    Benjamini-Hochberg 7p/4 <= 0.05. The other three pass half their replicas in both runs: unchanged,
    but margins that could have shown a drop, so they count in the family."""
    half = "PPPPFFFF"
    baseline = {**{f"s{i}": "P" * 8 for i in range(3)}, **{f"s{i}": half for i in range(3, 6)}}
    candidate = {**{f"s{i}": "PPPFFFFF" for i in range(3)}, **{f"s{i}": half for i in range(3, 6)}}
    holm = gate(candidate, baseline)
    bh = gate(candidate, baseline, Policy(correction="bh"))
    assert [s.outcome for s in holm.scenarios()][:3] == ["inconclusive"] * 3
    assert [s.outcome for s in bh.scenarios()][:3] == ["regressed"] * 3
    assert holm.verdict == bh.verdict == "regressed"  # the suite test catches it either way


def test_scenarios_that_could_not_show_a_drop_take_no_share_of_alpha() -> None:
    """The three drops above beside three scenarios that passed every replica in both runs: no outcome of
    those could be significant, so Holm corrects over the three drops and the suite (4p <= 0.05), and
    the drops are regressions, not the inconclusive they were among seven hypotheses."""
    baseline = {f"s{i}": "P" * 8 for i in range(6)}
    candidate = {**{f"s{i}": "PPPFFFFF" for i in range(3)}, **{f"s{i}": "P" * 8 for i in range(3, 6)}}
    holm = gate(candidate, baseline)
    assert [s.outcome for s in holm.scenarios()] == ["regressed"] * 3 + ["passed"] * 3
    first = holm.scenarios()[0].comparison
    assert first is not None and first.p_adjusted == pytest.approx(3 * first.p_value)
    unchanged = holm.scenarios()[3].comparison
    assert unchanged is not None and unchanged.p_adjusted == unchanged.p_value == 1.0


def test_forbidden_violations_and_newly_broken_gate_invariants_fail_thresholds() -> None:
    verdict = gate({"s": "PPPP"}, {"s": "PPPP"}, forbidden={"s": "file_writes_outside"})
    assert (verdict.verdict, verdict.exit_code) == ("threshold_failed", 1)
    assert "forbidden rule file_writes_outside violated in 1 of 4 replicas: wrote /etc/passwd" in (
        verdict.scenarios()[0].reasons
    )
    broken = gate({"s": "FFFF", "t": "PPPP"}, None)
    assert broken.verdict == "threshold_failed"
    assert broken.scenarios()[0].reasons == [
        "gate invariant task_done failed in every replica (0/4 (0%, CI 0%-49%))"
    ]
    off = gate({"s": "FFFF"}, None, Policy(fail_on=frozenset()))
    assert off.verdict == "passed"


def test_a_gate_invariant_that_also_failed_in_the_baseline_is_left_to_the_statistics() -> None:
    flaky_before = gate({"s": "FFFF", "t": "PPPP"}, {"s": "PFPF", "t": "PPPP"})
    assert all(not r.startswith("gate invariant") for r in flaky_before.scenarios()[0].reasons)
    assert flaky_before.verdict == "inconclusive"  # the suite dropped 25 points on 8 replicas


def test_spec_thresholds_pass_rate_and_wall_time() -> None:
    verdict = gate({"s": "PPPF"}, None, Policy(min_pass_rate=0.9, max_p95_wall_s=0.5))
    reasons = verdict.specs[0].reasons
    assert verdict.verdict == "threshold_failed"
    assert reasons[0].startswith("pass rate 3/4 (75%")
    assert reasons[1] == "p95 wall time 1.0s exceeds max-p95-wall 0.5s"
    no_cost = gate({"s": "PPPP"}, None, Policy(max_cost_per_run_usd=0.01))
    assert no_cost.verdict == "passed"
    assert "the run reported no cost, so max-cost-per-run-usd was not checked" in no_cost.specs[0].notes


def test_errors_are_never_green_but_a_regression_elsewhere_wins() -> None:
    errored = gate({"s": "PPPE"}, {"s": "PPPP"})
    assert (errored.verdict, errored.exit_code) == ("error", 3)
    assert errored.scenarios()[0].reasons == [
        "could not be evaluated (1 of 4 replicas errored): sandbox did not boot"
    ]
    both = gate({"s": "PPPE", "t": "F" * 10}, {"s": "PPPP", "t": "P" * 10})
    assert (both.verdict, both.exit_code) == ("regressed", 1)
    lost = decide([SpecRun("spec", None, problem="the server went away")], Policy())
    assert (lost.verdict, lost.exit_code, lost.specs[0].errors) == ("error", 3, ["the server went away"])


def test_a_baseline_of_another_spec_version_is_compared_unless_strict() -> None:
    other = dict(FINGERPRINT, spec_sha256="b" * 64)
    candidate = run({"s": "PPPPPFFFFF"})
    baseline = run({"s": "PPPPPPPPPP"}, fingerprint=other, experiment_id="exp-base")
    compared = decide([SpecRun("spec", candidate, baseline)], Policy())
    assert compared.verdict == "regressed" and compared.specs[0].changes is not None
    refused = decide([SpecRun("spec", candidate, baseline)], Policy(strict_baselines=True))
    assert (refused.verdict, refused.exit_code, refused.specs[0].refused) == ("error", 2, True)
    assert refused.specs[0].errors[0].startswith("refused to compare (strict-baselines): spec changed")
    allowed = decide(
        [SpecRun("spec", candidate, baseline)], Policy(strict_baselines=True, allow_fingerprint_mismatch=True)
    )
    assert allowed.verdict == "regressed"


def test_a_changed_agent_is_what_the_gate_compares() -> None:
    candidate = run({"s": "PPPP"}, fingerprint=dict(FINGERPRINT, agent_digest="sha256:2"))
    verdict = decide([SpecRun("spec", candidate, BASE)], Policy())
    assert verdict.verdict == "passed"
    assert verdict.specs[0].notes == ["changed since the baseline: agent_digest: sha256:1 -> sha256:2"]


def test_new_and_removed_scenarios_are_noted() -> None:
    verdict = gate({"new": "PPP"}, {"old": "PPP"})
    assert verdict.verdict == "passed"
    changes = verdict.specs[0].changes
    assert changes is not None and (changes.scenarios_added, changes.scenarios_removed) == (["new"], ["old"])
