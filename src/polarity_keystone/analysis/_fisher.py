"""One-sided Fisher exact test: does the candidate pass less often than the baseline?

Replicas of a scenario are independent Bernoulli trials: each replica that produced a verdict passed
or failed, with an unknown per-scenario pass probability. scipy is not a dependency, so the test is
computed exactly with `math.comb` (arbitrary-precision integers).
"""

from __future__ import annotations

import math

from ._validate import check_counts


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
    check_counts(base_pass, base_n, "base_pass")
    check_counts(cand_pass, cand_n, "cand_pass")
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
