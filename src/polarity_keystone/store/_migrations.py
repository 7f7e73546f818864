"""Numbered schema migrations, applied when a store opens and recorded in `schema_migrations`.

Each migration is a list of statements shared by both dialects; `{serial_id}`, `{json}`, `{bytes}` and
`{timestamp}` stand for the column types that differ. Migrations run in one transaction under a lock, so
two servers opening the same database at once apply each migration exactly once. Add new ones at the
end; never edit one that has shipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ._base import StoreError
from ._codec import timestamp
from ._dialect import Dialect, Session

MIGRATION_LOCK = 0x4B53_0001
"""The lock key held while migrating (Postgres advisory lock; SQLite write transactions exclude each
other anyway)."""


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial schema",
        (
            """CREATE TABLE api_keys (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                prefix TEXT NOT NULL,
                key_hash TEXT NOT NULL UNIQUE,
                kind TEXT NOT NULL,
                sandbox_id TEXT,
                created_at {timestamp} NOT NULL,
                revoked BOOLEAN NOT NULL DEFAULT FALSE
            )""",
            """CREATE TABLE specs (
                id TEXT NOT NULL,
                version INTEGER NOT NULL,
                yaml TEXT NOT NULL,
                sha256 TEXT NOT NULL,
                created_at {timestamp} NOT NULL,
                deleted BOOLEAN NOT NULL DEFAULT FALSE,
                PRIMARY KEY (id, version)
            )""",
            """CREATE TABLE experiments (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                spec_id TEXT NOT NULL,
                spec_version INTEGER NOT NULL,
                status TEXT NOT NULL,
                created_at {timestamp} NOT NULL,
                owner TEXT NOT NULL,
                metadata {json} NOT NULL,
                options {json} NOT NULL,
                progress {json} NOT NULL,
                results {json},
                error TEXT,
                started_at {timestamp},
                finished_at {timestamp}
            )""",
            "CREATE INDEX experiments_newest ON experiments (created_at, id)",
            "CREATE INDEX experiments_status ON experiments (status)",
            """CREATE TABLE replicas (
                experiment_id TEXT NOT NULL,
                scenario_id TEXT NOT NULL,
                replica_index INTEGER NOT NULL,
                result {json} NOT NULL,
                created_at {timestamp} NOT NULL,
                PRIMARY KEY (experiment_id, scenario_id, replica_index)
            )""",
            """CREATE TABLE sandboxes (
                id TEXT PRIMARY KEY,
                spec_id TEXT NOT NULL,
                state TEXT NOT NULL,
                owner TEXT NOT NULL,
                created_at {timestamp} NOT NULL,
                expires_at {timestamp},
                metadata {json} NOT NULL,
                info {json} NOT NULL
            )""",
            "CREATE INDEX sandboxes_owner ON sandboxes (owner)",
            """CREATE TABLE trace_events (
                id {serial_id},
                sandbox_id TEXT,
                owner TEXT NOT NULL,
                data {json} NOT NULL,
                created_at {timestamp} NOT NULL
            )""",
            "CREATE INDEX trace_events_sandbox ON trace_events (sandbox_id, id)",
            """CREATE TABLE events (
                id {serial_id},
                stream TEXT NOT NULL,
                type TEXT NOT NULL,
                data {json} NOT NULL,
                created_at {timestamp} NOT NULL
            )""",
            "CREATE INDEX events_stream ON events (stream, id)",
            """CREATE TABLE idempotency (
                owner TEXT NOT NULL,
                key TEXT NOT NULL,
                method TEXT NOT NULL,
                path TEXT NOT NULL,
                body_hash TEXT NOT NULL,
                state TEXT NOT NULL,
                created_at {timestamp} NOT NULL,
                status_code INTEGER,
                response_body {bytes},
                content_type TEXT,
                PRIMARY KEY (owner, key)
            )""",
            "CREATE INDEX idempotency_created ON idempotency (created_at)",
        ),
    ),
)


def migrate(session: Session, dialect: Dialect, now: datetime) -> list[int]:
    """Apply the migrations this database lacks; returns their versions. Refuses a database migrated
    by a newer Keystone, whose schema this one does not know."""
    session.lock(MIGRATION_LOCK)
    session.run(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at {timestamp} NOT NULL)".format(
            **dialect.column_types
        )
    )
    row = session.one("SELECT MAX(version) AS version FROM schema_migrations")
    current = row["version"] if row and row["version"] is not None else 0
    known = MIGRATIONS[-1].version
    if current > known:
        raise StoreError(
            f"the database's schema is at version {current}, newer than this Keystone knows ({known}); "
            "upgrade Keystone to use it"
        )
    pending = [migration for migration in MIGRATIONS if migration.version > current]
    for migration in pending:
        for statement in migration.statements:
            session.run(statement.format(**dialect.column_types))
        session.run(
            "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.description, timestamp(now)),
        )
    return [migration.version for migration in pending]
