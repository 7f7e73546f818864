"""Statistics over replicas: known values (cross-checked with scipy/numpy when written, neither is
imported here) and the properties a user relies on when reading pass rates and regressions."""

from __future__ import annotations

import math
import random

import pytest

from polarity_keystone.analysis import (
    benjamini_hochberg,
    fisher_exact_one_sided,
    holm_adjust,
    min_replicas_to_detect,
    pass_hat_k,
    percentile,
    scenario_status,
    wilson_interval,
)


def _binom_pmf(k: int, n: int, p: float) -> float:
    return math.comb(n, k) * p**k * (1 - p) ** (n - k)


# --- wilson_interval ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "n", "expected"),
    [
        (7, 10, (0.396778, 0.892209)),
        (0, 10, (0.0, 0.277533)),
        (10, 10, (0.722467, 1.0)),
        (1, 1, (0.206549, 1.0)),
        (50, 100, (0.403832, 0.596168)),
    ],
)
def test_wilson_known_values(successes: int, n: int, expected: tuple[float, float]) -> None:
    lower, upper = wilson_interval(successes, n)
    assert lower == pytest.approx(expected[0], abs=1e-6)
    assert upper == pytest.approx(expected[1], abs=1e-6)


def test_wilson_edges_are_exact() -> None:
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_confidence_level_widens_the_interval() -> None:
    narrow = wilson_interval(7, 10, confidence=0.8)
    wide = wilson_interval(7, 10, confidence=0.99)
    assert wide[0] < narrow[0] and narrow[1] < wide[1]


def test_wilson_properties() -> None:
    rng = random.Random(1)
    for _ in range(500):
        n = rng.randint(1, 200)
        successes = rng.randint(0, n)
        lower, upper = wilson_interval(successes, n)
        assert 0.0 <= lower < upper <= 1.0
        assert lower <= successes / n <= upper
        # The same rate with four times the replicas gives a narrower interval.
        lower4, upper4 = wilson_interval(4 * successes, 4 * n)
        assert upper4 - lower4 < upper - lower
        # Symmetric in successes and failures.
        flipped = wilson_interval(n - successes, n)
        assert flipped[0] == pytest.approx(1 - upper, abs=1e-12)
        assert flipped[1] == pytest.approx(1 - lower, abs=1e-12)


@pytest.mark.parametrize(
    ("successes", "n", "confidence"), [(-1, 5, 0.95), (6, 5, 0.95), (1, 5, 1.0), (1, 5, 0.0)]
)
def test_wilson_rejects_bad_input(successes: int, n: int, confidence: float) -> None:
    with pytest.raises(ValueError):
        wilson_interval(successes, n, confidence)


# --- pass_hat_k ---------------------------------------------------------------------------------


def test_pass_hat_k_known_values() -> None:
    assert pass_hat_k(7, 10, 3) == pytest.approx(35 / 120)
    assert pass_hat_k(7, 10, 1) == pytest.approx(0.7)
    assert pass_hat_k(10, 10, 10) == 1.0
    assert pass_hat_k(9, 10, 10) == 0.0  # no 10-subset of 10 replicas passes entirely
    assert pass_hat_k(2, 5, 3) == 0.0  # fewer passes than k


def test_pass_hat_k_beyond_observed_replicas() -> None:
    assert pass_hat_k(5, 5, 10) == 1.0
    assert pass_hat_k(4, 5, 10) == pytest.approx(0.8**10)
    assert pass_hat_k(0, 5, 10) == 0.0


def test_pass_hat_k_no_evidence_is_not_green() -> None:
    assert pass_hat_k(0, 0, 1) == 0.0
    assert pass_hat_k(0, 0, 5) == 0.0


def test_pass_hat_k_is_unbiased_for_p_to_the_k() -> None:
    # E[C(X, k) / C(n, k)] over X ~ Binomial(n, p) is exactly p**k, unlike the plug-in (X/n)**k.
    for n, k, p in [(10, 3, 0.7), (5, 5, 0.9), (8, 2, 0.35)]:
        expected = sum(_binom_pmf(x, n, p) * pass_hat_k(x, n, k) for x in range(n + 1))
        plug_in = sum(_binom_pmf(x, n, p) * (x / n) ** k for x in range(n + 1))
        assert expected == pytest.approx(p**k, rel=1e-12)
        assert plug_in > p**k  # the plug-in estimate overstates reliability


def test_pass_hat_k_is_monotone() -> None:
    for n in range(1, 12):
        for k in range(1, n + 1):
            values = [pass_hat_k(c, n, k) for c in range(n + 1)]
            assert values == sorted(values)
            assert all(0.0 <= v <= 1.0 for v in values)
            assert pass_hat_k(n - 1, n, k) >= pass_hat_k(n - 1, n, min(k + 1, n))


