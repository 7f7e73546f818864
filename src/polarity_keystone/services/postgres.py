"""PostgreSQL: readiness, connection URL, SQL execution for fixtures and `sql` checks, row snapshots."""

from __future__ import annotations

import hashlib
import html
import json
import re

from ..sandbox import CommandSucceeds, ExecResult, LogLine, Readiness, Sandbox, SandboxError
from ..spec import Service
from ._base import ServiceKind, register_kind
from ._snapshots import ITEM_LIMIT, ServiceSnapshot

READY_MARKER = "keystone: postgres ready"


class SqlError(Exception):
    """Raised by `run_sql`/`query` when psql fails; carries psql's output for the run's evidence."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


@register_kind
class Postgres(ServiceKind):
    name = "postgres"
    default_port = 5432
    local_image = "postgres"

    def readiness(self, service: Service, local: bool) -> Readiness:
        if service.wait_for:
            return CommandSucceeds(service.wait_for)
        if local:
            return LogLine(READY_MARKER)
        # Probe TCP, not the socket: the official image's init phase runs a socket-only server first.
        return CommandSucceeds(f"pg_isready -q -h 127.0.0.1 -U {credentials(service)[0]}")

    def url(self, service: Service) -> str:
        user, password, db = credentials(service)
        auth = f"{user}:{password}@" if password else f"{user}@"
        return f"postgres://{auth}{service.name}:{self.port(service)}/{db}"

    def agent_env(self, service: Service) -> dict[str, str]:
        env = super().agent_env(service)
        env[f"{service.name.upper().replace('-', '_')}_URL"] = self.url(service)
        return env

    resettable = True

    def reset(self, sandbox: Sandbox, service: Service) -> None:
        """Every database dropped; the two a fresh server has (`postgres` and the service's own) created
        again, empty, for the owners they had. Roles and server settings are left: `state_digest` shows
        whether the agent changed them."""
        user, _, db = credentials(service)
        command = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", f"db={db}"]
        command += ["-h", "127.0.0.1", "-U", user, "-d", "template1", "-f", "-"]
        script = 'printf "%s" "$KEYSTONE_SQL" | exec "$@"'
        result = sandbox.service_exec(
            service.name, ["sh", "-c", script, "sh", *command], timeout=120, env={"KEYSTONE_SQL": _RESET}
        )
        if result.exit_code != 0:
            output = (result.stderr or result.stdout).strip()
            raise SandboxError(f"resetting Postgres service {service.name!r} failed: {output}")

    def state_digest(self, sandbox: Sandbox, service: Service) -> str:
        try:
            rows = query(sandbox, service, _STATE)
        except SqlError as exc:
            raise SandboxError(
                f"reading the state of Postgres service {service.name!r}: {exc.output}"
            ) from exc
        return hashlib.sha256("\n".join(str(row[0]) for row in rows).encode()).hexdigest()

    def snapshot(self, sandbox: Sandbox, service: Service) -> ServiceSnapshot:
        """Every row, keyed by table and primary key, the row as JSON."""
        snapshot = ServiceSnapshot()
        for table, primary_key, xml in query(sandbox, service, _ROWS):
            rows = [html.unescape(row) for row in _XML_ROW.findall(xml or "")]
            snapshot.truncated |= len(rows) > ITEM_LIMIT
            columns = [column for column in (primary_key or "").split(",") if column]
            for text in rows[:ITEM_LIMIT]:
                row = json.loads(text)
                if columns:
                    key = ", ".join(f"{column}={json.dumps(row.get(column))}" for column in columns)
                else:  # no primary key: a row is known by its content (added or removed, never changed)
                    key = "#" + hashlib.sha256(text.encode()).hexdigest()[:12]
                snapshot.items[f"{table}[{key}]"] = text
        return snapshot


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


_ROWS = f"""
SELECT n.nspname || '.' || c.relname,
  coalesce((SELECT string_agg(a.attname, ',' ORDER BY array_position(i.indkey::int2[], a.attnum))
            FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
            WHERE i.indrelid = c.oid AND i.indisprimary), ''),
  query_to_xml(format('SELECT row_to_json(t)::text AS r FROM %I.%I t LIMIT {ITEM_LIMIT + 1}',
                      n.nspname, c.relname), false, true, '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY 1
"""
_XML_ROW = re.compile(r"<r>(.*?)</r>", re.DOTALL)

_RESET = """
CREATE TEMP TABLE keystone_again AS
  SELECT format('CREATE DATABASE %I OWNER %I', datname, pg_get_userbyid(datdba)) AS statement
  FROM pg_database WHERE datname IN ('postgres', :'db');
SELECT format('DROP DATABASE %I WITH (FORCE)', datname) FROM pg_database WHERE NOT datistemplate
\\gexec
SELECT statement FROM keystone_again
\\gexec
"""
"""Run in `template1`: `\\gexec` sends each generated statement on its own, outside a transaction."""

_STATE = r"""
SELECT line FROM (
  SELECT 'database ' || datname || ' ' || pg_get_userbyid(datdba) FROM pg_database
  UNION ALL SELECT 'role ' || rolname || ' ' || rolsuper || rolcreatedb || rolcanlogin
    || coalesce(rolpassword, '') FROM pg_authid
  UNION ALL SELECT 'role setting ' || setrole || ' ' || setdatabase || ' ' || array_to_string(setconfig, ',')
    FROM pg_db_role_setting
  UNION ALL SELECT 'setting ' || name || '=' || setting FROM pg_settings
    WHERE source NOT IN ('default', 'override', 'environment variable', 'client', 'session')
  UNION ALL SELECT 'extension ' || extname || ' ' || extversion FROM pg_extension
  UNION ALL SELECT 'relation ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text
    || CASE WHEN c.relkind IN ('r', 'p', 'm') THEN ' ' || (xpath('/row/h/text()', query_to_xml(format(
         'SELECT md5(coalesce(string_agg(t::text, %L ORDER BY t::text), %L)) AS h FROM %I.%I t',
         E'\n', '', n.nspname, c.relname), false, true, '')))[1]::text
       WHEN c.relkind = 'S' THEN ' ' || coalesce(pg_sequence_last_value(c.oid)::text, '-')
       ELSE '' END
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
      AND c.relkind IN ('r', 'p', 'm', 'v', 'S', 'f')
  UNION ALL SELECT 'column ' || table_schema || '.' || table_name || '.' || column_name || ' ' || data_type
    || coalesce(' default ' || column_default, '') || ' ' || is_nullable FROM information_schema.columns
    WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
  UNION ALL SELECT 'routine ' || n.nspname || '.' || p.proname || ' ' || md5(p.prosrc)
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  UNION ALL SELECT 'trigger ' || tgname || ' ' || tgrelid::regclass::text
    FROM pg_trigger WHERE NOT tgisinternal
) AS state(line) ORDER BY line
"""
"""What an agent could leave behind in the service's database and server: databases, roles, settings
it persisted, extensions, every relation with a digest of its rows or its sequence's position, columns,
routines and triggers."""
