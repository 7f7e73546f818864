"""What the server persists: one `Store` interface, SQLite (embedded default) and Postgres behind it.

    StoreError          raised by store methods for requests that cannot succeed as asked
    ├── NotFound        unknown id (or a deleted spec)
    ├── Conflict        a uniqueness or state rule would be broken
    └── InvalidCursor   a pagination cursor the store did not issue

The server turns these into HTTP errors in its one error handler.
"""

from ._base import (
    DEFAULT_PROJECT,
    AgentSnapshotRecord,
    AlertFiringRecord,
    AlertRuleRecord,
    ApiKeyRecord,
    Conflict,
    DatasetEntry,
    DatasetEntryRecord,
    DatasetQuota,
    DatasetRecord,
    EventRecord,
    ExperimentRecord,
    ExperimentStatus,
    IdempotencyRecord,
    InvalidCursor,
    NotFound,
    Page,
    ProjectRecord,
    PromptRecord,
    ReplicaRecord,
    SandboxRecord,
    SandboxStateName,
    ScoreRecord,
    ScoreRuleRecord,
    SpecRecord,
    Store,
    StoreError,
    TraceEventIndex,
    TraceEventRecord,
    WebhookDeliveryRecord,
    WebhookRecord,
)
from ._codec import decode_cursor, encode_cursor
from ._migrations import MIGRATIONS, Migration
from ._open import open_store
from ._postgres import PostgresStore
from ._sql import IDEMPOTENCY_TTL, Clock
from ._sqlite import SqliteStore

__all__ = [
    "DEFAULT_PROJECT",
    "IDEMPOTENCY_TTL",
    "MIGRATIONS",
    "AgentSnapshotRecord",
    "AlertFiringRecord",
    "AlertRuleRecord",
    "ApiKeyRecord",
    "Clock",
    "Conflict",
    "DatasetEntry",
    "DatasetEntryRecord",
    "DatasetQuota",
    "DatasetRecord",
    "EventRecord",
    "ExperimentRecord",
    "ExperimentStatus",
    "IdempotencyRecord",
    "InvalidCursor",
    "Migration",
    "NotFound",
    "Page",
    "PostgresStore",
    "ProjectRecord",
    "PromptRecord",
    "ReplicaRecord",
    "SandboxRecord",
    "SandboxStateName",
    "ScoreRecord",
    "ScoreRuleRecord",
    "SpecRecord",
    "SqliteStore",
    "Store",
    "StoreError",
    "TraceEventIndex",
    "TraceEventRecord",
    "WebhookDeliveryRecord",
    "WebhookRecord",
    "decode_cursor",
    "encode_cursor",
    "open_store",
]
