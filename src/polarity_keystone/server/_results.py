"""What the experiment endpoints compute from stored records: RunResults so far, comparisons and
metrics. Pure functions of records, so they are the same whichever server process answers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from ..analysis import Counts, RegressionPolicy, TestResult, decide_regressions, judged, percentile
from ..engine import aggregate_run, aggregate_scenario
from ..results import ReplicaResult, RunResults, ScenarioResult
from ..scoring import is_tool_call, normalise_event
from ..store import ExperimentRecord, ReplicaRecord

UNFINISHED = ("failed", "cancelled", "interrupted")


def planned_replicas(options: dict[str, Any]) -> dict[str, int]:
    """Replicas per scenario the experiment's plan asks for: `replicas` each, or more where it grew."""
    grown = options.get("scenario_replicas", {})
    every = int(options.get("replicas") or 1)
    return {
        cell["scenario_id"]: int(grown.get(cell["scenario_id"], every))
        for cell in options.get("scenarios", [])
    }


def results_so_far(record: ExperimentRecord, replicas: Iterable[ReplicaRecord]) -> dict[str, Any]:
    """RunResults JSON: the final one once stored, else built from the replicas stored so far.

    While the experiment runs, a scenario counts once all its replicas finished; `total_scenarios` is
    the full count, so clients see it is not done. Once it ended without finishing (failed,
    interrupted), every unfinished scenario is an `error`, so the counts add up to the total.
    """
    if record.results is not None:
        return record.results
    options = record.options
    wanted = int(options.get("replicas") or 1)
    planned = planned_replicas(options)
    by_scenario: dict[str, list[ReplicaResult]] = defaultdict(list)
    for replica in replicas:
        by_scenario[replica.scenario_id].append(ReplicaResult.model_validate(replica.result))
    ended = record.status in UNFINISHED
    scenarios = []
    for cell in options.get("scenarios", []):
        scenario_id, parameters = cell["scenario_id"], cell["parameters"]
        done = by_scenario.get(scenario_id, [])
        if len(done) >= planned[scenario_id]:
            scenarios.append(aggregate_scenario(record.spec_id, scenario_id, parameters, done))
        elif ended:
            scenarios.append(_unfinished(record, scenario_id, parameters, done))
    results = aggregate_run(
        spec_id=record.spec_id,
        experiment_id=record.id,
        seed=int(options.get("seed") or 0),
        scenarios=scenarios,
        fingerprint={},
        spec_file="",
        k=wanted,
    )
    results.total_scenarios = len(options.get("scenarios", []))
    return results.model_dump(mode="json")


def _unfinished(
    record: ExperimentRecord, scenario_id: str, parameters: dict[str, Any], done: list[ReplicaResult]
) -> ScenarioResult:
    reason = record.error or f"the experiment is {record.status}"
    return ScenarioResult(
        scenario_id=scenario_id,
        spec_id=record.spec_id,
        status="error",
        parameters=parameters,
        error=f"{len(done)} of {record.options.get('replicas') or 1} replicas finished: {reason}",
        replicas_total=len(done),
        replicas_passed=sum(r.status == "pass" for r in done),
        replicas=sorted(done, key=lambda r: r.replica),
    )


# --- comparison ------------------------------------------------------------------------------------

_METRICS = (
    # name, higher is better
    ("pass_rate", True),
    ("mean_wall_ms", False),
    ("p95_wall_ms", False),
    ("mean_tool_calls", False),
    ("total_cost_usd", False),
    ("mean_cost_per_run_usd", False),
    ("tool_success_rate", True),
    ("side_effect_violations", False),
)


def _direction(delta: float, higher_is_better: bool) -> str:
    if abs(delta) < 1e-12:
        return "same"
    return "better" if (delta > 0) == higher_is_better else "worse"


def _counts(baseline: ScenarioResult, candidate: ScenarioResult) -> Counts:
    """The judged replicas of a scenario in both runs."""
    return Counts(*judged(r.status for r in baseline.replicas), *judged(r.status for r in candidate.replicas))


