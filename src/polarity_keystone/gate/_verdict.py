"""The gate's decision: compare candidate RunResults with baseline RunResults, scenario by scenario.

Every scenario present in both runs (and evaluated in the candidate) goes, with all the others of the
gate run, through the one regression decision of `analysis` (one-sided Fisher exact tests per scenario
plus a stratified suite test, as one family corrected with Holm or Benjamini-Hochberg):

* regressed: adjusted p-value <= alpha AND the pass rate dropped by at least `min_effect`;
* inconclusive: the drop is at least `min_effect` and the data lean towards it but it is not
  significant. For the suite this blocks (or not, per input) and says how many replicas would tell; for
  one scenario among several it is shown only when the scenario alone would have been significant (a
  warning: noise in one of 30 scenarios is expected, and blocking on it would undo the correction);
* an improvement or no change is `passed`;
* threshold_failed: an absolute rule broke: pass rate, cost, p95 wall time, a violated forbidden rule,
  a gate invariant failing in every replica (unless it also failed in the baseline);
* error: something could not be evaluated (an errored replica, a lost experiment, a baseline of a
  changed spec under strict-baselines). Never green.

A baseline of a changed spec (by meaning: comments and formatting do not count) or other service images
is still compared scenario by scenario; the verdict says what changed (`_spec_changes`), scenarios new
since the baseline are judged by absolute rules only, and a new or redefined invariant is judged without
the baseline's figures for it.

The overall verdict is the first of regressed, threshold_failed, error, inconclusive, passed that
applies; exit codes 1, 1, 3 (2 when the error is a refused baseline), 4 (0 when non-blocking), 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from .. import exit_codes
from ..analysis import (
    MAX_REPLICAS_HINT,
    Counts,
    Decision,
    Look,
    RegressionPolicy,
    TestResult,
    decide_regressions,
    judged,
    wilson_interval,
)
from ..results import RunOutcome, RunResults, ScenarioResult, failure_evidence
from ._inputs import FAIL_ON, GateConfig
from ._spec_changes import SpecChanges, compare_runs

VERDICT_SCHEMA_VERSION = 1
NOTHING_TO_COMPARE = (
    "no baseline and no min-pass-rate: only forbidden rules and gate invariants failing in every replica "
    "can block, so an agent passing 8 of 10 passes. Set baseline (e.g. branch:main) to block regressions, "
    "or min-pass-rate (e.g. 0.9, the pass rate the agent must keep) for an absolute bar"
)

Outcome = Literal["passed", "regressed", "threshold_failed", "inconclusive", "error"]
PRECEDENCE: tuple[Outcome, ...] = ("regressed", "threshold_failed", "error", "inconclusive", "passed")


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

    @classmethod
    def of(cls, result: TestResult) -> Test:
        base_passed, base_total, cand_passed, cand_total = result.counts
        return cls(
            baseline=Rate.of(base_passed, base_total),
            candidate=Rate.of(cand_passed, cand_total),
            drop=result.drop,
            p_value=result.p_value,
            p_adjusted=result.p_adjusted,
            replicas_needed=result.replicas_needed,
        )


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
    evidence: str = ""
    """The agent's exit code and last output lines in the first erroring, else failing, replica."""
    wall_ms: int = 0
    """Wall time of all its replicas together."""
    mean_cost_per_run_usd: float | None = None
    """Mean estimated cost of a replica; None when unknown (no LLM calls reported, or unpriced models)."""
    baseline_mean_cost_per_run_usd: float | None = None


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
    """Spec-level thresholds that broke (pass rate, p95 wall time; cost is checked per scenario)."""
    notes: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    """What the user should change in the set-up (shown, never blocking)."""
    refused: bool = False
    """The baseline ran something else and the gate refused to compare (strict-baselines; exit 2)."""
    changes: SpecChanges | None = None
    """What changed since the baseline besides the agent (spec, scenarios, service images), if anything."""
    unchanged_since: str = ""
    """The baseline's commit, when the spec was not run because none of its files changed since
    (changed-only); it then neither blocks nor counts as passed."""
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
    """Compare even a baseline that strict-baselines would refuse."""
    inconclusive_blocking: bool = True
    strict_baselines: bool = False
    """Refuse (exit 2) a baseline of a changed spec or other service images instead of comparing."""
    max_replicas: int = 80
    """Adaptive replicas: undecided scenarios grow (doubling) up to this many."""

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
            strict_baselines=config.strict_baselines,
            max_replicas=config.max_replicas,
        )

    @property
    def regression(self) -> RegressionPolicy:
        return RegressionPolicy(self.alpha, "bh" if self.correction == "bh" else "holm", self.min_effect)

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
            "strict_baselines": self.strict_baselines,
            "inconclusive": "blocking" if self.inconclusive_blocking else "non-blocking",
            "max_replicas": self.max_replicas,
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
    grows: bool = True
    """False for an Eval's run: each case ran once, and adaptive replicas cannot add to it."""


# --- per scenario ----------------------------------------------------------------------------------


