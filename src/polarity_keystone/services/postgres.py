"""PostgreSQL: readiness, connection URL, SQL execution for fixtures and `sql` checks."""

from __future__ import annotations

from ..sandbox._base import ExecResult, Sandbox
from ..spec._models import Service
from ._base import ExecProbe, LogLine, Readiness, ServiceKind

READY_MARKER = "keystone: postgres ready"


class SqlError(Exception):
    """Raised by `run_sql`/`query` when psql fails; carries psql's output for the run's evidence."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


class Postgres(ServiceKind):
    name = "postgres"
    default_port = 5432
    local_image = "postgres"
    images = frozenset({"postgres", "postgis", "pgvector"})

    def readiness(self, service: Service, local: bool) -> Readiness:
        if service.wait_for:
            return ExecProbe(service.wait_for)
        if local:
            return LogLine(READY_MARKER)
        # Probe TCP, not the socket: the official image's init phase runs a socket-only server first.
        return ExecProbe(f"pg_isready -q -h 127.0.0.1 -U {credentials(service)[0]}")

    def url(self, service: Service) -> str:
        user, password, db = credentials(service)
        auth = f"{user}:{password}@" if password else f"{user}@"
        return f"postgres://{auth}{service.name}:{self.port(service)}/{db}"

    def agent_env(self, service: Service) -> dict[str, str]:
        env = super().agent_env(service)
        env[f"{service.name.upper().replace('-', '_')}_URL"] = self.url(service)
        return env


def credentials(service: Service) -> tuple[str, str, str]:
    """(user, password, database) as the official image derives them from its env."""
    user = service.env.get("POSTGRES_USER", "postgres")
    return user, service.env.get("POSTGRES_PASSWORD", ""), service.env.get("POSTGRES_DB", user)


def _psql(service: Service, *args: str) -> list[str]:
    user, _, db = credentials(service)
    return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", user, "-d", db, *args]


_ENV_SQL_LIMIT = 100_000
"""Below this size a script travels in the exec's environment (one round trip); above, as a file."""


def run_sql(sandbox: Sandbox, service: Service, sql: str) -> ExecResult:
    """Run a script (a fixture) in one transaction; raises SqlError with psql's output on failure."""
    single = ["--single-transaction", "-f"]
    if len(sql.encode()) < _ENV_SQL_LIMIT:
        script = 'printf "%s" "$KEYSTONE_SQL" | exec "$@"'
        command = ["sh", "-c", script, "sh", *_psql(service, *single, "-")]
        result = sandbox.service_exec(service.name, command, timeout=300, env={"KEYSTONE_SQL": sql})
    else:
        path = "/tmp/keystone-fixture.sql"
        sandbox.service_put_file(service.name, path, sql.encode())
        result = sandbox.service_exec(service.name, _psql(service, *single, path), timeout=300)
    if result.exit_code != 0:
        raise SqlError(f"SQL on service {service.name!r} failed", (result.stderr or result.stdout).strip())
    return result


def query(sandbox: Sandbox, service: Service, sql: str) -> list[list[str | None]]:
    """Rows of a query as text (NULL as None), read through psql's unaligned output."""
    result = sandbox.service_exec(
        service.name,
        _psql(service, "-A", "-t", "-F", "\x1f", "-R", "\x1e", "-P", "null=\x1dNULL\x1d", "-c", sql),
    )
    if result.exit_code != 0:
        raise SqlError(f"query on service {service.name!r} failed", (result.stderr or result.stdout).strip())
    text = result.stdout.rstrip("\n")
    if not text:
        return []
    return [
        [None if cell == "\x1dNULL\x1d" else cell for cell in row.split("\x1f")]
        for row in text.split("\x1e")
        if row != ""
    ]