def _rate(passed: int, total: int) -> float | None:
    return passed / total if total else None


def _rates(counts: Counts) -> str:
    base_passed, base_total, cand_passed, cand_total = counts
    return f"from {base_passed / base_total:.2f} to {cand_passed / cand_total:.2f}"


def _p(result: TestResult) -> str:
    return f"p={result.p_value:.3g}, adjusted {result.p_adjusted:.3g}"


def compare(baseline: RunResults, candidate: RunResults, policy: RegressionPolicy) -> dict[str, Any]:
    """Metric deltas, and the regression decision of `analysis` (the one `ks gate` makes) for every
    scenario both runs have and for the suite. A drop that is not significant is inconclusive, never a
    regression; scenarios that cannot be tested are `untested` and left out of the family."""
    before = {s.scenario_id: s for s in baseline.scenarios}
    shared = [s for s in candidate.scenarios if s.scenario_id in before]
    counts = {s.scenario_id: _counts(before[s.scenario_id], s) for s in shared}
    # A scenario the candidate could not evaluate, or without verdicts in a run, cannot be tested.
    tested = {s.scenario_id: counts[s.scenario_id] for s in shared if s.status != "error"}
    tested = {sid: c for sid, c in tested.items() if c.comparable}
    decided = decide_regressions(list(tested.values()), policy)
    results = dict(zip(tested, decided.scenarios, strict=True))
    suite = decided.suite
    regressions = (
        [f"pass_rate dropped {_rates(suite.counts)} ({_p(suite)})"]
        if suite and suite.decision == "regressed"
        else []
    )
    regressions += [
        f"scenario {sid}: pass rate dropped {_rates(r.counts)} ({_p(r)})"
        for sid, r in results.items()
        if r.decision == "regressed"
    ]
    return {
        "baseline_id": baseline.experiment_id,
        "candidate_id": candidate.experiment_id,
        "policy": {"alpha": policy.alpha, "correction": policy.correction, "min_effect": policy.min_effect},
        "metrics": _metric_deltas(baseline, candidate, suite),
        "regressed": bool(regressions),
        "regressions": regressions,
        "summary": _summary(regressions, suite, results),
        "suite": _suite_row(suite) if suite is not None else None,
        "scenarios": [
            _scenario_row(s.scenario_id, counts[s.scenario_id], results.get(s.scenario_id)) for s in shared
        ],
    }


def _metric_deltas(
    baseline: RunResults, candidate: RunResults, suite: TestResult | None
) -> list[dict[str, Any]]:
    metrics = []
    for name, higher_is_better in _METRICS:
        before = float(getattr(baseline.metrics, name))
        after = float(getattr(candidate.metrics, name))
        metrics.append(
            {
                "name": name,
                "baseline": before,
                "candidate": after,
                "delta": after - before,
                "direction": _direction(after - before, higher_is_better),
                "p_value": suite.p_value if name == "pass_rate" and suite is not None else None,
            }
        )
    return metrics


def _summary(regressions: list[str], suite: TestResult | None, results: dict[str, TestResult]) -> str:
    if regressions:
        return "regressed: " + "; ".join(regressions)
    if suite is None:
        return "no scenario could be compared"
    if suite.decision == "inconclusive":
        return (
            f"inconclusive: pass rate {_rates(suite.counts)} is not significant ({_p(suite)}); about "
            f"{suite.replicas_needed} replicas per scenario would tell"
        )
    doubtful = [sid for sid, r in results.items() if r.decision == "inconclusive"]
    warning = f"; inconclusive alone: {', '.join(doubtful)}" if doubtful else ""
    if suite.decision == "improved":
        return f"improved: pass rate {_rates(suite.counts)} ({_p(suite)}){warning}"
    return f"no regression{warning}"


