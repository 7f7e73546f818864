"""Adaptive replicas: the looks of a design, the alpha each look may spend, and what a look decides."""

from __future__ import annotations

import random

import pytest

from polarity_keystone.analysis import (
    Counts,
    Look,
    RegressionPolicy,
    SequentialDesign,
    alpha_spent,
    decide_regressions,
)

POLICY = RegressionPolicy()


def test_looks_double_from_the_first_count_up_to_the_most() -> None:
    assert SequentialDesign.doubling(5, 80).looks == (5, 10, 20, 40, 80)
    assert SequentialDesign.doubling(5, 12).looks == (5, 10, 12)
    assert not SequentialDesign.doubling(5, 5).adaptive
    assert SequentialDesign.doubling(5, 3).looks == (5,)
    with pytest.raises(ValueError, match="increasing"):
        SequentialDesign((10, 5))


def test_the_looks_spend_alpha_once_mostly_at_the_end() -> None:
    design = SequentialDesign.doubling(5, 80)
    shares = [design.look(i, 0.05).alpha for i in range(len(design.looks))]
    assert sum(shares) == pytest.approx(0.05)
    assert shares[0] < 2e-5 and shares[-1] > 0.04
    assert [design.look(i, 0.05).kind for i in range(5)] == ["interim"] * 4 + ["final"]
    assert design.look(2, 0.05, cut_short=True) == Look(alpha=shares[2])
    assert design.final(2, 0.05) == Look(alpha=shares[2], kind="final")
    assert SequentialDesign.doubling(5, 5).look(0, 0.05) == Look(alpha=0.05)
    spent = [alpha_spent(t / 10, 0.05) for t in range(11)]
    assert spent[0] == 0.0 and spent[-1] == 0.05 and spent == sorted(spent)


def test_an_interim_look_asks_for_more_replicas_where_the_data_lean_towards_a_drop() -> None:
    leaning, level = Counts(72, 80, 6, 10), Counts(72, 80, 10, 10)
    second = SequentialDesign.doubling(5, 80).look(1, 0.05)
    decided = decide_regressions([leaning, level], POLICY, second)
    assert [s.decision for s in decided.scenarios] == ["inconclusive", "unchanged"]
    assert decided.scenarios[0].replicas_needed is None  # the design says how many come next
    first = SequentialDesign.doubling(5, 80).look(0, 0.05)
    assert decide_regressions([Counts(72, 80, 5, 5)], POLICY, first).scenarios[0].decision == "inconclusive"


def test_the_final_look_never_leaves_a_drop_inconclusive() -> None:
    drop = [Counts(72, 80, 31, 40)]  # 90% -> 78%: a drop, not significant
    assert decide_regressions(drop, POLICY).scenarios[0].decision == "inconclusive"
    assert (
        decide_regressions(drop, POLICY, Look(alpha=0.044, kind="final")).scenarios[0].decision == "unchanged"
    )


def test_a_broken_scenario_is_caught_at_the_first_look() -> None:
    first = SequentialDesign.doubling(5, 80).look(0, 0.05)
    decided = decide_regressions([Counts(80, 80, 0, 5), *[Counts(80, 80, 5, 5)] * 29], POLICY, first)
    assert decided.scenarios[0].decision == "regressed"


def _false_regressions(rate: float, design: SequentialDesign, spend: bool, trials: int) -> float:
    """How often an unchanged single scenario is called regressed at some look (the gate's loop:
    stop at a regression, or when no look asks for more)."""
    rng = random.Random(7)
    base_n = design.most
    regressed = 0
    for _ in range(trials):
        base = sum(rng.random() < rate for _ in range(base_n))
        passed = total = 0
        for index, planned in enumerate(design.looks):
            passed += sum(rng.random() < rate for _ in range(planned - total))
            total = planned
            look = design.look(index, POLICY.alpha) if spend else Look(POLICY.alpha, "interim", 1.0)
            decision = decide_regressions([Counts(base, base_n, passed, total)], POLICY, look).scenarios[0]
            if decision.decision == "regressed":
                regressed += 1
                break
            if decision.decision != "inconclusive":
                break
    return regressed / trials


def test_peeking_at_every_look_keeps_false_regressions_within_alpha() -> None:
    design = SequentialDesign.doubling(5, 40)
    spent = _false_regressions(0.5, design, spend=True, trials=1500)
    naive = _false_regressions(0.5, design, spend=False, trials=1500)
    assert spent <= POLICY.alpha
    assert naive > POLICY.alpha  # testing each look at full alpha would break it: the spending is needed
