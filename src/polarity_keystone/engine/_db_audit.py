"""Watch the Postgres services while the agent runs: the window opens just before the agent starts and
closes as soon as it ends, so Keystone's own fixtures and checks never count as the agent's writes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..sandbox import Sandbox
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
    sandbox: Sandbox
    services: list[Service]
    before: dict[str, dict[str, int]] = field(default_factory=dict)
    since: float = 0.0

    @classmethod
    def start(cls, sandbox: Sandbox, services: dict[str, Service]) -> DbAudit:
        audit = cls(sandbox, [s for s in services.values() if kind_of(s).name == "postgres"])
        audit.before = {s.name: postgres_audit.write_counts(sandbox, s) for s in audit.services}
        audit.since = time.time()
        return audit

    def finish(self) -> tuple[list[TableWrite], list[tuple[str, str]]]:
        """(rows written per table, (service, statement) for every statement) since `start`."""
        writes: list[TableWrite] = []
        statements: list[tuple[str, str]] = []
        for service in self.services:
            sent = postgres_audit.statements_since(self.sandbox, service, self.since)
            after = postgres_audit.write_counts(self.sandbox, service)
            writes += postgres_audit.table_writes(service.name, self.before[service.name], after, sent)
            statements += [(service.name, statement) for statement in sent]
        return writes, statements