@pytest.mark.parametrize(("successes", "n", "k"), [(1, 5, 0), (6, 5, 1), (-1, 5, 1)])
def test_pass_hat_k_rejects_bad_input(successes: int, n: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_hat_k(successes, n, k)


# --- percentile ---------------------------------------------------------------------------------


def test_percentile_matches_linear_interpolation() -> None:
    assert percentile(range(1, 11), 95) == pytest.approx(9.55)
    assert percentile([120, 5, 30, 7, 900, 44], 95) == pytest.approx(705.0)  # unsorted input
    assert percentile([1, 2, 3, 4], 50) == pytest.approx(2.5)
    assert percentile([3.0], 50) == 3.0
    assert percentile([4, 1, 9], 0) == 1.0
    assert percentile([4, 1, 9], 100) == 9.0


def test_percentile_of_nothing_is_zero() -> None:
    assert percentile([], 95) == 0.0


def test_percentile_is_monotone_and_bounded() -> None:
    rng = random.Random(2)
    for _ in range(100):
        values = [rng.uniform(0, 1000) for _ in range(rng.randint(1, 30))]
        results = [percentile(values, q) for q in range(0, 101, 5)]
        assert results == sorted(results)
        assert min(values) <= results[0] and results[-1] <= max(values)


@pytest.mark.parametrize("q", [-1, 101, math.nan])
def test_percentile_rejects_bad_q(q: float) -> None:
    with pytest.raises(ValueError):
        percentile([1, 2], q)


# --- scenario_status ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["pass"], "pass"),
        (["pass", "pass", "pass"], "pass"),
        (["fail", "fail"], "fail"),
        (["pass", "fail", "pass"], "flaky"),
        (["fail", "pass"], "flaky"),
        (["pass", "pass", "error"], "error"),  # never green when something could not be evaluated
        (["fail", "error"], "error"),
        (["error"], "error"),
        ([], "error"),
    ],
)
def test_scenario_status_rules(statuses: list[str], expected: str) -> None:
    assert scenario_status(statuses) == expected


def test_scenario_status_rejects_unknown_status() -> None:
    with pytest.raises(ValueError, match="flaky"):
        scenario_status(["pass", "flaky"])


# --- fisher_exact_one_sided ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "cand", "expected"),
    [
        ((10, 10), (3, 10), 0.0015479876),
        ((5, 10), (5, 10), 0.6718591007),
        ((9, 10), (5, 10), 0.0704334365),
        ((20, 20), (15, 20), 0.0235620236),
        ((3, 10), (10, 10), 1.0),
        ((10, 10), (0, 10), 1 / math.comb(20, 10)),
        ((45, 50), (30, 40), 0.0535823688),
    ],
)
def test_fisher_known_values(base: tuple[int, int], cand: tuple[int, int], expected: float) -> None:
    assert fisher_exact_one_sided(base[0], base[1], cand[0], cand[1]) == pytest.approx(expected, rel=1e-7)


def test_fisher_empty_arm_is_no_evidence() -> None:
    assert fisher_exact_one_sided(0, 0, 0, 10) == 1.0
    assert fisher_exact_one_sided(10, 10, 0, 0) == 1.0


def test_fisher_monotone_and_consistent() -> None:
    rng = random.Random(3)
    for _ in range(200):
        base_n, cand_n = rng.randint(1, 25), rng.randint(1, 25)
        base_pass, cand_pass = rng.randint(0, base_n), rng.randint(0, cand_n)
        p = fisher_exact_one_sided(base_pass, base_n, cand_pass, cand_n)
        assert 0.0 < p <= 1.0
        if cand_pass < cand_n:  # more candidate passes: weaker evidence of a drop
            assert fisher_exact_one_sided(base_pass, base_n, cand_pass + 1, cand_n) >= p
        if base_pass < base_n:  # better baseline: stronger evidence of a drop
            assert fisher_exact_one_sided(base_pass + 1, base_n, cand_pass, cand_n) <= p
        # "candidate passes less" is "baseline fails less": relabelling gives the same test.
        relabelled = fisher_exact_one_sided(cand_n - cand_pass, cand_n, base_n - base_pass, base_n)
        assert relabelled == pytest.approx(p, rel=1e-12)


@pytest.mark.parametrize("rate", [0.3, 0.5, 0.9, 1.0])
def test_fisher_false_alarm_rate_is_at_most_alpha(rate: float) -> None:
    # With no real change, the chance of calling a regression at alpha = 0.05 is at most 5%.
    n, alpha = 12, 0.05
    false_alarms = sum(
        _binom_pmf(b, n, rate) * _binom_pmf(c, n, rate)
        for b in range(n + 1)
        for c in range(n + 1)
        if fisher_exact_one_sided(b, n, c, n) <= alpha
    )
    assert false_alarms <= alpha


def test_fisher_rejects_bad_counts() -> None:
    with pytest.raises(ValueError):
        fisher_exact_one_sided(11, 10, 3, 10)
    with pytest.raises(ValueError):
        fisher_exact_one_sided(5, 10, -1, 10)


