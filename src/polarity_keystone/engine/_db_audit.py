"""Watch the Postgres services while the agent runs: the window opens just before the agent starts and
closes as soon as it ends, so Keystone's own fixtures and checks never count as the agent's writes."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field

from ..sandbox import Sandbox
from ..scoring import Prefetched
from ..services import TableWrite, kind_of, postgres_audit
from ..spec import Service, Spec


def needs_db_audit(spec: Spec) -> bool:
    return bool(spec.audit.db_writes or spec.forbidden.db_writes_outside is not None or spec.forbidden.sql)


def audited(service: Service) -> Service:
    """The service with statement logging on, when it is Postgres and its command allows adding it."""
    if kind_of(service).name != "postgres":
        return service
    if service.command is None:
        return service.model_copy(update={"command": postgres_audit.AUDIT_COMMAND})
    command = service.command.split() if isinstance(service.command, str) else list(service.command)
    if command[:1] == ["postgres"]:
        return service.model_copy(update={"command": [*command, *postgres_audit.AUDIT_COMMAND[1:]]})
    return service  # a custom entrypoint: row counts still work, statements are not logged


@dataclass
class DbAudit:
    """The window on every Postgres service: row counts at `start`, then, once the agent has ended, the
    statements logged since and the row counts again (`read_after`, `finish`).

    The closing count of a service the leading `sql` checks query runs first in those checks' own batch
    (`ahead`, answered in `finish`): one exec less per replica, and the same count, as nothing writes
    between the agent's end and that batch."""

    sandbox: Sandbox
    services: list[Service]
    counted_with_checks: set[str] = field(default_factory=set)
    """Services whose closing count comes with the leading checks' batch."""
    before: dict[str, dict[str, int]] = field(default_factory=dict)
    since: float = 0.0
    sent: dict[str, list[str]] = field(default_factory=dict)
    after: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def start(
        cls, sandbox: Sandbox, services: dict[str, Service], counted_with_checks: Collection[str] = ()
    ) -> DbAudit:
        audited = [s for s in services.values() if kind_of(s).name == "postgres"]
        audit = cls(sandbox, audited, {s.name for s in audited if s.name in counted_with_checks})
        audit.before = {s.name: postgres_audit.write_counts(sandbox, s) for s in audit.services}
        audit.since = time.time()
        return audit

    def read_after(self) -> None:
        """The statements each service logged since `start`; the closing counts not left to the checks."""
        for service in self.services:
            self.sent[service.name] = postgres_audit.statements_since(self.sandbox, service, self.since)
            if service.name not in self.counted_with_checks:
                self.after[service.name] = postgres_audit.write_counts(self.sandbox, service)

    def ahead(self) -> dict[str, list[str]]:
        """The count query, per service whose closing count rides with the checks' first batch."""
        return {name: [postgres_audit.COUNTS_QUERY] for name in self.counted_with_checks}

    def finish(self, first: Prefetched) -> tuple[list[TableWrite], list[tuple[str, str]]]:
        """(rows written per table, (service, statement) for every statement) since `start`; `first` is
        the checks' first fetch, run with `ahead` (a count it did not answer is read here)."""
        writes: list[TableWrite] = []
        statements: list[tuple[str, str]] = []
        for service in self.services:
            after = self.after.get(service.name)
            if after is None:
                rows = first.ahead.get((service.name, postgres_audit.COUNTS_QUERY))
                if isinstance(rows, list):
                    after = postgres_audit.counted_writes(rows)
                else:  # the batch gave no answer for it: read it alone
                    after = postgres_audit.write_counts(self.sandbox, service)
            sent = self.sent[service.name]
            writes += postgres_audit.table_writes(service.name, self.before[service.name], after, sent)
            statements += [(service.name, statement) for statement in sent]
        return writes, statements
