"""A finished experiment with three scenarios (pass, fail, error), its replicas' sandboxes and their trace
events (a small span tree), put straight into a store: what the export tests read back over the API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from polarity_keystone.results import ReplicaResult, RunResults, ScenarioResult
from polarity_keystone.store import DEFAULT_PROJECT, ExperimentRecord, SandboxRecord, Store, TraceEventIndex

EXPERIMENT_ID = "exp-export"
STATUSES: dict[str, Literal["pass", "fail", "error"]] = {
    "s-pass": "pass",
    "s-fail": "fail",
    "s-error": "error",
}
SPANS: list[dict[str, Any]] = [
    {"event_type": "tool_call", "tool": "plan", "span_id": "sp-root", "root_span_id": "sp-root"},
    {
        "event_type": "tool_call",
        "tool": "search",
        "span_id": "sp-a",
        "parent_span_id": "sp-root",
        "root_span_id": "sp-root",
    },
    {
        "event_type": "llm_call",
        "tool": "anthropic.create",
        "span_id": "sp-b",
        "parent_span_id": "sp-root",
        "root_span_id": "sp-root",
        "metadata": {"gen_ai.agent.name": "refunds"},
    },
    {"event_type": "tool_call", "tool": "search", "agent": "refunds"},
]
"""The events each replica reports: three spans of one tree, then an event that is no span."""


def _index(event: dict[str, Any]) -> TraceEventIndex:
    return TraceEventIndex(f"tr-{event.get('span_id', 'none')}", event["event_type"], event["tool"])


def seed_experiment(store: Store, project_id: str = DEFAULT_PROJECT, spec_id: str = "export-spec") -> int:
    """The experiment, its sandboxes and their events; returns how many events were stored."""
    scenarios = [
        ScenarioResult(
            scenario_id=scenario_id,
            spec_id=spec_id,
            status=status,
            sandbox_id=f"sb-{scenario_id}",
            replicas=[ReplicaResult(replica=0, seed=1, status=status, sandbox_id=f"sb-{scenario_id}")],
        )
        for scenario_id, status in STATUSES.items()
    ]
    results = RunResults(
        ran_at="2026-01-01T00:00:00Z",
        spec_id=spec_id,
        experiment_id=EXPERIMENT_ID,
        seed=1,
        total_scenarios=3,
        passed=1,
        failed=1,
        errors=1,
        scenarios=scenarios,
    )
    now = datetime.now(UTC)
    store.add_experiment(
        ExperimentRecord(
            EXPERIMENT_ID,
            "export",
            spec_id,
            1,
            "completed",
            now,
            "key",
            results=results.model_dump(mode="json"),
            project_id=project_id,
        )
    )
    stored = 0
    for scenario_id in STATUSES:
        sandbox_id = f"sb-{scenario_id}"
        metadata = {"experiment_id": EXPERIMENT_ID}
        store.put_sandbox(
            SandboxRecord(sandbox_id, spec_id, "destroyed", "key", now, None, metadata, project_id=project_id)
        )
        stored += store.add_trace_events(sandbox_id, "key", SPANS, project_id=project_id, index=_index)
    return stored
