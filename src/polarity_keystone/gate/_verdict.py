"""The gate's decision: compare candidate RunResults with baseline RunResults, scenario by scenario.

Replicas are Bernoulli trials (DESIGN.md, "Statistics"). For every scenario present in both runs the
one-sided Fisher exact test asks whether the candidate passes less often than the baseline; with two or
more such scenarios one more hypothesis asks the same of the whole suite (`_pooled`). All of them form
one family, corrected with Holm (family-wise error) or Benjamini-Hochberg (false discovery rate), so 30
unchanged scenarios do not add up to a false alarm.

* regressed: adjusted p-value <= alpha AND the pass rate dropped by at least `min_effect`;
* inconclusive: the drop is at least `min_effect` and the data lean towards it (raw p <= SUGGESTIVE_P)
  but it is not significant. For the suite this blocks (or not, per input) and says how many replicas
  would tell; for one scenario among several it is shown only when the scenario alone would have been
  significant (a warning: noise in one of 30 scenarios is expected, and blocking on it would undo the
  correction);
* threshold_failed: an absolute rule broke: pass rate, cost, p95 wall time, a violated forbidden rule,
  a gate invariant failing in every replica (unless it also failed in the baseline);
* error: something could not be evaluated (an errored replica, a lost experiment, a baseline that ran
  something else). Never green.

The overall verdict is the first of regressed, threshold_failed, error, inconclusive, passed that
applies; exit codes 1, 1, 3 (2 when the error is a refused baseline), 4 (0 when non-blocking), 0.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from .. import exit_codes
from ..engine._stats import (
    benjamini_hochberg,
    fisher_exact_one_sided,
    holm_adjust,
    min_replicas_to_detect,
    wilson_interval,
)
from ..results import RunOutcome, RunResults, ScenarioResult
from ._inputs import FAIL_ON, GateConfig
from ._pooled import Stratum, stratified_exact_one_sided

VERDICT_SCHEMA_VERSION = 1

Outcome = Literal["passed", "regressed", "threshold_failed", "inconclusive", "error"]
PRECEDENCE: tuple[Outcome, ...] = ("regressed", "threshold_failed", "error", "inconclusive", "passed")

POWER = 0.8
"""The chance of detecting the drop that `replicas_needed` is computed for."""
SUGGESTIVE_P = 0.25
"""A drop not significant at alpha is `inconclusive` only when its raw p-value is at most this: the data
lean towards a drop (odds of 3:1 or more that chance alone would show less). Without it, one 90% scenario
with 5 replicas would read `inconclusive` in one run out of four, every time it lost one replica more
than its baseline did."""
MAX_REPLICAS_HINT = 200
"""`replicas_needed` stops here ("200 or more"): beyond it more replicas are not the answer."""

FINGERPRINT_MUST_MATCH = ("spec_id", "spec_sha256", "service_images")
"""What a baseline must share with the candidate to be comparable: the spec text and the services'
images. The agent (its code digest, the image it runs in, git fixtures' commits) is what the gate is there
to compare, so differences there are noted, never refused."""


class Rate(BaseModel):
    """A pass count with its 95% Wilson interval."""

    passed: int
    total: int
    rate: float
    low: float
    high: float

    @classmethod
    def of(cls, passed: int, total: int) -> Rate:
        low, high = wilson_interval(passed, total)
        return cls(passed=passed, total=total, rate=passed / total if total else 0.0, low=low, high=high)

    def describe(self) -> str:
        return f"{self.passed}/{self.total} ({self.rate:.0%}, CI {self.low:.0%}-{self.high:.0%})"


class Test(BaseModel):
    """One hypothesis of the family: did the candidate pass less often than the baseline?"""

    baseline: Rate
    candidate: Rate
    drop: float
    """Baseline pass rate minus candidate pass rate (for the suite: the mean over its scenarios)."""
    p_value: float
    p_adjusted: float = 1.0
    replicas_needed: int | None = None
    """Replicas per scenario that would detect a drop this large (set when inconclusive)."""


class InvariantStat(BaseModel):
    name: str
    gate: bool
    candidate: Rate
    baseline: Rate | None = None


class ForbiddenStat(BaseModel):
    rule: str
    violated: int
    total: int
    details: str = ""


class ScenarioVerdict(BaseModel):
    spec_id: str
    scenario_id: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    outcome: Outcome
    candidate: Rate
    comparison: Test | None = None
    reasons: list[str] = Field(default_factory=list)
    """Why it is not `passed`, one sentence each."""
    invariants: list[InvariantStat] = Field(default_factory=list)
    forbidden: list[ForbiddenStat] = Field(default_factory=list)
    replay: str | None = None
    """The reproducer command of the first failing replica."""


class SpecVerdict(BaseModel):
    spec_id: str
    experiment_id: str = ""
    outcome: Outcome
    candidate: Rate
    baseline: Rate | None = None
    baseline_source: str = ""
    errors: list[str] = Field(default_factory=list)
    """Why the spec could not be evaluated (a lost experiment, a refused baseline)."""
    reasons: list[str] = Field(default_factory=list)
    """Spec-level thresholds that broke (pass rate, cost, p95 wall time)."""
    notes: list[str] = Field(default_factory=list)
    refused: bool = False
    """The baseline ran something else and the gate refused to compare (an input error, exit 2)."""
    mean_cost_per_run_usd: float = 0.0
    p95_wall_ms: float = 0.0
    scenarios: list[ScenarioVerdict] = Field(default_factory=list)


class GateVerdict(BaseModel):
    schema_version: int = VERDICT_SCHEMA_VERSION
    verdict: Outcome
    exit_code: int
    suite: Test | None = None
    suite_outcome: Outcome = "passed"
    policy: dict[str, Any] = Field(default_factory=dict)
    specs: list[SpecVerdict] = Field(default_factory=list)

    def scenarios(self) -> list[ScenarioVerdict]:
        return [scenario for spec in self.specs for scenario in spec.scenarios]


@dataclass(frozen=True)
class Policy:
    alpha: float = 0.05
    min_effect: float = 0.1
    correction: str = "holm"
    min_pass_rate: float = 0.0
    max_cost_per_run_usd: float | None = None
    max_p95_wall_s: float | None = None
    fail_on: frozenset[str] = frozenset(FAIL_ON)
    allow_fingerprint_mismatch: bool = False
    inconclusive_blocking: bool = True

    @classmethod
    def from_config(cls, config: GateConfig) -> Policy:
        return cls(
            alpha=config.alpha,
            min_effect=config.min_effect,
            correction=config.correction,
            min_pass_rate=config.min_pass_rate,
            max_cost_per_run_usd=config.max_cost_per_run_usd,
            max_p95_wall_s=config.max_p95_wall,
            fail_on=frozenset(config.fail_on) - {"none"},
            allow_fingerprint_mismatch=config.allow_fingerprint_mismatch,
            inconclusive_blocking=config.inconclusive == "blocking",
        )

    def adjust(self, p_values: Sequence[float]) -> list[float]:
        return benjamini_hochberg(p_values) if self.correction == "bh" else holm_adjust(p_values)

    def describe(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "min_effect": self.min_effect,
            "correction": self.correction,
            "min_pass_rate": self.min_pass_rate,
            "max_cost_per_run_usd": self.max_cost_per_run_usd,
            "max_p95_wall_s": self.max_p95_wall_s,
            "fail_on": sorted(self.fail_on),
            "allow_fingerprint_mismatch": self.allow_fingerprint_mismatch,
            "inconclusive": "blocking" if self.inconclusive_blocking else "non-blocking",
        }


@dataclass(frozen=True)
class SpecRun:
    """What the gate has for one spec: the candidate run, and the baseline it is compared with."""

    spec_id: str
    candidate: RunResults | None
    baseline: RunResults | None = None
    baseline_source: str = ""
    """Where the baseline came from, for the report (`experiment exp-1 on main`, `file results.json`)."""
    problem: str | None = None
    """Why the candidate is missing or incomplete (the server went away, the timeout ran out)."""
    notes: tuple[str, ...] = ()


# --- per scenario ----------------------------------------------------------------------------------


def _outcomes(scenario: ScenarioResult) -> list[RunOutcome]:
    """The replicas that produced a verdict (results without per-replica detail: the scenario itself)."""
    if scenario.replicas:
        return [replica for replica in scenario.replicas if replica.status != "error"]
    return [] if scenario.status == "error" else [scenario]


def _rate(scenario: ScenarioResult) -> Rate:
    if scenario.replicas:
        judged = _outcomes(scenario)
        return Rate.of(sum(1 for r in scenario.replicas if r.status == "pass"), len(judged))
    return Rate.of(scenario.replicas_passed, scenario.replicas_total)


def _invariant_counts(scenario: ScenarioResult) -> dict[str, tuple[bool, int, int]]:
    counts: dict[str, tuple[bool, int, int]] = {}
    for outcome in _outcomes(scenario):
        for invariant in outcome.invariants:
            if invariant.skipped:
                continue
            gate, passed, total = counts.get(invariant.name, (invariant.gate, 0, 0))
            counts[invariant.name] = (gate or invariant.gate, passed + invariant.passed, total + 1)
    return counts


def _invariants(candidate: ScenarioResult, baseline: ScenarioResult | None) -> list[InvariantStat]:
    before = _invariant_counts(baseline) if baseline is not None else {}
    stats = []
    for name, (gate, passed, total) in _invariant_counts(candidate).items():
        base = before.get(name)
        stats.append(
            InvariantStat(
                name=name,
                gate=gate,
                candidate=Rate.of(passed, total),
                baseline=Rate.of(base[1], base[2]) if base else None,
            )
        )
    return stats


def _forbidden(scenario: ScenarioResult) -> list[ForbiddenStat]:
    judged = _outcomes(scenario)
    rules: dict[str, ForbiddenStat] = {}
    for outcome in judged:
        for check in outcome.forbidden_checks:
            stat = rules.setdefault(check.rule, ForbiddenStat(rule=check.rule, violated=0, total=len(judged)))
            if check.violated:
                stat.violated += 1
                stat.details = stat.details or check.details
    return list(rules.values())


def _replay(scenario: ScenarioResult) -> str | None:
    for replica in scenario.replicas:
        if replica.status != "pass" and replica.reproducer is not None:
            return replica.reproducer.command
    return scenario.reproducer.command if scenario.reproducer and scenario.status != "pass" else None


def _error_reason(scenario: ScenarioResult) -> str:
    errors = [r for r in scenario.replicas if r.status == "error"]
    detail = scenario.error or next((r.error for r in errors if r.error), None) or "no verdict"
    counted = f"{len(errors)} of {len(scenario.replicas)} replicas" if scenario.replicas else "the scenario"
    return f"could not be evaluated ({counted} errored): {detail}"


def _threshold_reasons(verdict: ScenarioVerdict, policy: Policy) -> list[str]:
    reasons = []
    if "forbidden" in policy.fail_on:
        reasons += [
            f"forbidden rule {stat.rule} violated in {stat.violated} of {stat.total} replicas"
            + (f": {stat.details}" if stat.details else "")
            for stat in verdict.forbidden
            if stat.violated
        ]
    if "gate-invariant" in policy.fail_on:
        reasons += [_newly_broken(stat) for stat in verdict.invariants if _is_newly_broken(stat)]
    return reasons


def _is_newly_broken(stat: InvariantStat) -> bool:
    """A gate invariant that failed in every replica, and in none of the baseline's (if there is one).
    One that also failed in the baseline was broken or flaky before this change: the statistics judge
    it, or a flaky scenario that lost all of its few replicas by chance would block merges at random."""
    if not (stat.gate and stat.candidate.total and not stat.candidate.passed):
        return False
    return stat.baseline is None or stat.baseline.passed == stat.baseline.total


def _newly_broken(stat: InvariantStat) -> str:
    before = f", never in the baseline ({stat.baseline.describe()})" if stat.baseline else ""
    return f"gate invariant {stat.name} failed in every replica ({stat.candidate.describe()}){before}"


# --- fingerprints ----------------------------------------------------------------------------------


def fingerprint_differences(
    baseline: dict[str, Any], candidate: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """(differences that make the runs incomparable, differences that are just noted). Keys missing on
    either side (older results, a partial run) are not compared."""
    refusing: list[str] = []
    noted: list[str] = []
    for key in sorted(set(baseline) & set(candidate)):
        if baseline[key] != candidate[key]:
            line = f"{key}: {_short(baseline[key])} -> {_short(candidate[key])}"
            (refusing if key in FINGERPRINT_MUST_MATCH else noted).append(line)
    return refusing, noted


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- the family of tests ---------------------------------------------------------------------------


@dataclass
class _Hypothesis:
    test: Test
    scenario: ScenarioVerdict | None
    """None for the suite-level hypothesis."""
    strata: list[Stratum] = field(default_factory=list)


@functools.lru_cache(maxsize=4096)
def _replicas_needed(base_rate: float, drop: float, alpha: float) -> int:
    return min_replicas_to_detect(base_rate, min(drop, base_rate), alpha, POWER, MAX_REPLICAS_HINT)


def _needed(test: Test, alpha: float, scenarios: int) -> int:
    """Replicas per scenario that would detect the observed drop at the strictest step of the correction
    (alpha / family size); for the suite, the pooled requirement shared out over its scenarios."""
    pooled = _replicas_needed(round(test.baseline.rate, 6), round(test.drop, 6), alpha)
    return min(MAX_REPLICAS_HINT, math.ceil(pooled / scenarios))


def _scenario_test(candidate: ScenarioResult, baseline: ScenarioResult, rate: Rate) -> _Hypothesis | None:
    base = _rate(baseline)
    if not base.total or not rate.total:
        return None
    p_value = fisher_exact_one_sided(base.passed, base.total, rate.passed, rate.total)
    test = Test(baseline=base, candidate=rate, drop=base.rate - rate.rate, p_value=p_value)
    return _Hypothesis(test, None, [(base.passed, base.total, rate.passed, rate.total)])


def _suite_test(hypotheses: list[_Hypothesis]) -> _Hypothesis:
    strata = [stratum for h in hypotheses for stratum in h.strata]
    base = Rate.of(sum(s[0] for s in strata), sum(s[1] for s in strata))
    cand = Rate.of(sum(s[2] for s in strata), sum(s[3] for s in strata))
    drop = sum(h.test.drop for h in hypotheses) / len(hypotheses)
    test = Test(baseline=base, candidate=cand, drop=drop, p_value=stratified_exact_one_sided(strata))
    return _Hypothesis(test, None, strata)


def _worst(outcomes: Iterable[Outcome]) -> Outcome:
    seen = set(outcomes)
    return next(outcome for outcome in PRECEDENCE if outcome in seen or outcome == "passed")


# --- the decision ----------------------------------------------------------------------------------


def _spec_verdict(run: SpecRun, policy: Policy, hypotheses: list[_Hypothesis]) -> SpecVerdict:
    candidate = run.candidate
    scenarios = candidate.scenarios if candidate is not None else []
    totals = [_rate(s) for s in scenarios]
    verdict = SpecVerdict(
        spec_id=run.spec_id,
        experiment_id=candidate.experiment_id if candidate else "",
        outcome="passed",
        candidate=Rate.of(sum(r.passed for r in totals), sum(r.total for r in totals)),
        baseline_source=run.baseline_source,
        notes=list(run.notes),
        mean_cost_per_run_usd=candidate.metrics.mean_cost_per_run_usd if candidate else 0.0,
        p95_wall_ms=candidate.metrics.p95_wall_ms if candidate else 0.0,
    )
    baseline = run.baseline
    if candidate is not None and baseline is not None:
        refusing, noted = fingerprint_differences(baseline.fingerprint, candidate.fingerprint)
        verdict.notes += [f"changed since the baseline: {line}" for line in noted]
        if refusing and not policy.allow_fingerprint_mismatch:
            verdict.refused = True
            verdict.errors.append(
                "refused to compare: the baseline ran something else ("
                + "; ".join(refusing)
                + "); set allow-fingerprint-mismatch to compare anyway"
            )
            baseline = None
        elif refusing:
            verdict.notes += [
                f"compared despite a different {line} (allow-fingerprint-mismatch)" for line in refusing
            ]
    if baseline is not None:
        base_totals = [_rate(s) for s in baseline.scenarios]
        verdict.baseline = Rate.of(sum(r.passed for r in base_totals), sum(r.total for r in base_totals))
    before = {s.scenario_id: s for s in baseline.scenarios} if baseline is not None else {}
    for scenario, rate in zip(scenarios, totals, strict=True):
        verdict.scenarios.append(
            _scenario_verdict(scenario, rate, before.get(scenario.scenario_id), policy, hypotheses)
        )
    if baseline is not None:
        new = [s.scenario_id for s in scenarios if s.scenario_id not in before]
        gone = sorted(set(before) - {s.scenario_id for s in scenarios})
        verdict.notes += [f"new scenario (no baseline yet): {sid}" for sid in new]
        verdict.notes += [f"scenario in the baseline but not run now: {sid}" for sid in gone]
    if run.problem:
        verdict.errors.append(run.problem)
    if candidate is not None:
        verdict.reasons += _spec_thresholds(verdict, policy)
    return verdict


def _scenario_verdict(
    scenario: ScenarioResult,
    rate: Rate,
    baseline: ScenarioResult | None,
    policy: Policy,
    hypotheses: list[_Hypothesis],
) -> ScenarioVerdict:
    verdict = ScenarioVerdict(
        spec_id=scenario.spec_id,
        scenario_id=scenario.scenario_id,
        parameters=scenario.parameters,
        outcome="passed",
        candidate=rate,
        invariants=_invariants(scenario, baseline),
        forbidden=_forbidden(scenario),
        replay=_replay(scenario),
    )
    if scenario.status == "error":
        verdict.outcome = "error"
        verdict.reasons.append(_error_reason(scenario))
        return verdict
    if baseline is not None and (hypothesis := _scenario_test(scenario, baseline, rate)) is not None:
        hypothesis.scenario = verdict
        verdict.comparison = hypothesis.test
        hypotheses.append(hypothesis)
    verdict.reasons += _threshold_reasons(verdict, policy)
    if verdict.reasons:
        verdict.outcome = "threshold_failed"
    return verdict


def _spec_thresholds(verdict: SpecVerdict, policy: Policy) -> list[str]:
    reasons = []
    if policy.min_pass_rate and verdict.candidate.rate < policy.min_pass_rate:
        reasons.append(
            f"pass rate {verdict.candidate.describe()} is below min-pass-rate {policy.min_pass_rate:.0%}"
        )
    cost = verdict.mean_cost_per_run_usd
    if policy.max_cost_per_run_usd is not None and not cost:
        verdict.notes.append("the run reported no cost, so max-cost-per-run-usd was not checked")
    elif policy.max_cost_per_run_usd is not None and cost > policy.max_cost_per_run_usd:
        reasons.append(
            f"mean cost per run ${cost:.4f} exceeds max-cost-per-run-usd ${policy.max_cost_per_run_usd:.4f}"
        )
    wall_s = verdict.p95_wall_ms / 1000
    if policy.max_p95_wall_s is not None and wall_s > policy.max_p95_wall_s:
        reasons.append(f"p95 wall time {wall_s:.1f}s exceeds max-p95-wall {policy.max_p95_wall_s:g}s")
    return reasons


def _test_outcome(test: Test, policy: Policy) -> Outcome:
    if test.drop < policy.min_effect:
        return "passed"
    if test.p_adjusted <= policy.alpha:
        return "regressed"
    return "inconclusive" if test.p_value <= SUGGESTIVE_P else "passed"


def _label(hypotheses: list[_Hypothesis], policy: Policy) -> tuple[Test | None, Outcome]:
    """Adjust the family's p-values, label the scenarios, and return the suite's test and outcome
    (with one comparable scenario, the suite is that scenario)."""
    suite = _suite_test(hypotheses) if len(hypotheses) >= 2 else None
    family = hypotheses + ([suite] if suite is not None else [])
    adjusted = policy.adjust([h.test.p_value for h in family])
    strictest = policy.alpha / max(1, len(family))
    for hypothesis, p_adjusted in zip(family, adjusted, strict=True):
        hypothesis.test.p_adjusted = p_adjusted
    for hypothesis in hypotheses:
        test, verdict = hypothesis.test, hypothesis.scenario
        assert verdict is not None  # every scenario hypothesis has its scenario
        outcome = _test_outcome(test, policy)
        if outcome == "regressed":
            verdict.outcome = "regressed"
            verdict.reasons.insert(0, _regression_reason(verdict, test))
        elif outcome == "inconclusive" and (test.p_value <= policy.alpha or suite is None):
            test.replicas_needed = _needed(test, strictest, 1)
            reason = _inconclusive_reason(test, single=suite is None)
            if verdict.outcome == "passed":
                verdict.outcome = "inconclusive"
                verdict.reasons.insert(0, reason)
            else:  # a broken threshold is what the scenario's first reason must say
                verdict.reasons.append(reason)
    if suite is None:
        return (
            (hypotheses[0].test, _test_outcome(hypotheses[0].test, policy))
            if hypotheses
            else (None, "passed")
        )
    outcome = _test_outcome(suite.test, policy)
    if outcome == "inconclusive":
        suite.test.replicas_needed = _needed(suite.test, strictest, len(hypotheses))
    return suite.test, outcome


def _regression_reason(verdict: ScenarioVerdict, test: Test) -> str:
    dropped = [
        f"{stat.name} {stat.baseline.describe()} -> {stat.candidate.describe()}"
        for stat in verdict.invariants
        if stat.baseline is not None and stat.candidate.rate < stat.baseline.rate
    ]
    which = f"; invariants that dropped: {', '.join(dropped)}" if dropped else ""
    return (
        f"regressed: pass rate {test.baseline.describe()} -> {test.candidate.describe()}, "
        f"p={test.p_value:.3g} (adjusted {test.p_adjusted:.3g}){which}"
    )


def _inconclusive_reason(test: Test, *, single: bool) -> str:
    why = "not significant" if single else "significant alone, not among all scenarios"
    return (
        f"inconclusive: pass rate {test.baseline.describe()} -> {test.candidate.describe()} is {why} "
        f"(p={test.p_value:.3g}, adjusted {test.p_adjusted:.3g}); about {_at_least(test.replicas_needed)} "
        "replicas would tell"
    )


def _at_least(replicas: int | None) -> str:
    return f"{replicas}+" if replicas is not None and replicas >= MAX_REPLICAS_HINT else str(replicas)


def decide(runs: Sequence[SpecRun], policy: Policy) -> GateVerdict:
    """The verdict over all specs of one gate run (see the module docstring)."""
    hypotheses: list[_Hypothesis] = []
    specs = [_spec_verdict(run, policy, hypotheses) for run in runs]
    suite, suite_outcome = _label(hypotheses, policy)
    for spec in specs:
        own: Outcome = "error" if spec.errors else "threshold_failed" if spec.reasons else "passed"
        spec.outcome = _worst([own, *(s.outcome for s in spec.scenarios)])
    # A scenario's own `inconclusive` is a warning; only the suite's blocks (see the module docstring).
    blocking: list[Outcome] = [spec.outcome for spec in specs if spec.outcome != "inconclusive"]
    blocking.append(suite_outcome)
    verdict = _worst(blocking)
    return GateVerdict(
        verdict=verdict,
        exit_code=exit_code(verdict, specs, policy.inconclusive_blocking),
        suite=suite,
        suite_outcome=suite_outcome,
        policy=policy.describe(),
        specs=specs,
    )


def exit_code(verdict: Outcome, specs: Sequence[SpecVerdict], inconclusive_blocking: bool) -> int:
    if verdict in ("regressed", "threshold_failed"):
        return exit_codes.FAILED
    if verdict == "error":
        refused_only = all(spec.refused for spec in specs if spec.outcome == "error")
        return exit_codes.INVALID_INPUT if refused_only else exit_codes.INFRASTRUCTURE
    if verdict == "inconclusive":
        return exit_codes.INCONCLUSIVE if inconclusive_blocking else exit_codes.PASSED
    return exit_codes.PASSED
