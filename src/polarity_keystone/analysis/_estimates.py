"""Descriptive statistics of replicas: the uncertainty of a pass rate (Wilson), reliability (pass^k)
and the interpolating percentile used for latency metrics (p95 wall time).

The normal quantile comes from `statistics.NormalDist` (scipy is not a dependency).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from statistics import NormalDist

from ._validate import check_counts, check_probability


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion `successes / n`.

    Why Wilson and not the textbook `p ± z·sqrt(p(1-p)/n)`: with the small replica counts evals use
    (3, 5, 10) and rates at or near 0 and 1, the normal interval collapses to zero width (10/10 would
    claim certainty) or leaves [0, 1]. Wilson's interval stays inside [0, 1], is never empty and has
    close to nominal coverage for small n.

    Assumes the `n` trials are independent with one common pass probability. `n == 0` carries no
    information, so the interval is the whole range `(0.0, 1.0)`.
    """
    check_counts(successes, n)
    check_probability(confidence, "confidence")
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
    check_counts(successes, n)
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
