"""The one regression decision on known counts, and the judged-replica rule behind every pass rate."""

from __future__ import annotations

import pytest

from polarity_keystone.analysis import (
    Counts,
    RegressionPolicy,
    decide_regressions,
    fisher_exact_one_sided,
    judged,
    min_replicas_to_detect,
    stratified_exact_one_sided,
)

POLICY = RegressionPolicy()
UNCHANGED = Counts(10, 10, 10, 10)
"""Unchanged, and no outcome of these margins could be significant: every replica of both runs passed."""
HALF = Counts(5, 10, 5, 10)
"""Unchanged, with margins that could have shown a drop."""


def test_an_errored_replica_is_neither_a_pass_nor_a_fail() -> None:
    counts = judged(["pass", "error", "fail", "pass", "error"])
    assert (counts.passed, counts.total) == (2, 3)
    assert counts.rate == pytest.approx(2 / 3)
    assert judged(["error"]).rate == 0.0


def test_nothing_to_compare_decides_nothing() -> None:
    decided = decide_regressions([], POLICY)
    assert decided.scenarios == [] and decided.suite is None and decided.suite_decision == "unchanged"


def test_a_lone_scenario_is_the_suite_and_may_be_inconclusive_above_alpha() -> None:
    """5/5 -> 2/5: p=0.083, not significant, but the data lean towards a drop."""
    decided = decide_regressions([Counts(5, 5, 2, 5)], POLICY)
    (result,) = decided.scenarios

    assert result.p_value == pytest.approx(21 / 252)
    assert result.p_adjusted == result.p_value
    assert result.decision == "inconclusive" and result.replicas_needed is not None
    assert decided.suite == decided.scenarios[0]


def test_among_several_a_scenario_is_inconclusive_only_when_significant_alone() -> None:
    leaning = Counts(5, 5, 2, 5)  # p=0.083
    significant_alone = Counts(10, 10, 6, 10)  # p=0.043

    decided = decide_regressions([leaning, significant_alone, HALF, HALF], POLICY)

    assert [r.decision for r in decided.scenarios] == ["unchanged", "inconclusive", "unchanged", "unchanged"]
    assert decided.scenarios[0].replicas_needed is None
    # Detecting 1.0 -> 0.6 at the strictest step of the correction: alpha / 4 hypotheses (not the leaning
    # one: 5/5 -> 2/5 is the most extreme outcome its margins allow, and p=0.083 cannot be significant).
    assert decided.scenarios[1].replicas_needed == min_replicas_to_detect(1.0, 0.4, 0.05 / 4, 0.8, 200)


def test_the_suite_is_one_more_hypothesis_of_the_family() -> None:
    """A 40-point drop in each of 8 scenarios of 5 replicas: no scenario shows it, the suite does."""
    counts = [Counts(5, 5, 3, 5)] * 4 + [Counts(4, 5, 2, 5)] * 4
    decided = decide_regressions(counts, POLICY)

    assert all(r.decision == "unchanged" for r in decided.scenarios)
    assert decided.suite is not None and decided.suite_decision == "regressed"
    assert decided.suite.p_value == pytest.approx(stratified_exact_one_sided(counts))
    assert decided.suite.counts == Counts(36, 40, 20, 40)
    assert decided.suite.drop == pytest.approx(0.4)  # the mean of the scenarios' drops
    # 5/5 -> 3/5 is the most extreme outcome of its margins (8 passes of 10) and p=0.22: no share of alpha.
    assert [r.p_adjusted == r.p_value for r in decided.scenarios[:4]] == [True] * 4
    raw = sorted([r.p_value for r in decided.scenarios[4:]] + [decided.suite.p_value])
    assert decided.suite.p_adjusted == pytest.approx(len(raw) * raw[0])  # Holm: the smallest of five


def test_only_hypotheses_that_could_be_significant_share_alpha() -> None:
    """Tarone's rule: a scenario whose margins allow no p-value at or below alpha takes no share of it.
    One drop 10/10 -> 4/10 (p=0.0054) beside 20 scenarios that passed every replica in both runs: alone
    in the family it is a regression; beside 20 that could show a drop (half their replicas passed), it
    is not (21 hypotheses and the suite)."""
    drop = Counts(10, 10, 4, 10)
    beside_sure = decide_regressions([drop] + [UNCHANGED] * 20, POLICY)
    beside_open = decide_regressions([drop] + [HALF] * 20, POLICY)

    assert beside_sure.scenarios[0].decision == "regressed"
    assert beside_sure.scenarios[0].p_adjusted == pytest.approx(2 * beside_sure.scenarios[0].p_value)
    assert all(r.p_adjusted == r.p_value == 1.0 for r in beside_sure.scenarios[1:])
    assert beside_open.scenarios[0].decision == "inconclusive"
    assert Counts(1, 1, 1, 1).most_extreme() == Counts(1, 1, 1, 1)
    assert Counts(5, 10, 7, 10).most_extreme() == Counts(10, 10, 2, 10)


