"""What the replica page shows of one replica: the replica as the experiment's results carry it (the same
JSON the API serves), its audit events narrowed to the kinds asked for, its sandbox's trace events with
the fields a reader looks for, and its output cut to a size a page can hold."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ...scoring import normalise_event
from ...store import NotFound, Store

OUTPUT_LIMIT = 64 * 1024
"""Characters of stdout and of stderr shown: the end of each, where a failure usually is."""


@dataclass(frozen=True)
class Output:
    text: str
    cut: int
    """How many characters before `text` are not shown."""

    @classmethod
    def tail(cls, text: str) -> Output:
        cut = max(0, len(text) - OUTPUT_LIMIT)
        return cls(text[cut:], cut)


@dataclass(frozen=True)
class TraceRow:
    event_type: str
    name: str
    model: str
    input_tokens: int | None
    output_tokens: int | None
    duration_ms: float | None
    status: str
    raw: str


@dataclass(frozen=True)
class ReplicaView:
    scenario: dict[str, Any]
    replica: dict[str, Any]
    audit_kinds: list[str]
    shown_kinds: list[str]
    trace: list[TraceRow]
    model_calls: list[TraceRow]
    stdout: Output
    stderr: Output


def find_replica(
    results: dict[str, Any], scenario_id: str, index: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The scenario and its replica `index` from the results; NotFound (the 404 page) when the experiment
    has no such scenario, or has not finished that replica yet."""
    scenario = next((s for s in results["scenarios"] if s["scenario_id"] == scenario_id), None)
    if scenario is None:
        raise NotFound(f"experiment {results['experiment_id']!r} has no scenario {scenario_id!r} (yet)")
    replica = next((r for r in scenario["replicas"] if r["replica"] == index), None)
    if replica is None:
        raise NotFound(
            f"scenario {scenario_id!r} of experiment {results['experiment_id']!r} has no finished replica "
            f"{index} (yet)"
        )
    return scenario, replica


def trace_rows(store: Store, project_id: str, sandbox_id: str) -> list[TraceRow]:
    """The trace events the replica's agent reported, if its sandbox is the project's (another project's
    sandbox is as absent as a missing one)."""
    try:
        sandbox = store.get_sandbox(sandbox_id)
    except NotFound:
        return []
    if sandbox.project_id != project_id:
        return []
    return [_trace_row(event) for event in store.trace_events(sandbox_id)]


def _trace_row(event: dict[str, Any]) -> TraceRow:
    normal = normalise_event(event)
    return TraceRow(
        event_type=normal["event_type"],
        name=normal["tool"],
        model=normal["model"] or "",
        input_tokens=normal.get("input_tokens"),
        output_tokens=normal.get("output_tokens"),
        duration_ms=normal["duration_ms"],
        status=normal["status"] or "",
        raw=compact(event),
    )


def model_call_rows(recordings: dict[str, list[dict[str, Any]]]) -> list[TraceRow]:
    """The calls the replica's `type: llm` services answered, in order, from its recordings: the one
    record of an agent's model calls when it could not report to this server."""
    return [
        _trace_row(
            {
                "event_type": "llm_call",
                "tool": ", ".join(str(call.get("name")) for call in exchange.get("tool_calls") or []),
                "model": exchange.get("model"),
                "usage": exchange.get("usage") or {},
                "duration_ms": exchange.get("latency_ms"),
                "status": "ok" if _answered(exchange.get("status")) else "error",
                "service": service,
                "call": exchange.get("call"),
            }
        )
        for service, exchanges in recordings.items()
        for exchange in exchanges
    ]


def _answered(status: Any) -> bool:
    return isinstance(status, int) and status < 400


def compact(value: Any) -> str:
    """A value as one line of JSON (escaped by the template like any text)."""
    return json.dumps(value, sort_keys=True, default=str, separators=(", ", ": "))


def audit_kinds(audit: list[dict[str, Any]]) -> list[str]:
    return sorted({str(event.get("type", "")) for event in audit})


def replica_view(
    store: Store,
    project_id: str,
    results: dict[str, Any],
    scenario_id: str,
    index: int,
    kinds: list[str],
) -> ReplicaView:
    scenario, replica = find_replica(results, scenario_id, index)
    present = audit_kinds(replica["audit"])
    return ReplicaView(
        scenario=scenario,
        replica=replica,
        audit_kinds=present,
        shown_kinds=[kind for kind in present if kind in kinds] or present,
        trace=trace_rows(store, project_id, replica["sandbox_id"]) if replica["sandbox_id"] else [],
        model_calls=model_call_rows(replica["recordings"]),
        stdout=Output.tail(replica["agent_output"]),
        stderr=Output.tail(replica["agent_stderr"]),
    )
