"""The run's audit log: one event per command run through the sandbox, file written, database write
or statement, and HTTP call received by a recording mock; secret values redacted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..sandbox import ExecResult, WorkspaceDiff
from ..services.postgres_audit import TableWrite

AuditEvent = dict[str, Any]


def audit_events(
    command: str,
    run: ExecResult,
    diff: WorkspaceDiff,
    writes: list[TableWrite],
    statements: list[tuple[str, str]],
    http_calls: list[tuple[str, dict[str, Any]]],
    redact: Callable[[str], str],
) -> list[AuditEvent]:
    events: list[AuditEvent] = [
        {
            "type": "command",
            "command": redact(command),
            "exit_code": run.exit_code,
            "duration_ms": run.duration_ms,
            "timed_out": run.timed_out,
        }
    ]
    events += [{"type": "sql", "service": service, "statement": redact(sql)} for service, sql in statements]
    events += [{"type": "db_write", "service": w.service, "table": w.table, "rows": w.rows} for w in writes]
    events += [
        {
            "type": "http_call",
            "service": service,
            "method": request.get("method"),
            "path": redact(str(request.get("path", ""))),
            "status": request.get("status"),
        }
        for service, request in http_calls
    ]
    for change, paths in (("added", diff.added), ("modified", diff.modified), ("removed", diff.removed)):
        events += [{"type": "file_write", "path": path, "change": change} for path in paths]
    return events
