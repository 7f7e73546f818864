"""Statistics over replicas: pure functions, standard library only.

Replicas of a scenario are treated as independent Bernoulli trials (DESIGN.md, "Statistics"): each
replica that produced a verdict either passed or failed, with an unknown per-scenario pass
probability. Everything here follows from that assumption:

* `wilson_interval` reports the uncertainty of an observed pass rate;
* `pass_hat_k` estimates the chance that k fresh replicas all pass (pass^k, a reliability measure);
* `fisher_exact_one_sided` tests whether a candidate passes less often than a baseline, with
  `holm_adjust` / `benjamini_hochberg` to correct for testing many scenarios at once;
* `min_replicas_to_detect` says how many replicas per arm such a test needs;
* `scenario_status` folds replica statuses into one scenario status;
* `percentile` is the interpolating percentile used for latency metrics (p95 wall time).

scipy is not a dependency, so exact computations use `math.comb` (arbitrary-precision integers) and
the normal quantile comes from `statistics.NormalDist`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from statistics import NormalDist
from typing import Literal

__all__ = [
    "benjamini_hochberg",
    "fisher_exact_one_sided",
    "holm_adjust",
    "min_replicas_to_detect",
    "pass_hat_k",
    "percentile",
    "scenario_status",
    "wilson_interval",
]

_REPLICA_STATUSES = frozenset({"pass", "fail", "error"})


def _check_counts(successes: int, n: int, what: str = "successes") -> None:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"{what} must be between 0 and n={n}, got {successes}")


def _check_probability(value: float, name: str) -> None:
    if not 0.0 < value < 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value}")


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion `successes / n`.

    Why Wilson and not the textbook `p ± z·sqrt(p(1-p)/n)`: with the small replica counts evals use
    (3, 5, 10) and rates at or near 0 and 1, the normal interval collapses to zero width (10/10 would
    claim certainty) or leaves [0, 1]. Wilson's interval stays inside [0, 1], is never empty and has
    close to nominal coverage for small n.

    Assumes the `n` trials are independent with one common pass probability. `n == 0` carries no
    information, so the interval is the whole range `(0.0, 1.0)`.
    """
    _check_counts(successes, n)
    _check_probability(confidence, "confidence")
    if n == 0:
        return (0.0, 1.0)
    z = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)
    z2 = z * z
    p = successes / n
    denominator = 1.0 + z2 / n
    center = (p + z2 / (2.0 * n)) / denominator
    half_width = (z / denominator) * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    # At 0 and n the bound is exactly 0 / 1 mathematically; pin it so float noise does not show.
    lower = 0.0 if successes == 0 else max(0.0, center - half_width)
    upper = 1.0 if successes == n else min(1.0, center + half_width)
    return (lower, upper)


def pass_hat_k(successes: int, n: int, k: int) -> float:
    """pass^k: the estimated probability that `k` independent replicas *all* pass.

    For `k <= n` this is the unbiased estimator `C(c, k) / C(n, k)` (c = successes): the fraction of
    the k-subsets of the observed replicas in which every replica passed. It is unbiased for p**k,
    unlike the plug-in `(c/n)**k`, which overstates reliability for small n.

    For `k > n` no k-subset exists, so:
    * `c == n` (every observed replica passed) gives 1.0 — nothing observed contradicts it, but read
      it together with the Wilson interval, which stays wide for small n;
    * otherwise the plug-in estimate `(c / n) ** k` is used.

    `n == 0` (no replica produced a verdict) gives 0.0: with no evidence we never report reliability.
    `k` must be >= 1.
    """
    _check_counts(successes, n)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if n == 0:
        return 0.0
    if k > n:
        return 1.0 if successes == n else (successes / n) ** k
    return math.comb(successes, k) / math.comb(n, k)


def percentile(values: Iterable[float], q: float) -> float:
    """The `q`-th percentile (0 <= q <= 100) of `values` with linear interpolation.

    Same definition as numpy's default (`method="linear"`): sort the values, take the position
    `(len - 1) * q / 100` and interpolate between its two neighbours. An empty input gives 0.0 (a
    run with no timings reports 0 rather than failing).
    """
    if not 0.0 <= q <= 100.0:  # also rejects NaN
        raise ValueError(f"q must be between 0 and 100, got {q}")
    ordered = sorted(float(v) for v in values)
    if not ordered:
        return 0.0
    position = (len(ordered) - 1) * q / 100.0
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    fraction = position - below
    return ordered[below] + (ordered[above] - ordered[below]) * fraction


