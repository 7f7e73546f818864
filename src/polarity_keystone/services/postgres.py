"""PostgreSQL: readiness, connection URL, SQL execution for fixtures and `sql` checks, row snapshots."""

from __future__ import annotations

import hashlib
import html
import json
import re
import shlex
from collections.abc import Sequence

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
        """The service's database dropped and created again, empty, for the owner it had, and any
        database a fresh server does not have dropped. Roles, settings and the `postgres` maintenance
        database are left: `state_digest` shows whether the agent changed them."""
        psql = _psql(service, "-v", f"db={credentials(service)[2]}", "-f", "-", database="template1")
        result = sandbox.service_exec(
            service.name, ["sh", "-c", _PIPED, "sh", *psql], timeout=120, env={"KEYSTONE_SQL": _RESET}
        )
        if result.exit_code != 0:
            output = (result.stderr or result.stdout).strip()
            raise SandboxError(f"resetting Postgres service {service.name!r} failed: {output}")

    def state_digest(self, sandbox: Sandbox, service: Service) -> str:
        """Over the service's database and `postgres` (both what a fresh server has), in one exec."""
        user, _, db = credentials(service)
        databases = list(dict.fromkeys((db, "postgres")))
        loop = 'for db in "$@"; do printf "%s" "$KEYSTONE_SQL" | psql -X -q -v ON_ERROR_STOP=1 -A -t '
        loop += f'-h 127.0.0.1 -U {shlex.quote(user)} -d "$db" -f - || exit 1; done'
        command = ["sh", "-c", loop, "sh", *databases]
        result = sandbox.service_exec(service.name, command, timeout=120, env={"KEYSTONE_SQL": _STATE})
        if result.exit_code != 0:
            output = (result.stderr or result.stdout).strip()
            raise SandboxError(f"reading the state of Postgres service {service.name!r}: {output}")
        return hashlib.sha256(result.stdout.encode()).hexdigest()

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


def _psql(service: Service, *args: str, database: str | None = None) -> list[str]:
    """psql as the service's user, on its own database unless `database` names another."""
    user, _, db = credentials(service)
    return [
        "psql",
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        "127.0.0.1",
        "-U",
        user,
        "-d",
        database or db,
        *args,
    ]


_PIPED = 'printf "%s" "$KEYSTONE_SQL" | exec "$@"'
"""`sh -c` that runs its arguments (psql reading `-f -`) with the script in KEYSTONE_SQL as its input."""


_ENV_SQL_LIMIT = 100_000
"""Below this size a script travels in the exec's environment (one round trip); above, as a file."""


def run_sql(sandbox: Sandbox, service: Service, sql: str) -> ExecResult:
    """Run a script (a fixture) in one transaction; raises SqlError with psql's output on failure."""
    single = ["--single-transaction", "-f"]
    if len(sql.encode()) < _ENV_SQL_LIMIT:
        command = ["sh", "-c", _PIPED, "sh", *_psql(service, *single, "-")]
        result = sandbox.service_exec(service.name, command, timeout=300, env={"KEYSTONE_SQL": sql})
    else:
        path = "/tmp/keystone-fixture.sql"
        sandbox.service_put_file(service.name, path, sql.encode())
        result = sandbox.service_exec(service.name, _psql(service, *single, path), timeout=300)
    if result.exit_code != 0:
        raise SqlError(f"SQL on service {service.name!r} failed", (result.stderr or result.stdout).strip())
    return result


Rows = list[list[str | None]]
_UNALIGNED = ("-A", "-t", "-F", "\x1f", "-R", "\x1e", "-P", "null=\x1dNULL\x1d")
"""psql's output for `query`: unaligned rows, cells and rows split by control characters, NULL marked."""


_QUERY_TIMEOUT_S = 30.0


def query(sandbox: Sandbox, service: Service, sql: str) -> Rows:
    """Rows of a query as text (NULL as None), read through psql's unaligned output."""
    result = sandbox.service_exec(
        service.name, _psql(service, *_UNALIGNED, "-c", sql), timeout=_QUERY_TIMEOUT_S
    )
    return _rows(service, result.exit_code, result.stdout, result.stderr)


_EACH_QUERY = """
t=$(mktemp -d) || exit 1
trap 'rm -rf "$t"' EXIT
for q in "$@"; do
  {psql} "$q" >"$t/out" 2>"$t/err"
  printf '%s\\n' "$?"
  od -An -v -tx1 "$t/out"; echo .
  od -An -v -tx1 "$t/err"; echo .
done
"""
"""Per query: psql's exit code on a line, then its stdout and its stderr, each as hex ending in a `.` line
(hex: the exec's output is read as text, and rows may hold any character)."""


def query_each(sandbox: Sandbox, service: Service, queries: Sequence[str]) -> list[Rows | SqlError] | None:
    """`query` of each of `queries`, in order, in one exec: each in its own psql session as `query` runs
    it, so a failing query fails alone, with psql's own message. None when the batch gave no readable
    answer (the exec failed or its output was cut): the caller then runs `query` one by one."""
    script = _EACH_QUERY.format(psql=shlex.join(_psql(service, *_UNALIGNED, "-c")))
    command = ["sh", "-c", script, "sh", *queries]
    result = sandbox.service_exec(service.name, command, timeout=_QUERY_TIMEOUT_S * len(queries))
    if result.exit_code != 0 or result.truncated:
        return None
    lines = result.stdout.splitlines()
    answers: list[Rows | SqlError] = []
    try:
        for _ in queries:
            exit_code = int(lines.pop(0))
            stdout, stderr = _unhex(lines), _unhex(lines)
            try:
                answers.append(_rows(service, exit_code, stdout, stderr))
            except SqlError as exc:
                answers.append(exc)
    except (IndexError, ValueError):
        return None
    return answers


def _unhex(lines: list[str]) -> str:
    """Consumes the hex lines up to the next `.` line; their bytes as text."""
    end = lines.index(".")
    data = bytes.fromhex("".join(lines[:end]))
    del lines[: end + 1]
    return data.decode("utf-8", errors="replace")


def _rows(service: Service, exit_code: int, stdout: str, stderr: str) -> Rows:
    if exit_code != 0:
        raise SqlError(f"query on service {service.name!r} failed", (stderr or stdout).strip())
    text = stdout.rstrip("\n")
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
  FROM pg_database WHERE datname = :'db';
SELECT format('DROP DATABASE %I WITH (FORCE)', datname) FROM pg_database
  WHERE NOT datistemplate AND (datname = :'db' OR datname <> 'postgres')
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
