"""The suite-level test: did the candidate pass less often than the baseline over all scenarios at once?

Scenarios differ in difficulty, so pooling their counts into one 2x2 table would mix strata with
different pass rates. The exact conditional test does not: under the null hypothesis (no scenario's
pass rate changed) each scenario's candidate pass count, given that scenario's margins, is
hypergeometric, independently of the others, so the total candidate pass count T is their sum. The
one-sided p-value is P(T <= observed), computed by convolving the per-scenario distributions. It is the
exact form of the Cochran-Mantel-Haenszel test, and with one scenario it equals Fisher's exact test
(`fisher_exact_one_sided`), which the tests check.

Why it matters: a 20-point drop in every scenario is invisible to any single scenario with 5 replicas
(Fisher needs 30 or more per arm) but plain in 30 scenarios together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Stratum = tuple[int, int, int, int]
"""(baseline passes, baseline replicas, candidate passes, candidate replicas) of one scenario."""


def _candidate_pmf(stratum: Stratum) -> tuple[int, list[float]]:
    """(lowest value, probabilities) of the candidate's pass count given the stratum's margins."""
    base_pass, base_n, cand_pass, cand_n = stratum
    total, passes = base_n + cand_n, base_pass + cand_pass
    fails = total - passes
    lowest, highest = max(0, cand_n - fails), min(cand_n, passes)
    denominator = math.comb(total, cand_n)
    return lowest, [
        math.comb(passes, x) * math.comb(fails, cand_n - x) / denominator for x in range(lowest, highest + 1)
    ]


def stratified_exact_one_sided(strata: Sequence[Stratum]) -> float:
    """One-sided p-value for "the candidate passes less often than the baseline" across strata.

    Only totals up to the observed one matter for the lower tail, so the convolution is cut there.
    Strata with an empty arm carry no evidence and are left out; no strata at all gives 1.0.
    """
    informative = [s for s in strata if s[1] > 0 and s[3] > 0]
    for base_pass, base_n, cand_pass, cand_n in informative:
        if not (0 <= base_pass <= base_n and 0 <= cand_pass <= cand_n):
            raise ValueError(
                "pass counts must be between 0 and the replica count, got "
                f"{(base_pass, base_n, cand_pass, cand_n)}"
            )
    if not informative:
        return 1.0
    observed = sum(s[2] for s in informative)
    offset = 0  # the distribution below covers totals offset, offset + 1, ...
    distribution = [1.0]
    for stratum in informative:
        lowest, pmf = _candidate_pmf(stratum)
        offset += lowest
        # observed >= offset always: every stratum's observed count is at least its lowest value.
        width = min(len(distribution) + len(pmf) - 1, observed - offset + 1)
        merged = [0.0] * width
        for i, weight in enumerate(distribution[:width]):
            for j, mass in enumerate(pmf[: width - i]):
                merged[i + j] += weight * mass
        distribution = merged
    return min(1.0, sum(distribution))
