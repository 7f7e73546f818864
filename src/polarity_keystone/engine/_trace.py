"""The agent's own trace: tool calls it reports, read back after the run.

Inside a sandbox run by the engine, an agent appends trace events (the Keystone SDK's TraceEvent shape:
`{"event_type": "tool_call", "tool": "refund", "phase": "end", "status": "ok", "duration_ms": 12}`, or
any shape `normalise_event` reads), one JSON object per line, to the file named by KEYSTONE_TRACE_FILE.
It lives outside /workspace, so it is never part of the workspace diff. A `traced` span writes a `start`
and an `end` event: one call. Under a server, the agent may also report events over the API; they are
merged with the file's, each event once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._jsonl import json_objects
from ..sandbox import Sandbox
from ..scoring import AgentEvent, is_tool_call, merge_events, normalise_event

TRACE_FILE = "/tmp/keystone-trace.jsonl"
TraceEvent = AgentEvent

ReportedTrace = Callable[[str], list[dict[str, Any]]]
"""The events reported for a sandbox (by id) elsewhere than its trace file: the server's store."""


def read_trace(sandbox: Sandbox, reported: ReportedTrace | None = None) -> list[AgentEvent]:
    """The trace file's events, then those reported elsewhere, normalised and each once."""
    try:  # through the engine's archive API: no process started in the sandbox
        from_file = json_objects(sandbox.read_file(TRACE_FILE).decode("utf-8", errors="replace"))
    except (FileNotFoundError, IsADirectoryError):
        from_file = []  # reported nothing
    from_elsewhere = reported(sandbox.id) if reported is not None else []
    return merge_events(
        [normalise_event(event) for event in from_file],
        [normalise_event(event) for event in from_elsewhere],
    )


def tool_calls(events: list[AgentEvent]) -> list[AgentEvent]:
    """One event per tool call: every tool event except the `start` half of a span."""
    return [event for event in events if is_tool_call(event)]


def tool_call_events(calls: list[AgentEvent]) -> list[dict[str, Any]]:
    """Audit events for the tool calls (the first 500 characters of what the agent sent)."""
    return [
        {
            "type": "tool_call",
            "tool": call.get("tool"),
            "status": call.get("status"),
            "duration_ms": call.get("duration_ms"),
            "input": str(call["input"])[:500] if call.get("input") is not None else None,
        }
        for call in calls
    ]
