"""The one regression decision: did a candidate pass less (or more) often than its baseline, scenario by
scenario and over the whole suite?

For every scenario compared, the one-sided Fisher exact test asks whether the candidate passes less often
than the baseline; with two or more scenarios one more hypothesis asks the same of the whole suite (the
stratified exact test), and one asks it of each group of scenarios the caller names (the cases of one
Eval, each a one-replica scenario that alone never shows a drop). All of them form one family, corrected
with Holm (family-wise error) or Benjamini-Hochberg (false discovery rate), so 30 unchanged scenarios, or
10 unchanged Evals, do not add up to a false alarm.

Only the hypotheses that could be significant count in the family (Tarone's rule for discrete tests): one
whose margins (the replicas of each run and the passes of both) allow no p-value at or below alpha
whatever the replicas showed, such as a scenario whose replicas all passed in both runs, a case of an
Eval (one replica a run), or one that failed once in ten, can never be rejected, so it takes no share of
alpha from the others; its adjusted p-value is its raw one (above alpha). Given the margins, where the
exact tests' p-values are valid, the family tested is fixed, so the error rate stays at alpha.

* regressed: the pass rate dropped by at least `min_effect` and the adjusted p-value is at most alpha;
* improved: the same, the other way round (the mirrored tests, their own family, the same correction);
* inconclusive: the drop is at least `min_effect` and the data lean towards it (raw p <= SUGGESTIVE_P)
  but it is not significant. For the suite, and for a lone scenario, that is enough; for one scenario
  among several it is reported only when the scenario alone would have been significant (noise in one
  of 30 scenarios is expected, and flagging it would undo the correction). An inconclusive test says
  how many replicas per scenario would tell;
* unchanged: anything else.

With adaptive replicas (`_sequential`) the family is decided at each look at that look's share of alpha;
at an interim look a scenario whose raw p-value is at most the look's futility threshold is
`inconclusive` (it gets more replicas; at the first look every scenario not yet decided does), and at
the final look a drop still not significant is `unchanged`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from ._corrections import CORRECTIONS, Correction, adjust
from ._fisher import fisher_exact_one_sided
from ._power import min_replicas_to_detect
from ._sequential import Look
from ._stratified import stratified_exact_one_sided

Decision = Literal["regressed", "improved", "unchanged", "inconclusive"]

POWER = 0.8
"""The chance of detecting the drop that `replicas_needed` is computed for."""
SUGGESTIVE_P = 0.25
"""A drop not significant at alpha is `inconclusive` only when its raw p-value is at most this: the data
lean towards a drop (odds of 3:1 or more that chance alone would show less). Without it, one 90% scenario
with 5 replicas would read `inconclusive` in one run out of four, every time it lost one replica more
than its baseline did."""
MAX_REPLICAS_HINT = 200
"""`replicas_needed` stops here ("200 or more"): beyond it more replicas are not the answer."""


class Counts(NamedTuple):
    """Judged replicas of one scenario in both runs (a stratum of the suite test)."""

    base_passed: int
    base_total: int
    cand_passed: int
    cand_total: int

    @property
    def comparable(self) -> bool:
        """Both runs have a replica with a verdict; otherwise there is nothing to test."""
        return self.base_total > 0 and self.cand_total > 0

    @property
    def drop(self) -> float:
        """Baseline pass rate minus candidate pass rate."""
        return self.base_passed / self.base_total - self.cand_passed / self.cand_total

    def mirrored(self) -> Counts:
        """The runs swapped: a drop of the mirror is a rise of the original."""
        return Counts(self.cand_passed, self.cand_total, self.base_passed, self.base_total)

    def most_extreme(self) -> Counts:
        """The counts with the same margins (replicas of each run, passes of both) and the fewest
        candidate passes: the smallest p-value a test of these margins can give."""
        passes = self.base_passed + self.cand_passed
        cand_passed = max(0, passes - self.base_total)
        return Counts(passes - cand_passed, self.base_total, cand_passed, self.cand_total)


@dataclass(frozen=True)
class RegressionPolicy:
    """How sure a decision must be (`alpha`, after `correction`) and how large a change must be
    (`min_effect`, a pass-rate difference from 0 to 1) to count."""

    alpha: float = 0.05
    correction: Correction = "holm"
    min_effect: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:  # also rejects NaN
            raise ValueError(f"alpha must be strictly between 0 and 1, got {self.alpha}")
        if self.correction not in CORRECTIONS:
            raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, got {self.correction!r}")
        if not 0.0 <= self.min_effect <= 1.0:
            raise ValueError(f"min_effect must be between 0 and 1, got {self.min_effect}")


@dataclass(frozen=True)
class TestResult:
    """One hypothesis of the family. The p-values are those of the test for a drop; `improved` comes
    from the mirrored test."""

    counts: Counts
    """For the suite: the counts summed over its scenarios."""
    drop: float
    """Baseline pass rate minus candidate pass rate (for the suite: the mean over its scenarios)."""
    p_value: float
    p_adjusted: float
    decision: Decision
    replicas_needed: int | None = None
    """Replicas per scenario that would detect a drop this large (set when inconclusive at a fixed look;
    at an interim look the design says how many come next)."""


@dataclass(frozen=True)
class Regressions:
    """The decisions for the compared scenarios (in the order given) and for the suite: None without
    scenarios, the scenario's own result for a single one; and for each group asked for, in its order:
    None for a group of fewer than two scenarios, the suite's result for a group of them all."""

    policy: RegressionPolicy
    scenarios: list[TestResult]
    suite: TestResult | None
    groups: list[TestResult | None] = field(default_factory=list)

    @property
    def suite_decision(self) -> Decision:
        return self.suite.decision if self.suite is not None else "unchanged"