def _outcomes(scenario: ScenarioResult) -> list[RunOutcome]:
    """The replicas that produced a verdict (results without per-replica detail: the scenario itself)."""
    if scenario.replicas:
        return [replica for replica in scenario.replicas if replica.status != "error"]
    return [] if scenario.status == "error" else [scenario]


def _rate(scenario: ScenarioResult) -> Rate:
    if scenario.replicas:
        return Rate.of(*judged(r.status for r in scenario.replicas))
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


def _invariants(
    candidate: ScenarioResult, baseline: ScenarioResult | None, fresh: set[str]
) -> list[InvariantStat]:
    """Per invariant, the candidate's pass rate and the baseline's, except for `fresh` invariants (new
    or redefined since the baseline), whose baseline figures measured something else."""
    before = _invariant_counts(baseline) if baseline is not None else {}
    stats = []
    for name, (gate, passed, total) in _invariant_counts(candidate).items():
        base = before.get(name) if name not in fresh else None
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
    cost, limit = verdict.mean_cost_per_run_usd, policy.max_cost_per_run_usd
    if limit is not None and cost is not None and cost > limit:
        reasons.append(
            f"mean cost per run of {verdict.scenario_id} ${cost:.4f} exceeds "
            f"max-cost-per-run-usd ${limit:.4f}"
        )
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


# --- the family of tests ---------------------------------------------------------------------------


_OUTCOMES: dict[Decision, Outcome] = {
    "regressed": "regressed",
    "inconclusive": "inconclusive",
    "improved": "passed",
    "unchanged": "passed",
}


@dataclass(frozen=True)
class _Compared:
    """A scenario that goes into the regression decision: its verdict (labelled once decided) and the
    judged replicas of both runs."""

    verdict: ScenarioVerdict
    counts: Counts


def _worst(outcomes: Iterable[Outcome]) -> Outcome:
    seen = set(outcomes)
    return next(outcome for outcome in PRECEDENCE if outcome in seen or outcome == "passed")


# --- the decision ----------------------------------------------------------------------------------


def _spec_verdict(run: SpecRun, policy: Policy, compared: list[_Compared]) -> SpecVerdict:
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
    fresh: set[str] = set()
    if candidate is not None and baseline is not None:
        changes, noted = compare_runs(baseline, candidate)
        verdict.notes += noted
        verdict.changes = changes if changes.any else None
        fresh = changes.fresh_invariants
        if changes.refusable and policy.strict_baselines and not policy.allow_fingerprint_mismatch:
            verdict.refused = True
            verdict.errors.append(
                f"refused to compare (strict-baselines): {changes.describe()}; run a new baseline, "
                "or leave strict-baselines off to compare scenario by scenario"
            )
            baseline = None
    if baseline is None and candidate is not None and not policy.min_pass_rate:
        verdict.warnings.append(NOTHING_TO_COMPARE)
    if baseline is not None:
        base_totals = [_rate(s) for s in baseline.scenarios]
        verdict.baseline = Rate.of(sum(r.passed for r in base_totals), sum(r.total for r in base_totals))
    before = {s.scenario_id: s for s in baseline.scenarios} if baseline is not None else {}
    for scenario, rate in zip(scenarios, totals, strict=True):
        verdict.scenarios.append(
            _scenario_verdict(scenario, rate, before.get(scenario.scenario_id), policy, compared, fresh)
        )
    if run.problem:
        verdict.errors.append(run.problem)
    if candidate is not None:
        verdict.reasons += _spec_thresholds(verdict, policy)
        verdict.notes += _unchecked_cost(candidate, verdict, policy)
    return verdict


def _unchecked_cost(candidate: RunResults, verdict: SpecVerdict, policy: Policy) -> list[str]:
    """Why max-cost-per-run-usd could not be checked, for the scenarios whose cost is unknown."""
    unknown = [
        s.scenario_id for s in verdict.scenarios if s.mean_cost_per_run_usd is None and s.outcome != "error"
    ]
    if policy.max_cost_per_run_usd is None or not unknown:
        return []
    which = "" if len(unknown) == len(verdict.scenarios) else f" for {', '.join(unknown)}"
    unpriced = candidate.metrics.unpriced_models
    if not unpriced:
        return [f"the run reported no cost, so max-cost-per-run-usd was not checked{which}"]
    return [
        f"the models called have no price ({', '.join(unpriced)}), so max-cost-per-run-usd was not "
        f"checked{which}; the server's operator prices them with ks serve --pricing"
    ]


