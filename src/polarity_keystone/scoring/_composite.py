"""The verdict of one run: composite score, pass/fail and the reasons it failed.

Rules (KEYSTONE-REFERENCE.md 1.5, 1.6, 1.14):

* composite = weighted average of the invariant scores (each in [0, 1]), using each invariant's
  `weight`; skipped invariants are left out of both numerator and denominator;
* any failed gate invariant fails the run outright, whatever the composite (which is still reported);
* any violated forbidden rule fails the run and forces the composite to 0.0;
* otherwise the run passes iff composite >= `pass_threshold` (with a 1e-9 tolerance, so that e.g. a
  weighted average of 1.0 that floats to 0.9999999999999999 still meets a threshold of 1.0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..results import ForbiddenCheckResult, InvariantResult

__all__ = ["EPSILON", "Verdict", "score_run"]

EPSILON = 1e-9
"""Tolerance of float comparisons against the pass threshold."""


@dataclass(frozen=True)
class Verdict:
    composite_score: float
    """Weighted average of the invariant scores in [0, 1]; 0.0 when a forbidden rule was violated."""
    passed: bool
    reasons: list[str] = field(default_factory=list)
    """Why the run failed, one human-readable line per cause; empty when it passed."""


def _clamped_score(invariant: InvariantResult) -> float:
    # Scores come from checks (custom scorers, judges): keep them in [0, 1]; NaN counts as 0 so a
    # broken scorer can never make a run look better.
    score = invariant.score
    if math.isnan(score):
        return 0.0
    return min(1.0, max(0.0, score))


def _below(value: float, threshold: float) -> str:
    """`value` and `threshold` with enough decimals (2 at least) to show that they differ."""
    for decimals in range(2, 10):
        shown, limit = f"{value:.{decimals}f}", f"{threshold:.{decimals}f}"
        if shown != limit:
            return f"composite {shown} below pass_threshold {limit}"
    return f"composite {value!r} below pass_threshold {threshold!r}"


def score_run(
    invariants: Sequence[InvariantResult],
    forbidden: Sequence[ForbiddenCheckResult],
    pass_threshold: float,
) -> Verdict:
    """Score one run from its invariant and forbidden-rule results.

    Weights and the threshold come from a validated spec; a negative or non-finite weight, or a
    threshold outside [0, 1], is a programming error and raises ValueError.

    Edge cases:
    * a skipped invariant counts neither for the composite nor as a failed gate: skipping means "not
      applicable here"; a check that could not be evaluated must fail (or error), not skip;
    * weight-0 invariants are informational: they do not move the composite, but a weight-0 gate
      still fails the run when it fails;
    * when the total weight of the scored invariants is 0 (no invariants, all skipped, or all with
      weight 0) there is nothing to average: the composite is 1.0 if every gate passed, else 0.0.
      A run with no applicable invariants and no violation therefore passes.
    """
    if not 0.0 <= pass_threshold <= 1.0:  # also rejects NaN
        raise ValueError(f"pass_threshold must be between 0 and 1, got {pass_threshold}")
    for invariant in invariants:
        if not (math.isfinite(invariant.weight) and invariant.weight >= 0.0):
            raise ValueError(f"invariant {invariant.name!r} has an invalid weight {invariant.weight}")

    reasons: list[str] = []
    scored = [inv for inv in invariants if not inv.skipped]

    failed_gates = [inv for inv in scored if inv.gate and not inv.passed]
    for gate in failed_gates:
        why = gate.reason or gate.message
        reasons.append(f"gate invariant {gate.name!r} failed" + (f": {why}" if why else ""))

    violations = [rule for rule in forbidden if rule.violated]
    for rule in violations:
        reasons.append(
            f"forbidden rule {rule.rule!r} violated" + (f": {rule.details}" if rule.details else "")
        )

    total_weight = math.fsum(inv.weight for inv in scored)
    if total_weight > 0.0:
        composite = math.fsum(inv.weight * _clamped_score(inv) for inv in scored) / total_weight
        composite = min(1.0, max(0.0, composite))
    else:
        composite = 0.0 if failed_gates else 1.0

    # The threshold is judged on the invariants' own composite, so a forbidden violation (which zeroes
    # the reported composite) or a failed gate with nothing to average is not also a "low composite".
    if total_weight > 0.0 and composite < pass_threshold - EPSILON:
        reasons.append(_below(composite, pass_threshold))

    if violations:
        composite = 0.0
    return Verdict(composite_score=composite, passed=not reasons, reasons=reasons)