def test_each_group_is_one_more_hypothesis_of_the_family() -> None:
    """Two Evals of 20 one-replica cases and a scenario of ten replicas: no case can show a drop (each is
    left out of the family), each Eval's cases together can. The Eval that lost 6 of 20 (p=0.016) is a
    regression among its own cases; beside nine more Evals that lost 6 of 20 too, corrected over ten
    groups and the suite, it is not."""
    lost = [Counts(1, 1, 0, 1)] * 6 + [Counts(1, 1, 1, 1)] * 14
    kept = [Counts(1, 1, 1, 1)] * 20
    scenario = Counts(5, 10, 5, 10)
    counts = [*lost, *kept, scenario]
    groups = [range(20), range(20, 40), [40], range(41)]

    decided = decide_regressions(counts, POLICY, groups=groups)

    eval_lost, eval_kept, one, everything = decided.groups
    assert eval_lost is not None and eval_lost.p_value == pytest.approx(2**-6)
    assert eval_lost.counts == Counts(20, 20, 14, 20) and eval_lost.drop == pytest.approx(0.3)
    assert eval_lost.decision == "regressed"
    assert eval_kept is not None and eval_kept.decision == "unchanged"
    assert one is None and everything == decided.suite  # a group of one is its scenario; of all, the suite
    ten = [[*lost]] * 10
    many = decide_regressions(
        [c for group in ten for c in group], POLICY, groups=[range(20 * i, 20 * i + 20) for i in range(10)]
    )
    # Not significant among ten (the data lean towards a drop: an Eval's own verdict names regressions only).
    assert [g.decision for g in many.groups if g is not None] == ["inconclusive"] * 10
    assert many.suite_decision == "regressed"  # 60 of 200 lost: the drop is plain in all of them together


def test_a_significant_drop_smaller_than_min_effect_is_not_a_regression() -> None:
    drifted = Counts(100, 100, 92, 100)
    assert fisher_exact_one_sided(*drifted) < 0.01
    assert decide_regressions([drifted], POLICY).scenarios[0].decision == "unchanged"
    assert (
        decide_regressions([drifted], RegressionPolicy(min_effect=0.05)).scenarios[0].decision == "regressed"
    )


def test_an_improvement_mirrors_a_regression() -> None:
    worse, better = Counts(10, 10, 1, 10), Counts(1, 10, 10, 10)
    for policy in (POLICY, RegressionPolicy(correction="bh", min_effect=0.0)):
        down = decide_regressions([worse, UNCHANGED], policy)
        up = decide_regressions([better, UNCHANGED], policy)
        assert [r.decision for r in down.scenarios] == ["regressed", "unchanged"]
        assert [r.decision for r in up.scenarios] == ["improved", "unchanged"]
        assert (down.suite_decision, up.suite_decision) == ("regressed", "improved")
        assert up.scenarios[0].p_value == 1.0  # the p-values reported are those of a drop


def test_bh_is_less_strict_than_holm() -> None:
    """Four scenarios at p=0.043 each: Holm multiplies each by four, BH by one (its rank is the last)."""
    counts = [Counts(10, 10, 6, 10)] * 4
    holm = decide_regressions(counts, RegressionPolicy(correction="holm"))
    bh = decide_regressions(counts, RegressionPolicy(correction="bh"))
    assert [r.decision for r in holm.scenarios] == ["inconclusive"] * 4
    assert [r.decision for r in bh.scenarios] == ["regressed"] * 4
    assert bh.scenarios[0].p_adjusted == pytest.approx(bh.scenarios[0].p_value)


@pytest.mark.parametrize(
    "options",
    [
        {"alpha": 0.0},
        {"alpha": 1.0},
        {"alpha": float("nan")},
        {"correction": "bonferroni"},
        {"min_effect": -0.1},
        {"min_effect": 1.1},
        {"min_effect": float("nan")},
    ],
)
def test_a_policy_out_of_range_is_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        RegressionPolicy(**options)  # type: ignore[arg-type]


def test_a_scenario_without_verdicts_in_a_run_cannot_be_decided() -> None:
    assert not Counts(0, 0, 3, 3).comparable
    with pytest.raises(ValueError, match="judged replicas in both runs"):
        decide_regressions([Counts(3, 3, 0, 0)], POLICY)
