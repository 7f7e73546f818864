"""The verdict of one run: weighted composite, gates, forbidden rules and the pass threshold."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from polarity_keystone.results import ForbiddenCheckResult, InvariantResult
from polarity_keystone.scoring._composite import Verdict, score_run


def inv(
    name: str,
    score: float,
    *,
    weight: float = 1.0,
    gate: bool = False,
    skipped: bool = False,
    passed: bool | None = None,
    reason: str = "",
) -> InvariantResult:
    return InvariantResult(
        name=name,
        passed=score >= 1.0 if passed is None else passed,
        gate=gate,
        weight=weight,
        score=score,
        skipped=skipped,
        reason=reason,
    )


def violation(rule: str, details: str = "") -> ForbiddenCheckResult:
    return ForbiddenCheckResult(rule=rule, violated=True, details=details)


def clean(rule: str) -> ForbiddenCheckResult:
    return ForbiddenCheckResult(rule=rule, violated=False)


def test_all_passing_run_passes() -> None:
    verdict = score_run([inv("a", 1.0), inv("b", 1.0, gate=True)], [clean("file_writes_outside")], 1.0)
    assert verdict == Verdict(composite_score=1.0, passed=True, reasons=[])


def test_composite_is_the_weighted_average() -> None:
    verdict = score_run([inv("a", 1.0, weight=3.0), inv("b", 0.0, weight=1.0)], [], 0.5)
    assert verdict.composite_score == pytest.approx(0.75)
    assert verdict.passed

    verdict = score_run([inv("judge", 0.6, weight=2.0, passed=True), inv("file", 1.0, weight=0.5)], [], 0.5)
    assert verdict.composite_score == pytest.approx((2 * 0.6 + 0.5) / 2.5)


def test_composite_below_threshold_fails_with_reason() -> None:
    verdict = score_run([inv("a", 1.0), inv("b", 0.0)], [], 1.0)
    assert verdict.composite_score == pytest.approx(0.5)
    assert not verdict.passed
    assert verdict.reasons == ["composite 0.50 below pass_threshold 1.00"]


def test_threshold_boundary_is_inclusive_and_tolerant() -> None:
    # Exactly at the threshold passes.
    assert score_run([inv("a", 1.0), inv("b", 0.0)], [], 0.5).passed
    # Ten weights of 0.1 sum to 0.9999999999999999 in floats: still a composite of 1.0.
    tenths = [inv(f"i{i}", 1.0, weight=0.1) for i in range(10)]
    assert score_run(tenths, [], 1.0).passed
    # Just below the threshold fails, and the reason shows the difference.
    verdict = score_run([inv("a", 0.999, passed=True)], [], 1.0)
    assert not verdict.passed
    assert verdict.reasons == ["composite 0.999 below pass_threshold 1.000"]


def test_failed_gate_fails_the_run_but_composite_is_reported() -> None:
    invariants = [
        inv("tests_pass", 0.0, gate=True, weight=1.0, reason="exit code 1"),
        inv("a", 1.0, weight=9.0),
    ]
    verdict = score_run(invariants, [], 0.5)
    assert verdict.composite_score == pytest.approx(0.9)
    assert not verdict.passed
    assert verdict.reasons == ["gate invariant 'tests_pass' failed: exit code 1"]


def test_passing_gate_does_not_fail_the_run() -> None:
    verdict = score_run([inv("g", 1.0, gate=True), inv("a", 0.0, weight=0.1)], [], 0.9)
    assert verdict.passed
    assert verdict.composite_score == pytest.approx(1 / 1.1)


def test_forbidden_violation_forces_zero_and_fails() -> None:
    verdict = score_run(
        [inv("a", 1.0), inv("b", 1.0, gate=True)],
        [clean("secrets_in_logs"), violation("file_writes_outside", "wrote /etc/passwd")],
        0.0,
    )
    assert verdict.composite_score == 0.0
    assert not verdict.passed
    assert verdict.reasons == ["forbidden rule 'file_writes_outside' violated: wrote /etc/passwd"]


def test_every_cause_is_reported() -> None:
    verdict = score_run(
        [inv("g", 0.0, gate=True), inv("a", 0.5, passed=False)],
        [
            violation("db_writes_outside", "agent wrote to forbidden table 'admin_users' (5 rows)"),
            violation("http_except"),
        ],
        1.0,
    )
    assert verdict.composite_score == 0.0
    assert verdict.reasons == [
        "gate invariant 'g' failed",
        "forbidden rule 'db_writes_outside' violated: agent wrote to forbidden table 'admin_users' (5 rows)",
        "forbidden rule 'http_except' violated",
        "composite 0.25 below pass_threshold 1.00",
    ]


def test_skipped_invariants_are_excluded() -> None:
    invariants = [inv("a", 1.0), inv("b", 0.0, skipped=True, weight=5.0)]
    verdict = score_run(invariants, [], 1.0)
    assert verdict.composite_score == 1.0
    assert verdict.passed
    # A skipped gate is "not applicable", not a failure.
    verdict = score_run([inv("a", 1.0), inv("g", 0.0, gate=True, skipped=True)], [], 1.0)
    assert verdict.passed


def test_nothing_to_average() -> None:
    # No invariants, all skipped, or only weight-0 ones: composite 1.0 when every gate passed.
    assert score_run([], [], 1.0) == Verdict(1.0, True, [])
    assert score_run([inv("a", 0.0, skipped=True)], [], 1.0) == Verdict(1.0, True, [])
    assert score_run([inv("g", 1.0, gate=True, weight=0.0)], [], 1.0) == Verdict(1.0, True, [])
    # ... and 0.0 when a gate failed, reported once (as the gate, not as a low composite).
    verdict = score_run([inv("g", 0.0, gate=True, weight=0.0)], [], 1.0)
    assert verdict == Verdict(0.0, False, ["gate invariant 'g' failed"])
    # A violation still fails a run with nothing to average.
    assert score_run([], [violation("secrets_in_logs")], 0.0) == Verdict(
        0.0, False, ["forbidden rule 'secrets_in_logs' violated"]
    )


def test_weight_zero_invariant_is_informational() -> None:
    verdict = score_run([inv("a", 1.0), inv("info", 0.0, weight=0.0)], [], 1.0)
    assert verdict.passed and verdict.composite_score == 1.0


def test_out_of_range_scores_are_clamped_and_nan_counts_as_zero() -> None:
    assert score_run([inv("a", 1.7, passed=True)], [], 1.0).composite_score == 1.0
    verdict = score_run([inv("a", math.nan, passed=True), inv("b", 1.0)], [], 1.0)
    assert verdict.composite_score == pytest.approx(0.5)
    assert not verdict.passed


@pytest.mark.parametrize("threshold", [-0.1, 1.1, math.nan])
def test_bad_threshold_is_rejected(threshold: float) -> None:
    with pytest.raises(ValueError, match="pass_threshold"):
        score_run([inv("a", 1.0)], [], threshold)


@pytest.mark.parametrize("weight", [-1.0, math.inf, math.nan])
def test_bad_weight_is_rejected(weight: float) -> None:
    with pytest.raises(ValueError, match="weight"):
        score_run([inv("a", 1.0, weight=weight)], [], 1.0)


def test_verdict_is_frozen() -> None:
    verdict = score_run([inv("a", 1.0)], [], 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.passed = False  # type: ignore[misc]


def test_properties_over_random_runs() -> None:
    rng = random.Random(5)
    for _ in range(500):
        invariants = [
            inv(
                f"i{i}",
                rng.choice([0.0, 1.0, rng.random()]),
                weight=rng.choice([0.0, 0.5, 1.0, 3.0]),
                gate=rng.random() < 0.2,
                skipped=rng.random() < 0.1,
            )
            for i in range(rng.randint(0, 6))
        ]
        forbidden = [
            ForbiddenCheckResult(rule=f"r{i}", violated=rng.random() < 0.1) for i in range(rng.randint(0, 3))
        ]
        threshold = rng.choice([0.0, 0.5, 0.8, 1.0])
        verdict = score_run(invariants, forbidden, threshold)
        assert 0.0 <= verdict.composite_score <= 1.0
        assert verdict.passed == (not verdict.reasons)
        if any(f.violated for f in forbidden):
            assert verdict.composite_score == 0.0 and not verdict.passed
        if any(i.gate and not i.passed and not i.skipped for i in invariants):
            assert not verdict.passed
        if verdict.passed:
            assert verdict.composite_score >= threshold - 1e-9
        # Skipped invariants never change the verdict.
        assert score_run([i for i in invariants if not i.skipped], forbidden, threshold) == verdict
