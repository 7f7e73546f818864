"""How many replicas a test needs: the exact power of the one-sided Fisher test, and the smallest
replica count per arm that detects a given pass-rate drop."""

from __future__ import annotations

import math

from ._validate import check_probability

_NEGLIGIBLE = 1e-12
"""Probability mass below which a term no longer matters for a power compared with a target."""


class _LogFactorials:
    """log(i!) for i = 0..size-1, computed once per replica count."""

    def __init__(self, size: int) -> None:
        self.table = [math.lgamma(i + 1) for i in range(size)]

    def comb(self, n: int, k: int) -> float:
        table = self.table
        return table[n] - table[k] - table[n - k]


def _binomial_pmf(n: int, p: float, lf: _LogFactorials) -> list[float]:
    if p <= 0.0:
        return [1.0] + [0.0] * n
    if p >= 1.0:
        return [0.0] * n + [1.0]
    log_p, log_q = math.log(p), math.log1p(-p)
    return [math.exp(lf.comb(n, k) + k * log_p + (n - k) * log_q) for k in range(n + 1)]


def _hypergeom_cdf(x: int, total: int, successes: int, draws: int, lf: _LogFactorials) -> float:
    """P(X <= x) for X ~ Hypergeometric(total, successes, draws), in floating point.

    Sums outward from `x` with the pmf ratio recursion until the terms stop mattering; below the mean
    it sums the lower tail, above it takes 1 - upper tail, so it is accurate where the test needs it
    (p-values near alpha, relative error far below 1e-9).
    """
    failures = total - successes
    lowest, highest = max(0, draws - failures), min(draws, successes)
    if x < lowest:
        return 0.0
    if x >= highest:
        return 1.0
    log_denominator = lf.comb(total, draws)
    if x * total <= draws * successes:  # x at or below the mean: sum the lower tail downwards
        k = x
        term = math.exp(lf.comb(successes, k) + lf.comb(failures, draws - k) - log_denominator)
        acc = term
        while k > lowest:
            term *= k * (failures - draws + k) / ((successes - k + 1) * (draws - k + 1))
            k -= 1
            acc += term
            if term <= acc * _NEGLIGIBLE:  # the pmf is unimodal: past the mode terms only shrink
                break
        return min(1.0, acc)
    k = x + 1  # above the mean: 1 - upper tail, summed upwards
    term = math.exp(lf.comb(successes, k) + lf.comb(failures, draws - k) - log_denominator)
    acc = term
    while k < highest:
        term *= (successes - k) * (draws - k) / ((k + 1) * (failures - draws + k + 1))
        k += 1
        acc += term
        if term <= acc * _NEGLIGIBLE:
            break
    return max(0.0, 1.0 - acc)


def _fisher_power(n: int, base_rate: float, cand_rate: float, alpha: float) -> float:
    """Exact power of the one-sided Fisher test with n replicas per arm (floating point).

    Power = sum over outcomes (b, c) of P(B = b) P(C = c) [p-value(b, c) <= alpha], B and C binomial.
    The p-value grows with c and shrinks with b, so for each b the rejection region is c <= c*(b)
    with c*(b) non-decreasing in b: one binary search, then a moving pointer. Baseline outcomes with
    probability below 1e-12 / (n + 1) are skipped (together they change the power by < 1e-12).
    """
    lf = _LogFactorials(2 * n + 2)
    limit = alpha * (1.0 + 1e-9)  # tolerate float noise when a p-value equals alpha exactly
    base_pmf = _binomial_pmf(n, base_rate, lf)
    cand_cdf: list[float] = []
    running = 0.0
    for mass in _binomial_pmf(n, cand_rate, lf):
        running += mass
        cand_cdf.append(min(1.0, running))

    def rejects(b: int, c: int) -> bool:
        return _hypergeom_cdf(c, 2 * n, b + c, n, lf) <= limit

    skip_below = _NEGLIGIBLE / (n + 1)
    power = 0.0
    c_star: int | None = None
    for b, weight in enumerate(base_pmf):
        if weight < skip_below:
            continue
        if c_star is None:
            low, high = -1, n  # c = low rejects (or is -1); c = high does not (p-value(b, n) = 1)
            while high - low > 1:
                mid = (low + high) // 2
                if rejects(b, mid):
                    low = mid
                else:
                    high = mid
            c_star = low
        else:
            while c_star + 1 < n and rejects(b, c_star + 1):
                c_star += 1
        if c_star >= 0:
            power += weight * cand_cdf[c_star]
    return min(1.0, power)


_SAWTOOTH_MARGIN = 0.25
"""More than the largest dip of Fisher's exact power below its best value at any smaller replica
count that we measured (about 0.18 for n < 50, under 0.02 for 50 <= n <= 300, over base rates from
0.1 to 1.0, drops from 0.05 to 0.3 and alpha 0.01 to 0.1)."""


def min_replicas_to_detect(
    base_rate: float,
    drop: float,
    alpha: float = 0.05,
    power: float = 0.8,
    max_n: int = 1000,
) -> int:
    """Smallest number of replicas per arm with which the one-sided Fisher test
    (`fisher_exact_one_sided` at level `alpha`) detects a pass-rate drop from `base_rate` to
    `base_rate - drop` with probability at least `power`.

    The power is computed exactly for each n (both arms binomial with n replicas each, the test's
    real rejection region), searching n = 1, 2, ... upwards. Fisher's test is discrete, so its power
    is not monotone in n (a saw-tooth); the answer is the *first* n that reaches the target. For a
    fixed n the power only grows with the drop, so the answer is non-increasing in `drop`.

    Returns `max_n` when even `max_n` replicas are not enough: read it as "max_n or more", such a
    small drop is not worth chasing with replicas. That case is answered at once when the power at
    `max_n` is more than 0.25 below the target (no smaller n can then reach it: the saw-tooth dips
    are far smaller); otherwise the search costs up to a few seconds for answers in the hundreds.

    Assumes independent replicas with one pass probability per arm.
    """
    if not 0.0 < base_rate <= 1.0:
        raise ValueError(f"base_rate must be in (0, 1], got {base_rate}")
    if not 0.0 < drop <= base_rate:
        raise ValueError(f"drop must be in (0, base_rate={base_rate}], got {drop}")
    check_probability(alpha, "alpha")
    check_probability(power, "power")
    if max_n < 1:
        raise ValueError(f"max_n must be >= 1, got {max_n}")
    cand_rate = max(0.0, base_rate - drop)
    target = power - 1e-9
    if _fisher_power(max_n, base_rate, cand_rate, alpha) < target - _SAWTOOTH_MARGIN:
        return max_n
    for n in range(1, max_n + 1):
        if _fisher_power(n, base_rate, cand_rate, alpha) >= target:
            return n
    return max_n