def _scenario_verdict(
    scenario: ScenarioResult,
    rate: Rate,
    baseline: ScenarioResult | None,
    policy: Policy,
    compared: list[_Compared],
    fresh: set[str],
) -> ScenarioVerdict:
    verdict = ScenarioVerdict(
        spec_id=scenario.spec_id,
        scenario_id=scenario.scenario_id,
        parameters=scenario.parameters,
        outcome="passed",
        candidate=rate,
        invariants=_invariants(scenario, baseline, fresh),
        forbidden=_forbidden(scenario),
        replay=_replay(scenario),
        evidence=failure_evidence(scenario) if scenario.status != "pass" else "",
        wall_ms=sum(replica.wall_ms for replica in scenario.replicas) or scenario.wall_ms,
        mean_cost_per_run_usd=scenario.mean_cost_per_run_usd,
        baseline_mean_cost_per_run_usd=baseline.mean_cost_per_run_usd if baseline else None,
    )
    if scenario.status == "error":
        verdict.outcome = "error"
        verdict.reasons.append(_error_reason(scenario))
        return verdict
    if baseline is not None:
        base = _rate(baseline)
        counts = Counts(base.passed, base.total, rate.passed, rate.total)
        if counts.comparable:
            compared.append(_Compared(verdict, counts))
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
    wall_s = verdict.p95_wall_ms / 1000
    if policy.max_p95_wall_s is not None and wall_s > policy.max_p95_wall_s:
        reasons.append(f"p95 wall time {wall_s:.1f}s exceeds max-p95-wall {policy.max_p95_wall_s:g}s")
    return reasons


def _label(
    compared: list[_Compared], evals: list[SpecVerdict], policy: Policy, look: Look | None
) -> tuple[Test | None, Outcome, dict[str, Outcome]]:
    """Decide the scenarios compared, with each Eval's cases as a group, as one family; label the
    scenarios, and return the suite's test and outcome (with one comparable scenario, the suite is that
    scenario) and each Eval's own outcome by its id."""
    groups = [[i for i, item in enumerate(compared) if item.verdict.spec_id == e.spec_id] for e in evals]
    decided = decide_regressions([item.counts for item in compared], policy.regression, look, groups)
    eval_outcomes = {e.spec_id: _label_eval(e, cases) for e, cases in zip(evals, decided.groups, strict=True)}
    for item, result in zip(compared, decided.scenarios, strict=True):
        test, verdict = Test.of(result), item.verdict
        verdict.comparison = test
        if result.decision == "regressed":
            verdict.outcome = "regressed"
            verdict.reasons.insert(0, _regression_reason(verdict, test))
        elif result.decision == "inconclusive":
            reason = _inconclusive_reason(test, single=len(compared) == 1)
            if verdict.outcome == "passed":
                verdict.outcome = "inconclusive"
                verdict.reasons.insert(0, reason)
            else:  # a broken threshold is what the scenario's first reason must say
                verdict.reasons.append(reason)
    suite = Test.of(decided.suite) if decided.suite is not None else None
    return suite, _OUTCOMES[decided.suite_decision], eval_outcomes


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
    reason = (
        f"inconclusive: pass rate {test.baseline.describe()} -> {test.candidate.describe()} is {why} "
        f"(p={test.p_value:.3g}, adjusted {test.p_adjusted:.3g})"
    )
    if test.replicas_needed is None:  # an interim look: the design says how many come next
        return reason
    return f"{reason}; about {_at_least(test.replicas_needed)} replicas would tell"


def _at_least(replicas: int) -> str:
    return f"{replicas}+" if replicas >= MAX_REPLICAS_HINT else str(replicas)


def decide(runs: Sequence[SpecRun], policy: Policy, look: Look | None = None) -> GateVerdict:
    """The verdict over all specs of one gate run (see the module docstring), at one `look` of adaptive
    replicas (default: a fixed design). At an interim look, `inconclusive` scenarios ask for more."""
    compared: list[_Compared] = []
    specs = [_spec_verdict(run, policy, compared) for run in runs]
    evals = [spec for run, spec in zip(runs, specs, strict=True) if not run.grows]
    suite, suite_outcome, eval_outcomes = _label(compared, evals, policy, look)
    for spec in specs:
        own: Outcome = "error" if spec.errors else "threshold_failed" if spec.reasons else "passed"
        own = _worst([own, eval_outcomes.get(spec.spec_id, "passed")])
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


def _label_eval(spec: SpecVerdict, cases: TestResult | None) -> Outcome:
    """An Eval's own outcome over its cases together: each case is a one-replica scenario, which alone can
    never show a significant drop, so its cases are also tested as a group of the family (the stratified
    test over them); `regressed`, with the reason first, when that drop is significant, else `passed`."""
    if cases is None or cases.decision != "regressed":
        return "passed"
    test = Test.of(cases)
    spec.reasons.insert(
        0,
        f"regressed: its cases' pass rate {test.baseline.describe()} -> {test.candidate.describe()}, "
        f"p={test.p_value:.3g} (adjusted {test.p_adjusted:.3g})",
    )
    return "regressed"


def exit_code(verdict: Outcome, specs: Sequence[SpecVerdict], inconclusive_blocking: bool) -> int:
    if verdict in ("regressed", "threshold_failed"):
        return exit_codes.FAILED
    if verdict == "error":
        refused_only = all(spec.refused for spec in specs if spec.outcome == "error")
        return exit_codes.INVALID_INPUT if refused_only else exit_codes.INFRASTRUCTURE
    if verdict == "inconclusive":
        return exit_codes.INCONCLUSIVE if inconclusive_blocking else exit_codes.PASSED
    return exit_codes.PASSED