def scenario_status(replica_statuses: Sequence[str]) -> Literal["pass", "fail", "flaky", "error"]:
    """Fold the statuses of a scenario's replicas (`pass` | `fail` | `error`) into one status.

    * any replica `error` -> `error`: something could not be evaluated, so the scenario must never
      look green, even if every other replica passed;
    * every replica `pass` -> `pass`;
    * no replica `pass` -> `fail`;
    * otherwise (some pass, some fail) -> `flaky`.

    No replicas at all -> `error` (nothing was evaluated). An unknown status raises ValueError.
    """
    unknown = sorted({s for s in replica_statuses if s not in _REPLICA_STATUSES})
    if unknown:
        raise ValueError(f"unknown replica status(es) {unknown}; expected pass, fail or error")
    if not replica_statuses or "error" in replica_statuses:
        return "error"
    passed = sum(1 for s in replica_statuses if s == "pass")
    if passed == len(replica_statuses):
        return "pass"
    if passed == 0:
        return "fail"
    return "flaky"


def fisher_exact_one_sided(base_pass: int, base_n: int, cand_pass: int, cand_n: int) -> float:
    """One-sided Fisher exact test p-value for "the candidate passes less often than the baseline".

    The 2x2 table (baseline/candidate x pass/fail) is conditioned on its margins; under the null
    hypothesis of equal pass rates the candidate's pass count is hypergeometric, and the p-value is
    the lower tail `P(X <= cand_pass)`. It is exact (integer arithmetic with `math.comb`, one final
    division), so it is valid for the small replica counts where normal approximations are not.
    Same value as `scipy.stats.fisher_exact(table, alternative="greater")` with
    `table = [[base_pass, base_n - base_pass], [cand_pass, cand_n - cand_pass]]`.

    An empty arm carries no evidence, so the p-value is 1.0.
    """
    _check_counts(base_pass, base_n, "base_pass")
    _check_counts(cand_pass, cand_n, "cand_pass")
    if base_n == 0 or cand_n == 0:
        return 1.0
    total = base_n + cand_n
    total_pass = base_pass + cand_pass
    total_fail = total - total_pass
    lowest = max(0, cand_n - total_fail)
    tail = sum(
        math.comb(total_pass, x) * math.comb(total_fail, cand_n - x) for x in range(lowest, cand_pass + 1)
    )
    return min(1.0, tail / math.comb(total, cand_n))


def _check_p_values(p_values: Sequence[float]) -> None:
    for p in p_values:
        if not 0.0 <= p <= 1.0:  # also rejects NaN
            raise ValueError(f"p-values must be between 0 and 1, got {p}")


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order.

    Controls the family-wise error rate (the chance of *any* false regression among all scenarios)
    without assuming the tests are independent; uniformly more powerful than plain Bonferroni.
    Compare each adjusted value with the unadjusted alpha. Adjusted values are monotone in the
    ranks of the raw p-values and capped at 1.
    """
    _check_p_values(p_values)
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order.

    Controls the false discovery rate (the expected share of false alarms among the flagged
    regressions) under independence or positive dependence of the tests; less strict than Holm when
    many scenarios are compared. Adjusted values are monotone in the ranks of the raw p-values and
    capped at 1.
    """
    _check_p_values(p_values)
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 1.0
    for rank in range(m - 1, -1, -1):
        index = order[rank]
        # m / (rank + 1) >= 1 as a float too, so the product never rounds below the raw p-value.
        running = min(running, p_values[index] * (m / (rank + 1)))
        adjusted[index] = running
    return adjusted


# --- power of the one-sided Fisher test (floating point, for min_replicas_to_detect) -------------

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

    Assumes independent replicas with one pass probability per arm (DESIGN.md, "Statistics").
    """
    if not 0.0 < base_rate <= 1.0:
        raise ValueError(f"base_rate must be in (0, 1], got {base_rate}")
    if not 0.0 < drop <= base_rate:
        raise ValueError(f"drop must be in (0, base_rate={base_rate}], got {drop}")
    _check_probability(alpha, "alpha")
    _check_probability(power, "power")
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
