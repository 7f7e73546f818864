"""Fold replica results into scenario results and run metrics (statuses, pass rates, intervals, pass^k)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..analysis import judged, pass_hat_k, percentile, scenario_status, wilson_interval
from ..results import ReplicaResult, RunMetrics, RunOutcome, RunResults, ScenarioResult
from ._usage import mean_cost, priced, total_cost


def _representative(replicas: list[ReplicaResult]) -> ReplicaResult:
    """The replica a scenario shows: the first erroring, else the first failing, else the first."""
    for status in ("error", "fail"):
        for replica in replicas:
            if replica.status == status:
                return replica
    return replicas[0]


def aggregate_scenario(
    spec_id: str, scenario_id: str, parameters: dict[str, Any], replicas: list[ReplicaResult]
) -> ScenarioResult:
    replicas = sorted(replicas, key=lambda r: r.replica)
    shown = _representative(replicas)
    counts = judged(r.status for r in replicas)
    outcome = {field: getattr(shown, field) for field in RunOutcome.model_fields}
    outcome["composite_score"] = sum(r.composite_score for r in replicas) / len(replicas)
    outcome["cost"] = total_cost([r.cost for r in replicas])
    return ScenarioResult(
        **outcome,
        scenario_id=scenario_id,
        spec_id=spec_id,
        status=scenario_status([r.status for r in replicas]),
        parameters=parameters,
        replicas_total=len(replicas),
        replicas_passed=counts.passed,
        pass_rate=counts.rate,
        pass_rate_ci=wilson_interval(*counts),
        replicas=replicas,
        mean_cost_per_run_usd=mean_cost([r.cost for r in replicas]),
    )


def aggregate_run(
    *,
    spec_id: str,
    experiment_id: str,
    seed: int,
    scenarios: list[ScenarioResult],
    fingerprint: dict[str, Any],
    spec_file: str,
    k: int,
) -> RunResults:
    replicas = [r for s in scenarios for r in s.replicas]
    counts = judged(r.status for r in replicas)
    walls = [float(r.wall_ms) for r in replicas]
    per_scenario = [judged(r.status for r in s.replicas) for s in scenarios]
    hat_k = [pass_hat_k(passed, total, k) for passed, total in per_scenario if total > 0]
    costs = [r.cost for r in replicas]
    usage = [cost for cost in costs if cost is not None]
    known = priced(costs)
    tool_statuses = [e.get("status") for r in replicas for e in r.audit if e.get("type") == "tool_call"]
    metrics = RunMetrics(
        mean_tool_calls=sum(r.tool_calls for r in replicas) / len(replicas) if replicas else 0.0,
        tool_success_rate=(
            sum(status != "error" for status in tool_statuses) / len(tool_statuses) if tool_statuses else 0.0
        ),
        pass_rate=counts.rate,
        pass_rate_ci=wilson_interval(*counts),
        mean_wall_ms=sum(walls) / len(walls) if walls else 0.0,
        p95_wall_ms=percentile(walls, 95),
        side_effect_violations=sum(c.violated for r in replicas for c in r.forbidden_checks),
        pass_hat_k=sum(hat_k) / len(hat_k) if hat_k else 0.0,
        k=k,
        mean_boot_ms=sum(r.boot_ms for r in replicas) / len(replicas) if replicas else 0.0,
        mean_tokens=sum(c.input_tokens + c.output_tokens for c in usage) / len(usage) if usage else 0.0,
        total_cost_usd=sum(known),
        mean_cost_per_run_usd=sum(known) / len(known) if known else 0.0,
        runs_priced=len(known),
        unpriced_models=sorted({model for cost in usage for model in cost.unpriced_models}),
    )
    return RunResults(
        ran_at=datetime.now(UTC).isoformat(),
        spec_id=spec_id,
        experiment_id=experiment_id,
        seed=seed,
        total_scenarios=len(scenarios),
        passed=sum(s.status == "pass" for s in scenarios),
        failed=sum(s.status == "fail" for s in scenarios),
        flaky=sum(s.status == "flaky" for s in scenarios),
        errors=sum(s.status == "error" for s in scenarios),
        metrics=metrics,
        scenarios=scenarios,
        fingerprint=fingerprint,
        spec_file=spec_file,
    )