def _suite_row(suite: TestResult) -> dict[str, Any]:
    base_passed, base_total, cand_passed, cand_total = suite.counts
    return {
        "baseline_pass_rate": base_passed / base_total,
        "candidate_pass_rate": cand_passed / cand_total,
        "drop": suite.drop,
        "p_value": suite.p_value,
        "p_adjusted": suite.p_adjusted,
        "decision": suite.decision,
        "replicas_needed": suite.replicas_needed,
    }


def _scenario_row(scenario_id: str, counts: Counts, result: TestResult | None) -> dict[str, Any]:
    return {
        "scenario_id": scenario_id,
        "baseline_pass_rate": _rate(counts.base_passed, counts.base_total),
        "candidate_pass_rate": _rate(counts.cand_passed, counts.cand_total),
        "p_value": result.p_value if result else None,
        "p_adjusted": result.p_adjusted if result else None,
        "decision": result.decision if result else "untested",
        "replicas_needed": result.replicas_needed if result else None,
        "regressed": result is not None and result.decision == "regressed",
    }


# --- traces and metrics ----------------------------------------------------------------------------


def _tool_calls(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The finished tool calls among stored events, in whatever shape the agent reported them."""
    return [event for event in map(normalise_event, events) if is_tool_call(event)]


def _duration(event: dict[str, Any]) -> float | None:
    value = event.get("duration_ms")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def trace_metrics(events: list[dict[str, Any]]) -> dict[str, Any]:
    calls = _tool_calls(events)
    durations = [d for d in map(_duration, calls) if d is not None]
    ok = sum(e.get("status") != "error" for e in calls)
    return {
        "total_tool_calls": len(calls),
        "tool_success_rate": ok / len(calls) if calls else 0.0,
        "mean_duration_ms": sum(durations) / len(durations) if durations else 0.0,
        "p95_duration_ms": percentile(durations, 95),
        "tool_breakdown": tool_breakdown(calls),
    }


def tool_breakdown(calls: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    by_tool: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in calls:
        by_tool[str(event.get("tool") or "unknown")].append(event)
    breakdown = {}
    for tool, items in sorted(by_tool.items()):
        durations = [d for d in map(_duration, items) if d is not None]
        breakdown[tool] = {
            "count": len(items),
            "mean_ms": sum(durations) / len(durations) if durations else 0.0,
            "error_rate": sum(e.get("status") == "error" for e in items) / len(items),
        }
    return breakdown


def experiment_metrics(
    record: ExperimentRecord,
    results: RunResults,
    trace_events: list[dict[str, Any]],
    history: list[ExperimentRecord],
) -> dict[str, Any]:
    """`GET /v1/metrics/experiments/{id}`: a summary, tool calls reported by the agents' traces, and the
    pass-rate and cost trends over the spec's finished experiments (oldest first)."""
    replicas = [r for s in results.scenarios for r in s.replicas]
    calls = _tool_calls(trace_events)
    m = results.metrics
    total_tool_calls = len(calls) or sum(r.tool_calls for r in replicas)
    trend = [h for h in sorted(history, key=lambda h: h.created_at) if h.results is not None]
    return {
        "experiment_id": record.id,
        "summary": {
            "total_runs": len(replicas),
            "pass_rate": m.pass_rate,
            "total_cost_usd": m.total_cost_usd,
            "mean_cost_per_run_usd": m.mean_cost_per_run_usd,
            "mean_wall_ms": m.mean_wall_ms,
            "p95_wall_ms": m.p95_wall_ms,
            "total_tool_calls": total_tool_calls,
            "tool_success_rate": trace_metrics(trace_events)["tool_success_rate"]
            if calls
            else m.tool_success_rate,
        },
        "tool_breakdown": tool_breakdown(calls),
        "cost_trend": [
            {
                "run_id": h.id,
                "cost_usd": (h.results or {}).get("metrics", {}).get("total_cost_usd", 0.0),
                "ts": h.finished_at,
            }
            for h in trend
        ],
        "pass_rate_trend": [
            {
                "run_id": h.id,
                "pass_rate": (h.results or {}).get("metrics", {}).get("pass_rate", 0.0),
                "ts": h.finished_at,
            }
            for h in trend
        ],
    }
