"""The run's audit log: one event per command run through the sandbox (or, with `audit.commands`,
started by the agent), file written, database write or statement, HTTP call (through the network
gateway or received by a recording mock) and DNS lookup. Raw: the finished result is redacted as a whole."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..sandbox import ExecResult, WorkspaceDiff
from ..services import TableWrite
from ._execlog import ExecutedCommand
from ._network import HttpCall

AuditEvent = dict[str, Any]


def audit_events(
    command: str,
    run: ExecResult,
    diff: WorkspaceDiff,
    writes: list[TableWrite],
    statements: list[tuple[str, str]],
    http_calls: list[HttpCall],
    lookups: list[dict[str, Any]],
    agent_commands: Sequence[ExecutedCommand] = (),
) -> list[AuditEvent]:
    """`command` is the agent command Keystone ran (source `keystone`); `agent_commands` what the agent
    ran itself, from the command log (source `agent`)."""
    events: list[AuditEvent] = [
        {
            "type": "command",
            "source": "keystone",
            "command": command,
            "exit_code": run.exit_code,
            "duration_ms": run.duration_ms,
            "timed_out": run.timed_out,
        }
    ]
    events += [
        {
            "type": "command",
            "source": "agent",
            "command": executed.line,
            "argv": executed.argv,
            "cwd": executed.cwd,
            "pid": executed.pid,
            "ppid": executed.ppid,
            "ts": executed.ts,
        }
        for executed in agent_commands
    ]
    events += [{"type": "sql", "service": service, "statement": sql} for service, sql in statements]
    events += [{"type": "db_write", "service": w.service, "table": w.table, "rows": w.rows} for w in writes]
    events += [{"type": "http_call", **call, "path": str(call.get("path") or "")} for call in http_calls]
    events += [{"type": "dns", **lookup} for lookup in lookups]
    for change, paths in (("added", diff.added), ("modified", diff.modified), ("removed", diff.removed)):
        events += [{"type": "file_write", "path": path, "change": change} for path in paths]
    return events