class _Family(NamedTuple):
    """Raw and adjusted p-values of the scenario tests, then the groups' (each of two scenarios or more,
    fewer than all), then (with two or more scenarios) the suite's; and how many were tested."""

    raw: list[float]
    adjusted: list[float]
    tested: int


def _p_values(counts: Sequence[Counts], groups: Sequence[Sequence[int]]) -> list[float]:
    values = [fisher_exact_one_sided(*c) for c in counts]
    values += [stratified_exact_one_sided([counts[i] for i in group]) for group in groups]
    if len(counts) >= 2:
        values.append(stratified_exact_one_sided(counts))
    return values


def _family(
    counts: Sequence[Counts], groups: Sequence[Sequence[int]], correction: Correction, alpha: float
) -> _Family:
    """The family's p-values, corrected over the hypotheses that could be significant at `alpha` given
    their margins (Tarone's rule, see the module docstring); the others keep their raw p-value, above
    alpha whatever the correction."""
    raw = _p_values(counts, groups)
    lowest = _p_values([c.most_extreme() for c in counts], groups)
    testable = [i for i, p in enumerate(lowest) if p <= alpha]
    adjusted = list(raw)
    for i, p in zip(testable, adjust([raw[i] for i in testable], correction), strict=True):
        adjusted[i] = p
    return _Family(raw, adjusted, len(testable))


def _is_large(change: float, policy: RegressionPolicy) -> bool:
    return change > 0 and change >= policy.min_effect


@functools.lru_cache(maxsize=4096)
def _replicas_needed(base_rate: float, drop: float, alpha: float) -> int:
    return min_replicas_to_detect(base_rate, min(drop, base_rate), alpha, POWER, MAX_REPLICAS_HINT)


def _needed(base_rate: float, drop: float, alpha: float, scenarios: int) -> int:
    """Replicas per scenario that would detect the observed drop at `alpha`; for the suite, the pooled
    requirement shared out over its scenarios."""
    pooled = _replicas_needed(round(base_rate, 6), round(drop, 6), alpha)
    return min(MAX_REPLICAS_HINT, math.ceil(pooled / scenarios))


def _decision(
    drop: float, p_value: float, p_adjusted: float, rise_adjusted: float, policy: RegressionPolicy, look: Look
) -> Decision:
    if _is_large(drop, policy) and p_adjusted <= look.alpha:
        return "regressed"
    if look.kind == "interim":
        if p_value <= look.futility_p:
            return "inconclusive"
    elif _is_large(drop, policy):
        return "inconclusive" if look.kind == "fixed" and p_value <= SUGGESTIVE_P else "unchanged"
    if _is_large(-drop, policy) and rise_adjusted <= look.alpha:
        return "improved"
    return "unchanged"


def decide_regressions(
    counts: Sequence[Counts],
    policy: RegressionPolicy,
    look: Look | None = None,
    groups: Sequence[Sequence[int]] = (),
) -> Regressions:
    """Decide every scenario (`counts` of comparable scenarios only), each of the `groups` (indices into
    `counts`) and the suite; see the module docstring. `look`: one look of an adaptive design (default: a
    fixed design, all of alpha). Replicas needed are computed at the strictest step of the correction
    (alpha / family size)."""
    if any(not c.comparable for c in counts):
        raise ValueError("every scenario compared needs judged replicas in both runs")
    look = look or Look(alpha=policy.alpha)
    groups = [sorted(set(group)) for group in groups]
    tested = [group for group in groups if 2 <= len(group) < len(counts)]
    drops = _family(counts, tested, policy.correction, look.alpha)
    rises = _family([c.mirrored() for c in counts], tested, policy.correction, look.alpha)
    strictest = policy.alpha / max(1, drops.tested)
    single = len(counts) == 1
    scenarios = []
    for i, c in enumerate(counts):
        p_value, p_adjusted = drops.raw[i], drops.adjusted[i]
        decision = _decision(c.drop, p_value, p_adjusted, rises.adjusted[i], policy, look)
        if decision == "inconclusive" and look.kind == "fixed" and not (single or p_value <= policy.alpha):
            decision = "unchanged"
        needed = (
            _needed(c.base_passed / c.base_total, c.drop, strictest, 1)
            if decision == "inconclusive" and look.kind == "fixed"
            else None
        )
        scenarios.append(TestResult(c, c.drop, p_value, p_adjusted, decision, needed))

    def pooled(members: list[Counts], at: int) -> TestResult:
        """The stratified test of `members`, at position `at` of the family."""
        summed = Counts(*(sum(column) for column in zip(*members, strict=True)))
        drop = sum(c.drop for c in members) / len(members)
        decision = _decision(drop, drops.raw[at], drops.adjusted[at], rises.adjusted[at], policy, look)
        needed = (
            _needed(summed.base_passed / summed.base_total, drop, strictest, len(members))
            if decision == "inconclusive" and look.kind == "fixed"
            else None
        )
        return TestResult(summed, drop, drops.raw[at], drops.adjusted[at], decision, needed)

    if len(counts) < 2:
        suite = scenarios[0] if scenarios else None
    else:
        suite = pooled(list(counts), len(drops.raw) - 1)
    results = {tuple(g): pooled([counts[i] for i in g], len(counts) + k) for k, g in enumerate(tested)}
    decided = [suite if len(group) == len(counts) else results.get(tuple(group)) for group in groups]
    return Regressions(policy, scenarios, suite, decided)
