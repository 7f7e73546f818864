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
    Migration(
        2,
        "projects: every key and resource belongs to one; spec ids are per project",
        (
            """CREATE TABLE projects (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                created_at {timestamp} NOT NULL
            )""",
            "INSERT INTO projects (id, name, created_at) "
            "VALUES ('default', 'default', '1970-01-01T00:00:00.000000+00:00')",
            "ALTER TABLE api_keys ADD COLUMN project_id TEXT NOT NULL DEFAULT 'default'",
            "ALTER TABLE api_keys ADD COLUMN admin BOOLEAN NOT NULL DEFAULT FALSE",
            """CREATE TABLE project_specs (
                project_id TEXT NOT NULL,
                id TEXT NOT NULL,
                version INTEGER NOT NULL,
                yaml TEXT NOT NULL,
                sha256 TEXT NOT NULL,
                created_at {timestamp} NOT NULL,
                deleted BOOLEAN NOT NULL DEFAULT FALSE,
                PRIMARY KEY (project_id, id, version)
            )""",
            "INSERT INTO project_specs (project_id, id, version, yaml, sha256, created_at, deleted) "
            "SELECT 'default', id, version, yaml, sha256, created_at, deleted FROM specs",
            "DROP TABLE specs",
            "ALTER TABLE project_specs RENAME TO specs",
            "ALTER TABLE experiments ADD COLUMN project_id TEXT NOT NULL DEFAULT 'default'",
            "CREATE INDEX experiments_project_newest ON experiments (project_id, created_at, id)",
            "ALTER TABLE sandboxes ADD COLUMN project_id TEXT NOT NULL DEFAULT 'default'",
            "CREATE INDEX sandboxes_project ON sandboxes (project_id)",
        ),
    ),
    Migration(
        3,
        "webhook subscriptions of a project, and the log of their deliveries",
        (
            """CREATE TABLE webhooks (
                id TEXT PRIMARY KEY,
                project_id TEXT NOT NULL,
                url TEXT NOT NULL,
                events {json} NOT NULL,
                secret TEXT NOT NULL,
                created_at {timestamp} NOT NULL
            )""",
            "CREATE INDEX webhooks_project ON webhooks (project_id, created_at, id)",
            """CREATE TABLE webhook_deliveries (
                id TEXT PRIMARY KEY,
                webhook_id TEXT NOT NULL,
                event_id TEXT NOT NULL,
                event_type TEXT NOT NULL,
                state TEXT NOT NULL,
                attempts INTEGER NOT NULL,
                status_code INTEGER,
                error TEXT,
                created_at {timestamp} NOT NULL,
                updated_at {timestamp} NOT NULL
            )""",
            "CREATE INDEX webhook_deliveries_newest ON webhook_deliveries (webhook_id, created_at, id)",
        ),
    ),
    Migration(
        4,
        "agent snapshots: content-addressed agent bundles, versioned per name, with movable tags",
        (
            """CREATE TABLE agent_snapshots (
                project_id TEXT NOT NULL,
                id TEXT NOT NULL,
                name TEXT NOT NULL,
                version INTEGER NOT NULL,
                digest TEXT NOT NULL,
                size_bytes BIGINT NOT NULL,
                entrypoint {json} NOT NULL,
                runtime TEXT,
                auth {json} NOT NULL,
                created_at {timestamp} NOT NULL,
                deleted BOOLEAN NOT NULL DEFAULT FALSE,
                PRIMARY KEY (project_id, name, version)
            )""",
            # Deleted versions stay as tombstones, so their numbers are never given again; the same bytes
            # uploaded after a delete are a new live row.
            "CREATE UNIQUE INDEX agent_snapshots_live ON agent_snapshots (project_id, id) WHERE NOT deleted",
            """CREATE TABLE agent_tags (
                project_id TEXT NOT NULL,
                name TEXT NOT NULL,
                tag TEXT NOT NULL,
                version INTEGER NOT NULL,
                PRIMARY KEY (project_id, name, tag)
            )""",
        ),
    ),
    Migration(
        5,
        "blob owners: the projects that uploaded each blob, and may name it in a bundle; their usage",
        (
            """CREATE TABLE blob_owners (
                project_id TEXT NOT NULL,
                sha256 TEXT NOT NULL,
                size BIGINT NOT NULL,
                created_at {timestamp} NOT NULL,
                PRIMARY KEY (project_id, sha256)
            )""",
            """CREATE TABLE blob_usage (
                project_id TEXT PRIMARY KEY,
                bytes BIGINT NOT NULL
            )""",
        ),
    ),
    Migration(
        6,
        "blob garbage collection: the owners of a blob looked up by digest; leases one server holds at once",
        (
            "CREATE INDEX blob_owners_sha256 ON blob_owners (sha256)",
            """CREATE TABLE leases (
                name TEXT PRIMARY KEY,
                holder TEXT NOT NULL,
                expires_at {timestamp} NOT NULL
            )""",
        ),
    ),
    Migration(
        7,
        "trace events owned by a project (reported without a sandbox too), grouped by trace id, "
        "filterable by event type and tool",
        (
            "ALTER TABLE trace_events ADD COLUMN project_id TEXT NOT NULL DEFAULT 'default'",
            "UPDATE trace_events SET project_id = COALESCE((SELECT sandboxes.project_id FROM sandboxes "
            "WHERE sandboxes.id = trace_events.sandbox_id), 'default')",
            "ALTER TABLE trace_events ADD COLUMN trace_id TEXT",
            "ALTER TABLE trace_events ADD COLUMN event_type TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE trace_events ADD COLUMN tool TEXT NOT NULL DEFAULT ''",
            "CREATE INDEX trace_events_project ON trace_events (project_id, id)",
            "CREATE INDEX trace_events_trace ON trace_events (project_id, trace_id, id)",
        ),
    ),
    Migration(
        8,
        "datasets of a project, their entries stamped with the version that added them, and the entries' "
        "tags to filter on",
        (
            """CREATE TABLE datasets (
                id TEXT PRIMARY KEY,
                project_id TEXT NOT NULL,
                name TEXT NOT NULL,
                description TEXT NOT NULL,
                owner TEXT NOT NULL,
                version INTEGER NOT NULL,
                entry_count INTEGER NOT NULL,
                size_bytes BIGINT NOT NULL,
                created_at {timestamp} NOT NULL,
                updated_at {timestamp} NOT NULL
            )""",
            "CREATE INDEX datasets_project ON datasets (project_id, created_at, id)",
            """CREATE TABLE dataset_entries (
                project_id TEXT NOT NULL,
                dataset_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                position INTEGER NOT NULL,
                id TEXT NOT NULL,
                input {json} NOT NULL,
                expected {json},
                metadata {json} NOT NULL,
                tags {json} NOT NULL,
                size_bytes BIGINT NOT NULL,
                created_at {timestamp} NOT NULL,
                PRIMARY KEY (dataset_id, version, position)
            )""",
            """CREATE TABLE dataset_entry_tags (
                dataset_id TEXT NOT NULL,
                tag TEXT NOT NULL,
                version INTEGER NOT NULL,
                position INTEGER NOT NULL,
                PRIMARY KEY (dataset_id, tag, version, position)
            )""",
        ),
    ),
    Migration(
        9,
        "prompt templates of a project, versioned per slug; a version's tag, its template's variables",
        (
            # Deleted versions stay as tombstones, so their numbers are never given again.
            """CREATE TABLE prompts (
                project_id TEXT NOT NULL,
                id TEXT NOT NULL,
                slug TEXT NOT NULL,
                version INTEGER NOT NULL,
                template TEXT NOT NULL,
                tag TEXT,
                variables {json} NOT NULL,
                metadata {json} NOT NULL,
                created_at {timestamp} NOT NULL,
                deleted BOOLEAN NOT NULL DEFAULT FALSE,
                PRIMARY KEY (project_id, slug, version)
            )""",
            "CREATE UNIQUE INDEX prompts_id ON prompts (project_id, id)",
            "CREATE INDEX prompts_tag ON prompts (project_id, slug, tag, version)",
        ),
    ),
    Migration(
        10,
        "alert rules of a project over its experiments' metrics, and their firings with each one's delivery",
        (
            """CREATE TABLE alert_rules (
                id TEXT PRIMARY KEY,
                project_id TEXT NOT NULL,
                name TEXT NOT NULL,
                eval_id TEXT,
                condition TEXT NOT NULL,
                eval_window TEXT NOT NULL,
                notify TEXT NOT NULL,
                webhook_url TEXT,
                slack_channel TEXT,
                slack_webhook_url TEXT,
                secret TEXT NOT NULL,
                created_at {timestamp} NOT NULL
            )""",
            "CREATE INDEX alert_rules_project ON alert_rules (project_id, created_at, id)",
            """CREATE TABLE alert_firings (
                id TEXT PRIMARY KEY,
                rule_id TEXT NOT NULL,
                rule_name TEXT NOT NULL,
                reason TEXT NOT NULL,
                experiment_id TEXT NOT NULL,
                state TEXT NOT NULL,
                attempts INTEGER NOT NULL,
                status_code INTEGER,
                error TEXT,
                created_at {timestamp} NOT NULL,
                updated_at {timestamp} NOT NULL
            )""",
            "CREATE INDEX alert_firings_rule ON alert_firings (rule_id, created_at, id)",
        ),
    ),
    Migration(
        11,
        "score rules of a project, and each rule's scores of each replica of the experiments it scored",
        (
            """CREATE TABLE score_rules (
                id TEXT PRIMARY KEY,
                project_id TEXT NOT NULL,
                name TEXT NOT NULL,
                type TEXT NOT NULL,
                options {json} NOT NULL,
                created_at {timestamp} NOT NULL
            )""",
            "CREATE INDEX score_rules_project ON score_rules (project_id, created_at, id)",
            """CREATE TABLE scores (
                id TEXT PRIMARY KEY,
                project_id TEXT NOT NULL,
                experiment_id TEXT NOT NULL,
                rule_id TEXT NOT NULL,
                trace_id TEXT NOT NULL,
                scenario_id TEXT NOT NULL,
                replica INTEGER NOT NULL,
                score DOUBLE PRECISION,
                state TEXT NOT NULL,
                message TEXT NOT NULL,
                created_at {timestamp} NOT NULL
            )""",
            "CREATE INDEX scores_experiment ON scores (project_id, experiment_id, created_at, id)",
            "CREATE INDEX scores_rule ON scores (rule_id, experiment_id)",
        ),
    ),
    Migration(
        12,
        "the server instance that queued each experiment and booted each sandbox, so that of several "
        "servers on one store each ends only what a stopped one left (its instance's lease expired)",
        (
            "ALTER TABLE experiments ADD COLUMN instance_id TEXT",
            "ALTER TABLE sandboxes ADD COLUMN instance_id TEXT",
            "CREATE INDEX sandboxes_state ON sandboxes (state)",
        ),
    ),
    Migration(
        13,
        "the experiment each webhook delivery is about and the server instance delivering it, so that a "
        "delivery pending when its server stopped is resumed by another",
        (
            "ALTER TABLE webhook_deliveries ADD COLUMN experiment_id TEXT",
            "ALTER TABLE webhook_deliveries ADD COLUMN instance_id TEXT",
            "CREATE INDEX webhook_deliveries_state ON webhook_deliveries (state)",
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
