"""The agent's own trace: tool calls it reports, read back after the run.

Inside a sandbox run by the engine, an agent appends trace events (the Keystone SDK's TraceEvent shape:
`{"event_type": "tool_call", "tool": "refund", "phase": "end", "status": "ok", "duration_ms": 12}`), one
JSON object per line, to the file named by KEYSTONE_TRACE_FILE. It lives outside /workspace, so it is
never part of the workspace diff. A `traced` span writes a `start` and an `end` event: one call.
"""

from __future__ import annotations

from typing import Any

from .._jsonl import json_objects
from ..sandbox import Sandbox

TRACE_FILE = "/tmp/keystone-trace.jsonl"
TraceEvent = dict[str, Any]


def read_trace(sandbox: Sandbox) -> list[TraceEvent]:
    result = sandbox.exec(["cat", TRACE_FILE])
    if result.exit_code != 0:
        return []  # the agent reported nothing
    return json_objects(result.stdout)


def tool_calls(events: list[TraceEvent]) -> list[TraceEvent]:
    """One event per tool call: every tool event except the `start` half of a span."""
    return [
        event
        for event in events
        if event.get("event_type") in ("tool_call", "tool_use") and event.get("phase") != "start"
    ]


def tool_call_events(calls: list[TraceEvent]) -> list[dict[str, Any]]:
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
