"""Client-side scorers over a finished experiment's scenarios (`run_and_wait(scores=[...])`).

Each scenario is scored as a `Case` (its agent output, its parameters' `input` and `expected`), a few
scenarios at a time: judge scorers wait on a model, so they run on a small pool of threads. Each
score is appended to the scenario's `invariants` in the reference's shape (`{name, passed, score,
message, weight: 1.0}`); a skipped score is appended with `skipped=True` and its reason, never as a pass.

A failed client score fails its scenario: a `pass` or `flaky` scenario becomes `fail`, and the
experiment's `passed`/`failed`/`flaky` counts are recounted, so `results.passed` means what a reader
expects. A skipped score changes no verdict. An `error` scenario stays `error`. The run-level
`metrics` (pass rate over replicas, costs, timings) stay the server's: client scores judge scenarios,
not replicas. Nothing is written back to the server.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from ..results import InvariantResult, ScenarioResult
from ..scorers import Case, Score, Scorer
from ._models import ExperimentResults

SCORING_THREADS = 4
"""Scenarios scored at once: enough to overlap slow judge calls, few enough for a model's rate limit."""


def apply_client_scores(results: ExperimentResults, scorers: Sequence[Scorer]) -> ExperimentResults:
    """`results` with every scenario scored by every scorer (in the given order), verdicts and counts
    updated as the module says. The scenarios are changed in place and the same object is returned."""
    if not scorers or not results.scenarios:
        return results
    with ThreadPoolExecutor(max_workers=min(SCORING_THREADS, len(results.scenarios))) as pool:
        scored = list(pool.map(lambda s: _score_scenario(s, scorers), results.scenarios))
    for scenario, scores in zip(results.scenarios, scored, strict=True):
        scenario.invariants.extend(_as_invariant(score) for score in scores)
        if scenario.status in ("pass", "flaky") and any(score.failed for score in scores):
            scenario.status = "fail"
    _recount(results)
    return results


def _score_scenario(scenario: ScenarioResult, scorers: Sequence[Scorer]) -> list[Score]:
    case = Case.from_scenario(scenario)
    return [scorer.score(case) for scorer in scorers]


def _as_invariant(score: Score) -> InvariantResult:
    shape = score.as_invariant()
    if score.skipped:
        return InvariantResult(**shape, skipped=True, reason=score.message or "skipped")
    if not score.passed:
        return InvariantResult(**shape, reason=score.error or score.message)
    return InvariantResult(**shape)


def _recount(results: ExperimentResults) -> None:
    counts = Counter(scenario.status for scenario in results.scenarios)
    results.passed = counts["pass"]
    results.failed = counts["fail"]
    results.flaky = counts["flaky"]
    results.errors = counts["error"]
