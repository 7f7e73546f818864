"""What an agent did to a Postgres service: the statements it sent and the rows it wrote, per table.

Statements come from the server's own statement log (`log_statement=all`, read from the container's
output since the agent started); row counts from `pg_stat_user_tables`, whose insert/update/delete
counters also see writes made inside functions and triggers. Keystone's own queries (fixtures before
the agent starts, checks after it ends) fall outside the window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..sandbox import Sandbox
from ..spec import Service
from .postgres import Rows, query

AUDIT_COMMAND = ["postgres", "-c", "log_statement=all"]
"""The service command that makes Postgres log every statement (official and local images alike)."""

COUNTS_QUERY = (
    "SELECT schemaname || '.' || relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables"
)
"""Rows inserted, updated or deleted so far, per table of the service's database (`write_counts` reads it;
a caller that runs it in a batch of its own reads the rows with `counted_writes`)."""
_STATEMENT = re.compile(r"(?:LOG|STATEMENT):\s+(?:statement|execute [^:]*):\s?(.*)$")
_LOG_LINE = re.compile(r"^\S+ \S+ \S+ \[\d+\]|^\d{4}-\d\d-\d\d")
_IDENT = r'(?:"[^"]+"|[A-Za-z_][\w$]*)(?:\s*\.\s*(?:"[^"]+"|[A-Za-z_][\w$]*))?'
_WRITES = re.compile(
    rf"\b(?:INSERT\s+INTO|UPDATE(?:\s+ONLY)?|DELETE\s+FROM(?:\s+ONLY)?|TRUNCATE(?:\s+TABLE)?(?:\s+ONLY)?"
    rf"|MERGE\s+INTO|COPY)\s+({_IDENT})",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class TableWrite:
    service: str
    table: str
    """Schema-qualified, e.g. `public.orders`."""
    rows: int
    statements: tuple[str, ...] = ()


def write_counts(sandbox: Sandbox, service: Service) -> dict[str, int]:
    """Rows inserted, updated or deleted so far, per table of the service's database."""
    return counted_writes(query(sandbox, service, COUNTS_QUERY))


def counted_writes(rows: Rows) -> dict[str, int]:
    """COUNTS_QUERY's rows as counts per table."""
    return {str(table): int(count or 0) for table, count in rows}


def statements_since(sandbox: Sandbox, service: Service, since: float) -> list[str]:
    """Every statement the server logged since `since`, multi-line statements joined back together."""
    statements: list[str] = []
    collecting = False
    for line in sandbox.service_logs(service.name, since).splitlines():
        match = _STATEMENT.search(line)
        if match:
            statements.append(match.group(1))
            collecting = True
        elif collecting and not _LOG_LINE.match(line):
            statements[-1] += "\n" + line.removeprefix("\t")
        else:
            collecting = False
    return statements


def _qualified(identifier: str) -> str:
    parts = [part.strip().strip('"') for part in identifier.split(".")]
    return ".".join(parts) if len(parts) == 2 else f"public.{parts[0]}"


_NOT_CODE = re.compile(r"'(?:[^']|'')*'|\$(\w*)\$.*?\$\1\$|--[^\n]*|/\*.*?\*/", re.DOTALL)
"""String literals (plain and dollar-quoted) and comments: text that only looks like SQL."""


def tables_written_by(statement: str) -> list[str]:
    """Schema-qualified tables a statement writes (INSERT, UPDATE, DELETE, TRUNCATE, MERGE, COPY ... FROM)."""
    statement = _NOT_CODE.sub("''", statement)
    tables = []
    for match in _WRITES.finditer(statement):
        keyword = match.group(0).split()[0].upper()
        if keyword == "COPY" and not re.search(r"\bFROM\b", statement[match.end() :], re.IGNORECASE):
            continue  # COPY ... TO reads
        tables.append(_qualified(match.group(1)))
    return list(dict.fromkeys(tables))


def table_writes(
    service: str, before: dict[str, int], after: dict[str, int], statements: list[str]
) -> list[TableWrite]:
    """Per table: rows written between the two counts, and the statements that name it."""
    by_table: dict[str, list[str]] = {}
    for statement in statements:
        for table in tables_written_by(statement):
            by_table.setdefault(table, []).append(statement)
    changed = {table for table, count in after.items() if count > before.get(table, 0)}
    return [
        TableWrite(service, table, after.get(table, 0) - before.get(table, 0), tuple(by_table.get(table, [])))
        for table in sorted(changed | set(by_table))
    ]