# --- multiple comparisons -----------------------------------------------------------------------


def test_holm_hand_computed() -> None:
    # Sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06.
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([0.5, 0.8, 0.9]) == pytest.approx([1.0, 1.0, 1.0])
    assert holm_adjust([0.02]) == pytest.approx([0.02])
    assert holm_adjust([]) == []


def test_benjamini_hochberg_hand_computed() -> None:
    # Sorted: 0.005*4/1 = 0.02, 0.01*4/2 = 0.02, 0.03*4/3 = 0.04, 0.04*4/4 = 0.04.
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # 0.9*3/3 = 0.9; 0.8*3/2 = 1.2 and 0.5*3/1 = 1.5 take the running minimum 0.9.
    assert benjamini_hochberg([0.5, 0.8, 0.9]) == pytest.approx([0.9, 0.9, 0.9])
    assert benjamini_hochberg([0.02]) == pytest.approx([0.02])
    assert benjamini_hochberg([]) == []


def test_adjustments_properties() -> None:
    rng = random.Random(4)
    for _ in range(200):
        raw = [rng.choice([rng.random(), rng.random() ** 4, 1.0, 0.0]) for _ in range(rng.randint(1, 15))]
        holm, bh = holm_adjust(raw), benjamini_hochberg(raw)
        order = sorted(range(len(raw)), key=lambda i: raw[i])
        for adjusted in (holm, bh):
            assert len(adjusted) == len(raw)
            assert all(p <= a <= 1.0 for p, a in zip(raw, adjusted, strict=True))
            ranked = [adjusted[i] for i in order]
            assert ranked == sorted(ranked)  # monotone in the raw p-values
        assert all(b <= h + 1e-15 for b, h in zip(bh, holm, strict=True))  # BH is never stricter


def test_adjustments_reject_bad_p_values() -> None:
    for fn in (holm_adjust, benjamini_hochberg):
        with pytest.raises(ValueError):
            fn([0.1, 1.5])
        with pytest.raises(ValueError):
            fn([math.nan])


# --- min_replicas_to_detect ---------------------------------------------------------------------


def _exact_power(n: int, base_rate: float, cand_rate: float, alpha: float) -> float:
    return sum(
        _binom_pmf(b, n, base_rate) * _binom_pmf(c, n, cand_rate)
        for b in range(n + 1)
        for c in range(n + 1)
        if fisher_exact_one_sided(b, n, c, n) <= alpha
    )


@pytest.mark.parametrize(("base_rate", "drop"), [(0.9, 0.5), (1.0, 0.3), (0.8, 0.6)])
def test_min_replicas_is_the_first_n_with_enough_power(base_rate: float, drop: float) -> None:
    n = min_replicas_to_detect(base_rate, drop)
    cand_rate = base_rate - drop
    assert _exact_power(n, base_rate, cand_rate, 0.05) >= 0.8
    assert all(_exact_power(m, base_rate, cand_rate, 0.05) < 0.8 for m in range(1, n))


def test_min_replicas_known_values() -> None:
    assert min_replicas_to_detect(0.9, 0.5) == 13
    assert min_replicas_to_detect(1.0, 0.3) == 21
    assert min_replicas_to_detect(0.9, 0.2) == 56


def test_min_replicas_monotone_in_drop() -> None:
    for base_rate in (1.0, 0.9, 0.6):
        drops = [d for d in (0.15, 0.2, 0.3, 0.4, 0.5, 0.6) if d <= base_rate]
        needed = [min_replicas_to_detect(base_rate, d) for d in drops]
        assert needed == sorted(needed, reverse=True)
        assert needed[0] > needed[-1]


def test_min_replicas_stricter_requirements_need_more() -> None:
    base = min_replicas_to_detect(0.9, 0.3)
    assert min_replicas_to_detect(0.9, 0.3, alpha=0.01) >= base
    assert min_replicas_to_detect(0.9, 0.3, power=0.95) >= base
    assert min_replicas_to_detect(0.9, 0.3, alpha=0.2, power=0.5) <= base


def test_min_replicas_caps() -> None:
    assert min_replicas_to_detect(0.5, 0.01) == 1000  # read as "1000 or more"
    assert min_replicas_to_detect(0.9, 0.2, max_n=20) == 20


@pytest.mark.parametrize(
    ("base_rate", "drop", "alpha", "power"),
    [
        (0.0, 0.1, 0.05, 0.8),
        (0.5, 0.0, 0.05, 0.8),
        (0.5, 0.6, 0.05, 0.8),
        (0.5, 0.2, 0.0, 0.8),
        (0.5, 0.2, 0.05, 1.0),
    ],
)
def test_min_replicas_rejects_bad_input(base_rate: float, drop: float, alpha: float, power: float) -> None:
    with pytest.raises(ValueError):
        min_replicas_to_detect(base_rate, drop, alpha, power)
