"""What the experiment endpoints compute from stored records: RunResults so far, comparisons and
metrics. Pure functions of records, so they are the same whichever server process answers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from ..engine._aggregate import aggregate_run, aggregate_scenario
from ..engine._stats import fisher_exact_one_sided, holm_adjust, percentile
from ..results import ReplicaResult, RunResults, ScenarioResult
from ..store import ExperimentRecord, ReplicaRecord

ALPHA = 0.05
"""Significance level of a pass-rate regression (one-sided Fisher exact test, Holm-adjusted per scenario)."""
MIN_EFFECT = 0.05
"""A pass-rate drop smaller than this is never called a regression, however significant."""
UNFINISHED = ("failed", "cancelled", "interrupted")


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
    by_scenario: dict[str, list[ReplicaResult]] = defaultdict(list)
    for replica in replicas:
        by_scenario[replica.scenario_id].append(ReplicaResult.model_validate(replica.result))
    ended = record.status in UNFINISHED
    scenarios = []
    for cell in options.get("scenarios", []):
        scenario_id, parameters = cell["scenario_id"], cell["parameters"]
        done = by_scenario.get(scenario_id, [])
        if len(done) >= wanted:
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


def _judged(scenarios: Iterable[ScenarioResult]) -> tuple[int, int]:
    replicas = [r for s in scenarios for r in s.replicas if r.status != "error"]
    return sum(r.status == "pass" for r in replicas), len(replicas)


def _direction(delta: float, higher_is_better: bool) -> str:
    if abs(delta) < 1e-12:
        return "same"
    return "better" if (delta > 0) == higher_is_better else "worse"


def compare(baseline: RunResults, candidate: RunResults) -> dict[str, Any]:
    """Metric deltas, and whether the candidate regressed: its pass rate is lower by at least
    MIN_EFFECT with a one-sided Fisher p-value under ALPHA (overall, or for a scenario after Holm's
    correction). A drop that is not significant is reported as inconclusive, never as a regression."""
    base_pass, base_n = _judged(baseline.scenarios)
    cand_pass, cand_n = _judged(candidate.scenarios)
    overall_p = fisher_exact_one_sided(base_pass, base_n, cand_pass, cand_n)
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
                "p_value": overall_p if name == "pass_rate" else None,
            }
        )
    regressions = []
    base_rate, cand_rate = baseline.metrics.pass_rate, candidate.metrics.pass_rate
    if overall_p < ALPHA and base_rate - cand_rate >= MIN_EFFECT:
        regressions.append(f"pass_rate dropped from {base_rate:.2f} to {cand_rate:.2f} (p={overall_p:.3g})")
    scenarios = _compare_scenarios(baseline, candidate)
    for row in scenarios:
        if row["regressed"]:
            regressions.append(
                f"scenario {row['scenario_id']}: pass rate dropped from {row['baseline_pass_rate']:.2f} to "
                f"{row['candidate_pass_rate']:.2f} (adjusted p={row['p_value']:.3g})"
            )
    if regressions:
        summary = "regressed: " + "; ".join(regressions)
    elif cand_rate < base_rate:
        summary = (
            f"inconclusive: pass rate {base_rate:.2f} -> {cand_rate:.2f} is within noise (p={overall_p:.3g})"
        )
    else:
        summary = "no regression"
    return {
        "baseline_id": baseline.experiment_id,
        "candidate_id": candidate.experiment_id,
        "metrics": metrics,
        "regressed": bool(regressions),
        "regressions": regressions,
        "summary": summary,
        "scenarios": scenarios,
    }


def _compare_scenarios(baseline: RunResults, candidate: RunResults) -> list[dict[str, Any]]:
    before = {s.scenario_id: s for s in baseline.scenarios}
    after = {s.scenario_id: s for s in candidate.scenarios}
    shared = sorted(set(before) & set(after))
    counts = [(_judged([before[sid]]), _judged([after[sid]])) for sid in shared]
    raw = [fisher_exact_one_sided(bp, bn, cp, cn) for (bp, bn), (cp, cn) in counts]
    adjusted = holm_adjust(raw) if raw else []
    rows = []
    for sid, ((bp, bn), (cp, cn)), p in zip(shared, counts, adjusted, strict=True):
        base_rate = bp / bn if bn else None
        cand_rate = cp / cn if cn else None
        drop = (base_rate or 0.0) - (cand_rate or 0.0)
        rows.append(
            {
                "scenario_id": sid,
                "baseline_pass_rate": base_rate,
                "candidate_pass_rate": cand_rate,
                "p_value": p,
                "regressed": bool(bn and cn and p < ALPHA and drop >= MIN_EFFECT),
            }
        )
    return rows


# --- traces and metrics ----------------------------------------------------------------------------


def _is_tool_call(event: dict[str, Any]) -> bool:
    """A finished tool call: `traced` spans report a start and an end; count the end only."""
    return event.get("event_type") in ("tool_call", "tool_use") and event.get("phase") != "start"


def _duration(event: dict[str, Any]) -> float | None:
    value = event.get("duration_ms")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def trace_metrics(events: list[dict[str, Any]]) -> dict[str, Any]:
    calls = [e for e in events if _is_tool_call(e)]
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
    calls = [e for e in trace_events if _is_tool_call(e)]
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
