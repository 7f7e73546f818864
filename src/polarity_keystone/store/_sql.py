"""The store written once in SQL; `SqliteStore` and `PostgresStore` supply connections and a dialect.

Concurrency rules the SQL relies on:
- a state change is one conditional `UPDATE ... RETURNING` (`transition_experiment`), and claims are
  `INSERT ... ON CONFLICT DO NOTHING` (`begin_idempotent`, `add_replica`): the database decides the race;
- `put_spec` reads the latest version then inserts the next: a concurrent upload makes the insert
  break the primary key, and the upload is retried against the new latest version;
- events are appended under a lock, so ids commit in increasing order and a reader resuming after id
  `n` never misses an event that commits later with a smaller id.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

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
    IdempotencyRecord,
    NotFound,
    Page,
    ProjectRecord,
    PromptRecord,
    ReplicaRecord,
    SandboxRecord,
    ScoreRecord,
    ScoreRuleRecord,
    SpecRecord,
    Store,
    TraceEventIndex,
    TraceEventRecord,
    WebhookDeliveryRecord,
    WebhookRecord,
)
from ._codec import decode, decode_cursor, encode, encode_cursor, from_row, timestamp, to_row, utc
from ._connections import ConnectionPool
from ._dialect import DbConnection, Dialect, Session, insert_sql
from ._migrations import migrate

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Clock = Callable[[], datetime]
T = TypeVar("T")
R = TypeVar("R", bound="DataclassInstance")
C = TypeVar("C", bound=DbConnection)

IDEMPOTENCY_TTL = timedelta(hours=24)
EVENTS_LOCK = 0x4B53_0002
_IN_LIST_LIMIT = 500
"""Values bound in one `IN (...)` list, well under SQLite's limit on a statement's parameters."""
_RACE_ATTEMPTS = 5
_EXPERIMENT_CHANGES = frozenset(
    {
        "status",
        "progress",
        "results",
        "error",
        "started_at",
        "finished_at",
        "options",
        "metadata",
        "instance_id",
    }
)
_UNFINISHED = ("queued", "running")
_SANDBOXES_UP = ("creating", "ready", "running")
INSTANCE_LEASE = "instance:"
"""The `leases` row of a server instance is named this followed by its id."""
EXPERIMENT_WRITE_SLOTS = 1024
"""Experiments share this many write counters (by hash of their id): a bounded size, whatever the number
of experiments, for the price of a count that sometimes grows with another experiment's write."""


def system_clock() -> datetime:
    return datetime.now(UTC)


class SqlStore(Store, Generic[C]):
    def __init__(self, dialect: Dialect, pool: ConnectionPool[C], now: Clock) -> None:
        """Applies missing migrations. `now` is the clock for every time the store stamps itself (tests
        pass one they can move); `applied_migrations` lists the migrations this opening applied."""
        self._dialect = dialect
        self._pool = pool
        self._now: Clock = lambda: utc(now())
        self._revocations = 0
        self._revoking = threading.Lock()
        self._experiment_writes = [0] * EXPERIMENT_WRITE_SLOTS
        self._counting_writes = threading.Lock()
        try:
            with self._write() as session:
                self.applied_migrations = migrate(session, dialect, self._now())
        except BaseException:
            pool.close()
            raise

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[Session]:
        # A pooled connection whose server went away (a database restart) fails on BEGIN, before anything
        # ran: the pool drops it and the transaction starts again on another connection.
        for attempt in itertools.count():
            with self._pool.connection() as connection:
                cursor = connection.cursor()
                try:
                    cursor.execute(begin, ())
                except self._dialect.stale_connection_errors:
                    if attempt >= self._pool.size:
                        raise
                    continue
                try:
                    yield Session(cursor, self._dialect)
                except BaseException:
                    # The error that got here is the one to report; a connection the rollback fails
                    # on is dropped by the pool.
                    with contextlib.suppress(Exception):
                        connection.rollback()
                    raise
                connection.commit()
                return

    def _read(self) -> AbstractContextManager[Session]:
        return self._transaction(self._dialect.begin_read)

    def _write(self) -> AbstractContextManager[Session]:
        return self._transaction(self._dialect.begin_write)

    def _add_capped(
        self, table: str, record: DataclassInstance, project_id: str, most: int, noun: str
    ) -> None:
        """Insert `record` as a row of `table`; Conflict when the project already has `most` rows there."""
        with self._write() as session:
            row = session.one(f"SELECT COUNT(*) AS n FROM {table} WHERE project_id = ?", (project_id,))
            if row and row["n"] >= most:
                raise Conflict(f"the project has {row['n']} {noun}, the most it may have ({most})")
            session.run(*insert_sql(table, to_row(record)))

    def _put_kept(self, table: str, record: DataclassInstance, owner: tuple[str, str], keep: int) -> bool:
        """Insert or replace `record`, a log entry of the row of table `owner[0]` whose id is in its
        `owner[1]` column, keeping that owner's `keep` newest entries; False, storing nothing, when the
        owner is gone."""
        owner_table, owner_column = owner
        row = to_row(record)
        replace = ", ".join(f"{column} = excluded.{column}" for column in row if column != "id")
        with self._write() as session:
            if session.one(f"SELECT id FROM {owner_table} WHERE id = ?", (row[owner_column],)) is None:
                return False
            session.run(*insert_sql(table, row, f"ON CONFLICT (id) DO UPDATE SET {replace}"))
            session.run(
                f"DELETE FROM {table} WHERE {owner_column} = ? AND id NOT IN (SELECT id FROM {table} "
                f"WHERE {owner_column} = ? ORDER BY created_at DESC, id DESC LIMIT ?)",
                (row[owner_column], row[owner_column], keep),
            )
        return True

    def _oldest_first(
        self,
        kind: type[R],
        table: str,
        project_id: str,
        cursor: str | None,
        limit: int,
        filters: Mapping[str, str | None] | None = None,
    ) -> Page[R]:
        """A page of the project's rows of `table` (records of `kind`), by created_at, then id; `filters`
        are columns and the values they must hold (a None value filters nothing)."""
        where, params = ["project_id = ?"], [project_id]
        for column, value in (filters or {}).items():
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if cursor is not None:
            where.append("(created_at, id) > (?, ?)")
            params.extend(decode_cursor(cursor, table, 2))
        with self._read() as session:
            rows = session.all(
                f"SELECT * FROM {table} WHERE {' AND '.join(where)} ORDER BY created_at, id LIMIT ?",
                (*params, limit + 1),
            )
        page = _page(
            rows,
            limit,
            lambda row: encode_cursor(table, [timestamp(decode("created_at", row["created_at"])), row["id"]]),
        )
        return Page([from_row(kind, row) for row in page.items], page.next_cursor)

    def _retry_races(self, attempt: Callable[[], T]) -> T:
        """Run `attempt` again when a concurrent writer made it raise Conflict."""
        for _ in range(_RACE_ATTEMPTS - 1):
            try:
                return attempt()
            except Conflict:
                continue
        return attempt()

    # -- projects and API keys
    def add_project(self, record: ProjectRecord) -> None:
        with self._write() as session:
            taken = session.one("SELECT id FROM projects WHERE id = ? OR name = ?", (record.id, record.name))
            if taken:
                raise Conflict(f"a project named {record.name!r} or with id {record.id!r} exists")
            session.run(*insert_sql("projects", to_row(record)))

    def get_project(self, project_id: str) -> ProjectRecord:
        with self._read() as session:
            row = session.one("SELECT * FROM projects WHERE id = ?", (project_id,))
        if row is None:
            raise NotFound(f"no project {project_id!r}")
        return from_row(ProjectRecord, row)

    def list_projects(self) -> list[ProjectRecord]:
        with self._read() as session:
            rows = session.all("SELECT * FROM projects ORDER BY created_at, id")
        return [from_row(ProjectRecord, row) for row in rows]

    def add_api_key(self, record: ApiKeyRecord) -> None:
        with self._write() as session:
            session.run(*insert_sql("api_keys", to_row(record)))

    def api_key_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        with self._read() as session:
            row = session.one("SELECT * FROM api_keys WHERE key_hash = ?", (key_hash,))
        return from_row(ApiKeyRecord, row) if row else None

    def list_api_keys(self, project_id: str | None = None) -> list[ApiKeyRecord]:
        where, params = ("WHERE project_id = ?", (project_id,)) if project_id is not None else ("", ())
        with self._read() as session:
            rows = session.all(f"SELECT * FROM api_keys {where} ORDER BY created_at, id", params)
        return [from_row(ApiKeyRecord, row) for row in rows]

    def revoke_api_key(self, key_id: str) -> None:
        with self._write() as session:
            if not session.run("UPDATE api_keys SET revoked = TRUE WHERE id = ?", (key_id,)):
                raise NotFound(f"no API key {key_id!r}")
        with self._revoking:  # after the commit: a lookup that starts later sees the revocation
            self._revocations += 1

    @property
    def revocations(self) -> int:
        return self._revocations

    # -- specs
    def put_spec(self, project_id: str, spec_id: str, yaml_text: str, sha256: str) -> SpecRecord:
        def attempt() -> SpecRecord:
            with self._write() as session:
                latest = session.one(
                    "SELECT * FROM specs WHERE project_id = ? AND id = ? ORDER BY version DESC LIMIT 1",
                    (project_id, spec_id),
                )
                if latest and not latest["deleted"] and latest["sha256"] == sha256:
                    return from_row(SpecRecord, latest)
                version = latest["version"] + 1 if latest else 1
                record = SpecRecord(spec_id, version, yaml_text, sha256, self._now(), project_id)
                session.run(*insert_sql("specs", to_row(record)))
                return record

        return self._retry_races(attempt)

    def get_spec(self, project_id: str, spec_id: str, version: int | None = None) -> SpecRecord:
        with self._read() as session:
            if version is None:
                row = session.one(
                    "SELECT * FROM specs WHERE project_id = ? AND id = ? ORDER BY version DESC LIMIT 1",
                    (project_id, spec_id),
                )
            else:
                row = session.one(
                    "SELECT * FROM specs WHERE project_id = ? AND id = ? AND version = ?",
                    (project_id, spec_id, version),
                )
        if row is None or row["deleted"]:
            raise NotFound(f"no spec {spec_id!r}" + ("" if version is None else f" version {version}"))
        return from_row(SpecRecord, row)

    def list_specs(self, project_id: str, *, cursor: str | None, limit: int) -> Page[SpecRecord]:
        where = [
            "s.project_id = ?",
            "NOT s.deleted",
            "s.version = (SELECT MAX(v.version) FROM specs v "
            "WHERE v.project_id = s.project_id AND v.id = s.id)",
        ]
        params: list[Any] = [project_id]
        if cursor is not None:
            where.append("s.id > ?")
            params.extend(decode_cursor(cursor, "specs", 1))
        with self._read() as session:
            rows = session.all(
                f"SELECT s.* FROM specs s WHERE {' AND '.join(where)} ORDER BY s.id LIMIT ?",
                (*params, limit + 1),
            )
        return _page(
            [from_row(SpecRecord, row) for row in rows], limit, lambda spec: encode_cursor("specs", [spec.id])
        )

    def delete_spec(self, project_id: str, spec_id: str) -> None:
        with self._write() as session:
            deleted = session.run(
                "UPDATE specs SET deleted = TRUE WHERE project_id = ? AND id = ? AND NOT deleted",
                (project_id, spec_id),
            )
            if not deleted:
                raise NotFound(f"no spec {spec_id!r}")

    # -- experiments
    def add_experiment(self, record: ExperimentRecord) -> None:
        with self._write() as session:
            session.run(*insert_sql("experiments", to_row(record)))

    def get_experiment(self, experiment_id: str) -> ExperimentRecord:
        with self._read() as session:
            row = session.one("SELECT * FROM experiments WHERE id = ?", (experiment_id,))
        if row is None:
            raise NotFound(f"no experiment {experiment_id!r}")
        return from_row(ExperimentRecord, row)

    def get_experiment_head(self, experiment_id: str) -> ExperimentRecord:
        columns = ", ".join(field.name for field in fields(ExperimentRecord) if field.name != "results")
        with self._read() as session:
            row = session.one(f"SELECT {columns} FROM experiments WHERE id = ?", (experiment_id,))
        if row is None:
            raise NotFound(f"no experiment {experiment_id!r}")
        return from_row(ExperimentRecord, {**row, "results": None})

    def list_experiments(
        self,
        project_id: str,
        *,
        cursor: str | None,
        limit: int,
        spec_id: str | None = None,
        status: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Page[ExperimentRecord]:
        """The cursor is the last item's (created_at, id), so experiments added meanwhile never shift
        later pages."""
        where: list[str] = ["project_id = ?"]
        params: list[Any] = [project_id]
        for column, value in (("spec_id", spec_id), ("status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        for key, value in (metadata or {}).items():
            where.append(self._dialect.metadata_has)
            params.extend((key, value))
        if cursor is not None:
            where.append("(created_at, id) < (?, ?)")
            params.extend(decode_cursor(cursor, "experiments", 2))
        with self._read() as session:
            rows = session.all(
                f"SELECT * FROM experiments WHERE {' AND '.join(where)} "
                "ORDER BY created_at DESC, id DESC LIMIT ?",
                (*params, limit + 1),
            )
        return _page(
            [from_row(ExperimentRecord, row) for row in rows],
            limit,
            lambda item: encode_cursor("experiments", [timestamp(item.created_at), item.id]),
        )

    def update_experiment(self, experiment_id: str, **changes: Any) -> ExperimentRecord:
        with self._write() as session:
            assignments, params = _assignments(changes)
            row = session.one(
                f"UPDATE experiments SET {assignments} WHERE id = ? RETURNING *", (*params, experiment_id)
            )
        self._count_experiment_write(experiment_id)
        if row is None:
            raise NotFound(f"no experiment {experiment_id!r}")
        return from_row(ExperimentRecord, row)

    def transition_experiment(
        self, experiment_id: str, from_statuses: tuple[str, ...], to_status: str, **changes: Any
    ) -> ExperimentRecord | None:
        assignments, params = _assignments({**changes, "status": to_status})
        with self._write() as session:
            row = None
            if from_statuses:
                row = session.one(
                    f"UPDATE experiments SET {assignments} "
                    f"WHERE id = ? AND status IN ({_marks(from_statuses)}) RETURNING *",
                    (*params, experiment_id, *from_statuses),
                )
            if row is None:
                if session.one("SELECT id FROM experiments WHERE id = ?", (experiment_id,)) is None:
                    raise NotFound(f"no experiment {experiment_id!r}")
                return None
        self._count_experiment_write(experiment_id)
        return from_row(ExperimentRecord, row)

    def _count_experiment_write(self, experiment_id: str) -> None:
        """After the commit: a read that starts later sees the write."""
        slot = hash(experiment_id) % EXPERIMENT_WRITE_SLOTS
        with self._counting_writes:
            self._experiment_writes[slot] += 1

    def experiment_writes(self, experiment_id: str) -> int:
        return self._experiment_writes[hash(experiment_id) % EXPERIMENT_WRITE_SLOTS]

    def interrupt_abandoned_experiments(self) -> list[ExperimentRecord]:
        rows = self._take_abandoned("experiments", "status", _UNFINISHED, "interrupted")
        for row in rows:
            self._count_experiment_write(row["id"])
        return [from_row(ExperimentRecord, row) for row in rows]

    def _take_abandoned(
        self, table: str, column: str, unfinished: tuple[str, ...], to: str, claimant: str | None = None
    ) -> list[dict[str, Any]]:
        """Set `column` to `to` (and with a `claimant`, the instance to it) in the rows of `table` whose
        `column` is one of `unfinished` and whose instance's lease is missing or expired; returns them,
        oldest first. The rows are claimed with the
        dialect's `skip_locked` (on Postgres, rows another sweeper holds are skipped, not waited for, and
        no longer match once it commits), so each row goes to one caller. Expired instance leases are
        dropped on the way: nothing of theirs is left."""
        now = timestamp(self._now())
        with self._write() as session:
            claimed = session.all(
                f"SELECT id FROM {table} WHERE {column} IN ({_marks(unfinished)}) AND (instance_id IS NULL "
                f"OR NOT EXISTS (SELECT 1 FROM leases WHERE leases.name = '{INSTANCE_LEASE}' || "
                f"{table}.instance_id AND leases.expires_at >= ?)) ORDER BY created_at, id"
                f"{self._dialect.skip_locked}",
                (*unfinished, now),
            )
            ids = [row["id"] for row in claimed]
            taken: dict[str, dict[str, Any]] = {}
            claim = ", instance_id = ?" if claimant else ""
            values = (to, claimant) if claimant else (to,)
            for chunk in _chunks(ids):
                rows = session.all(
                    f"UPDATE {table} SET {column} = ?{claim} WHERE id IN ({_marks(chunk)}) RETURNING *",
                    (*values, *chunk),
                )
                taken.update((row["id"], row) for row in rows)
            session.run(
                "DELETE FROM leases WHERE name LIKE ? AND expires_at < ?", (f"{INSTANCE_LEASE}%", now)
            )
        return [taken[row_id] for row_id in ids]

    def add_replica(self, record: ReplicaRecord) -> None:
        """The first result stored for a replica stays; adding it again changes nothing."""
        with self._write() as session:
            session.run(
                *insert_sql(
                    "replicas",
                    to_row(record),
                    "ON CONFLICT (experiment_id, scenario_id, replica_index) DO NOTHING",
                )
            )

    def replicas(self, experiment_id: str) -> list[ReplicaRecord]:
        with self._read() as session:
            rows = session.all(
                "SELECT * FROM replicas WHERE experiment_id = ? ORDER BY scenario_id, replica_index",
                (experiment_id,),
            )
        return [from_row(ReplicaRecord, row) for row in rows]

    # -- sandboxes
    def put_sandbox(self, record: SandboxRecord) -> None:
        row = to_row(record)
        replace = ", ".join(f"{column} = excluded.{column}" for column in row if column != "id")
        with self._write() as session:
            session.run(*insert_sql("sandboxes", row, f"ON CONFLICT (id) DO UPDATE SET {replace}"))

    def get_sandbox(self, sandbox_id: str) -> SandboxRecord:
        with self._read() as session:
            row = session.one("SELECT * FROM sandboxes WHERE id = ?", (sandbox_id,))
        if row is None:
            raise NotFound(f"no sandbox {sandbox_id!r}")
        return from_row(SandboxRecord, row)

    def list_sandboxes(
        self, *, project_id: str | None, owner: str | None = None, include_destroyed: bool = False
    ) -> list[SandboxRecord]:
        where = ["1 = 1"]
        params: list[Any] = []
        for column, value in (("project_id", project_id), ("owner", owner)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if not include_destroyed:
            where.append("state <> 'destroyed'")
        with self._read() as session:
            rows = session.all(
                f"SELECT * FROM sandboxes WHERE {' AND '.join(where)} ORDER BY created_at, id", params
            )
        return [from_row(SandboxRecord, row) for row in rows]

    def destroy_abandoned_sandboxes(self) -> list[SandboxRecord]:
        rows = self._take_abandoned("sandboxes", "state", _SANDBOXES_UP, "destroyed")
        return [from_row(SandboxRecord, row) for row in rows]

    # -- server instances
    def renew_instance(self, instance_id: str, ttl: timedelta) -> None:
        self.take_lease(INSTANCE_LEASE + instance_id, instance_id, ttl)

    def end_instance(self, instance_id: str) -> None:
        self.drop_lease(INSTANCE_LEASE + instance_id, instance_id)

    # -- trace events
    def add_trace_events(
        self,
        sandbox_id: str | None,
        owner: str,
        events: list[dict[str, Any]],
        *,
        project_id: str = DEFAULT_PROJECT,
        index: Callable[[dict[str, Any]], TraceEventIndex] | None = None,
    ) -> int:
        created_at = timestamp(self._now())
        statement, rows = None, []
        for event in events:
            listed = index(event) if index is not None else TraceEventIndex()
            values = {
                "sandbox_id": sandbox_id,
                "owner": owner,
                "project_id": project_id,
                "trace_id": listed.trace_id,
                "event_type": listed.event_type,
                "tool": listed.tool,
                "data": encode("data", event),
                "created_at": created_at,
            }
            statement, params = insert_sql("trace_events", values)
            rows.append(params)
        if statement is not None:
            with self._write() as session:
                session.run_many(statement, rows)
        return len(events)

    def list_trace_events(
        self,
        project_id: str,
        *,
        cursor: str | None,
        limit: int,
        sandbox_ids: Sequence[str] | None = None,
        trace_id: str | None = None,
        event_type: str | None = None,
        tool: str | None = None,
        since: datetime | None = None,
    ) -> Page[TraceEventRecord]:
        where: list[str] = ["project_id = ?"]
        params: list[Any] = [project_id]
        for column, value in (("trace_id", trace_id), ("event_type", event_type), ("tool", tool)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if sandbox_ids is not None:
            if not sandbox_ids:
                return Page([], None)
            where.append(f"sandbox_id IN ({', '.join('?' for _ in sandbox_ids)})")
            params.extend(sandbox_ids)
        if since is not None:
            where.append("created_at >= ?")
            params.append(timestamp(since))
        if cursor is not None:
            where.append("id > ?")
            params.append(int(decode_cursor(cursor, "trace_events", 1)[0]))
        with self._read() as session:
            rows = session.all(
                "SELECT id, sandbox_id, trace_id, data, created_at FROM trace_events "
                f"WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
                (*params, limit + 1),
            )
        records = [from_row(TraceEventRecord, row) for row in rows]
        return _page(records, limit, lambda item: encode_cursor("trace_events", [item.id]))

    def trace_events(self, sandbox_id: str) -> list[dict[str, Any]]:
        with self._read() as session:
            rows = session.all(
                "SELECT data FROM trace_events WHERE sandbox_id = ? ORDER BY id", (sandbox_id,)
            )
        return [decode("data", row["data"]) for row in rows]

    def trace_event_count(self, sandbox_id: str) -> int:
        with self._read() as session:
            row = session.one("SELECT COUNT(*) AS n FROM trace_events WHERE sandbox_id = ?", (sandbox_id,))
        return int(row["n"]) if row else 0

    # -- events
    def append_event(self, stream: str, type: str, data: dict[str, Any]) -> EventRecord:
        created_at = self._now()
        values = {
            "stream": stream,
            "type": type,
            "data": encode("data", data),
            "created_at": timestamp(created_at),
        }
        with self._write() as session:
            session.lock(EVENTS_LOCK)
            [row] = session.all(*insert_sql("events", values, "RETURNING id"))
        return EventRecord(row["id"], stream, type, data, created_at)

    def events_after(self, stream: str, after_id: int, limit: int = 500) -> list[EventRecord]:
        with self._read() as session:
            rows = session.all(
                "SELECT * FROM events WHERE stream = ? AND id > ? ORDER BY id LIMIT ?",
                (stream, after_id, limit),
            )
        return [from_row(EventRecord, row) for row in rows]

    # -- idempotency
    def begin_idempotent(
        self, owner: str, key: str, method: str, path: str, body_hash: str
    ) -> IdempotencyRecord | None:
        def attempt() -> IdempotencyRecord | None:
            now = self._now()
            claim = IdempotencyRecord(owner, key, method, path, body_hash, "pending", now)
            with self._write() as session:
                session.run(
                    "DELETE FROM idempotency WHERE created_at < ?", (timestamp(now - IDEMPOTENCY_TTL),)
                )
                claimed = session.one(
                    *insert_sql(
                        "idempotency", to_row(claim), "ON CONFLICT (owner, key) DO NOTHING RETURNING key"
                    )
                )
                if claimed:
                    return None
                existing = session.one("SELECT * FROM idempotency WHERE owner = ? AND key = ?", (owner, key))
            if existing is None:
                raise Conflict("the claim holding this key was dropped meanwhile")  # retried
            return from_row(IdempotencyRecord, existing)

        return self._retry_races(attempt)

    def finish_idempotent(
        self, owner: str, key: str, status_code: int, body: bytes, content_type: str
    ) -> None:
        with self._write() as session:
            session.run(
                "UPDATE idempotency SET state = 'done', status_code = ?, response_body = ?, content_type = ? "
                "WHERE owner = ? AND key = ? AND state = 'pending'",
                (status_code, body, content_type, owner, key),
            )

    def abandon_idempotent(self, owner: str, key: str) -> None:
        with self._write() as session:
            session.run(
                "DELETE FROM idempotency WHERE owner = ? AND key = ? AND state = 'pending'", (owner, key)
            )

    # -- agent snapshots
    def put_agent_snapshot(
        self,
        project_id: str,
        name: str,
        digest: str,
        size_bytes: int,
        *,
        entrypoint: list[str],
        runtime: str | None,
        auth: dict[str, Any],
        tag: str | None,
    ) -> AgentSnapshotRecord:
        snapshot_id = f"snap_{digest}"

        def attempt() -> AgentSnapshotRecord:
            with self._write() as session:
                live = session.one(
                    "SELECT * FROM agent_snapshots WHERE project_id = ? AND id = ? AND NOT deleted",
                    (project_id, snapshot_id),
                )
                if live is None:
                    latest = session.one(
                        "SELECT MAX(version) AS version FROM agent_snapshots "
                        "WHERE project_id = ? AND name = ?",
                        (project_id, name),
                    )
                    version = (latest["version"] if latest and latest["version"] else 0) + 1
                    row = {
                        "project_id": project_id,
                        "id": snapshot_id,
                        "name": name,
                        "version": version,
                        "digest": digest,
                        "size_bytes": size_bytes,
                        "entrypoint": encode("entrypoint", entrypoint),
                        "runtime": runtime,
                        "auth": encode("auth", auth),
                        "created_at": timestamp(self._now()),
                    }
                    session.run(*insert_sql("agent_snapshots", row))
                else:
                    _same_snapshot(live, name, entrypoint, runtime, auth)
                    version = live["version"]
                if tag is not None:
                    session.run(
                        *insert_sql(
                            "agent_tags",
                            {"project_id": project_id, "name": name, "tag": tag, "version": version},
                            "ON CONFLICT (project_id, name, tag) DO UPDATE SET version = excluded.version",
                        )
                    )
                stored = session.one(
                    "SELECT * FROM agent_snapshots WHERE project_id = ? AND id = ? AND NOT deleted",
                    (project_id, snapshot_id),
                )
                return _with_tags(session, project_id, [stored] if stored else [])[0]

        return self._retry_races(attempt)

    def get_agent_snapshot(self, project_id: str, snapshot_id: str) -> AgentSnapshotRecord:
        with self._read() as session:
            rows = session.all(
                "SELECT * FROM agent_snapshots WHERE project_id = ? AND id = ? AND NOT deleted",
                (project_id, snapshot_id),
            )
            if not rows:
                raise NotFound(f"no agent snapshot {snapshot_id!r}")
            return _with_tags(session, project_id, rows)[0]

    def resolve_agent(
        self, project_id: str, name: str, *, version: int | None = None, tag: str | None = None
    ) -> AgentSnapshotRecord:
        where = "s.project_id = ? AND s.name = ? AND NOT s.deleted"
        params: tuple[Any, ...] = (project_id, name)
        if tag is not None:
            where += (
                " AND s.version = (SELECT t.version FROM agent_tags t"
                " WHERE t.project_id = s.project_id AND t.name = s.name AND t.tag = ?)"
            )
            params += (tag,)
            missing = f"agent {name!r} has no tag {tag!r}"
        elif version is not None:
            where += " AND s.version = ?"
            params += (version,)
            missing = f"agent {name!r} has no version {version}"
        else:
            missing = f"no agent {name!r}"
        with self._read() as session:
            rows = session.all(
                f"SELECT s.* FROM agent_snapshots s WHERE {where} ORDER BY s.version DESC LIMIT 1", params
            )
            if not rows:
                raise NotFound(missing)
            return _with_tags(session, project_id, rows)[0]

    def list_agents(self, project_id: str, *, cursor: str | None, limit: int) -> Page[AgentSnapshotRecord]:
        where = [
            "s.project_id = ?",
            "NOT s.deleted",
            "s.version = (SELECT MAX(v.version) FROM agent_snapshots v"
            " WHERE v.project_id = s.project_id AND v.name = s.name AND NOT v.deleted)",
        ]
        params: list[Any] = [project_id]
        if cursor is not None:
            where.append("s.name > ?")
            params.extend(decode_cursor(cursor, "agents", 1))
        with self._read() as session:
            rows = session.all(
                f"SELECT s.* FROM agent_snapshots s WHERE {' AND '.join(where)} ORDER BY s.name LIMIT ?",
                (*params, limit + 1),
            )
            records = _with_tags(session, project_id, rows)
        return _page(records, limit, lambda item: encode_cursor("agents", [item.name]))

    def list_agent_versions(
        self, project_id: str, name: str, *, cursor: str | None, limit: int
    ) -> Page[AgentSnapshotRecord]:
        where = ["project_id = ?", "name = ?", "NOT deleted"]
        params: list[Any] = [project_id, name]
        if cursor is not None:
            where.append("version < ?")
            params.extend(decode_cursor(cursor, "agent-versions", 1))
        with self._read() as session:
            rows = session.all(
                f"SELECT * FROM agent_snapshots WHERE {' AND '.join(where)} ORDER BY version DESC LIMIT ?",
                (*params, limit + 1),
            )
            if not rows and cursor is None:
                raise NotFound(f"no agent {name!r}")
            records = _with_tags(session, project_id, rows)
        return _page(records, limit, lambda item: encode_cursor("agent-versions", [item.version]))

    def delete_agent_snapshot(self, project_id: str, snapshot_id: str) -> None:
        with self._write() as session:
            row = session.one(
                "UPDATE agent_snapshots SET deleted = TRUE WHERE project_id = ? AND id = ? AND NOT deleted "
                "RETURNING name, version",
                (project_id, snapshot_id),
            )
            if row is None:
                raise NotFound(f"no agent snapshot {snapshot_id!r}")
            session.run(
                "DELETE FROM agent_tags WHERE project_id = ? AND name = ? AND version = ?",
                (project_id, row["name"], row["version"]),
            )

    # -- webhook subscriptions and their deliveries
    def add_webhook(self, record: WebhookRecord, *, max_per_project: int) -> None:
        self._add_capped("webhooks", record, record.project_id, max_per_project, "webhooks")

    def get_webhook(self, project_id: str, webhook_id: str) -> WebhookRecord:
        with self._read() as session:
            row = session.one(
                "SELECT * FROM webhooks WHERE id = ? AND project_id = ?", (webhook_id, project_id)
            )
        if row is None:
            raise NotFound(f"no webhook {webhook_id!r}")
        return from_row(WebhookRecord, row)

    def list_webhooks(self, project_id: str, *, cursor: str | None, limit: int) -> Page[WebhookRecord]:
        return self._oldest_first(WebhookRecord, "webhooks", project_id, cursor, limit)

    def subscribed_webhooks(self, project_id: str, event_type: str) -> list[WebhookRecord]:
        with self._read() as session:
            rows = session.all(
                "SELECT * FROM webhooks WHERE project_id = ? ORDER BY created_at, id", (project_id,)
            )
        subscriptions = [from_row(WebhookRecord, row) for row in rows]
        return [subscription for subscription in subscriptions if event_type in subscription.events]

    def delete_webhook(self, project_id: str, webhook_id: str) -> None:
        with self._write() as session:
            if not session.run(
                "DELETE FROM webhooks WHERE id = ? AND project_id = ?", (webhook_id, project_id)
            ):
                raise NotFound(f"no webhook {webhook_id!r}")
            session.run("DELETE FROM webhook_deliveries WHERE webhook_id = ?", (webhook_id,))

    def put_webhook_delivery(self, record: WebhookDeliveryRecord, *, keep: int) -> bool:
        return self._put_kept("webhook_deliveries", record, ("webhooks", "webhook_id"), keep)

    def take_abandoned_deliveries(self, instance_id: str) -> list[WebhookDeliveryRecord]:
        rows = self._take_abandoned("webhook_deliveries", "state", ("pending",), "pending", instance_id)
        return [from_row(WebhookDeliveryRecord, row) for row in rows]

    def webhook_deliveries(self, webhook_id: str) -> list[WebhookDeliveryRecord]:
        with self._read() as session:
            rows = session.all(
                "SELECT * FROM webhook_deliveries WHERE webhook_id = ? ORDER BY created_at, id",
                (webhook_id,),
            )
        return [from_row(WebhookDeliveryRecord, row) for row in rows]

    # -- alert rules and their firings
    def add_alert_rule(self, record: AlertRuleRecord, *, max_per_project: int) -> None:
        self._add_capped("alert_rules", record, record.project_id, max_per_project, "alert rules")

    def get_alert_rule(self, project_id: str, rule_id: str) -> AlertRuleRecord:
        with self._read() as session:
            row = session.one(
                "SELECT * FROM alert_rules WHERE id = ? AND project_id = ?", (rule_id, project_id)
            )
        if row is None:
            raise NotFound(f"no alert rule {rule_id!r}")
        return from_row(AlertRuleRecord, row)

    def list_alert_rules(self, project_id: str, *, cursor: str | None, limit: int) -> Page[AlertRuleRecord]:
        return self._oldest_first(AlertRuleRecord, "alert_rules", project_id, cursor, limit)

    def delete_alert_rule(self, project_id: str, rule_id: str) -> None:
        with self._write() as session:
            if not session.run(
                "DELETE FROM alert_rules WHERE id = ? AND project_id = ?", (rule_id, project_id)
            ):
                raise NotFound(f"no alert rule {rule_id!r}")
            session.run("DELETE FROM alert_firings WHERE rule_id = ?", (rule_id,))

    def put_alert_firing(self, record: AlertFiringRecord, *, keep: int) -> bool:
        return self._put_kept("alert_firings", record, ("alert_rules", "rule_id"), keep)

    def alert_firings(self, rule_id: str) -> list[AlertFiringRecord]:
        with self._read() as session:
            rows = session.all(
                "SELECT * FROM alert_firings WHERE rule_id = ? ORDER BY created_at, id", (rule_id,)
            )
        return [from_row(AlertFiringRecord, row) for row in rows]

    # -- score rules and the scores they gave
    def add_score_rule(self, record: ScoreRuleRecord, *, max_per_project: int) -> None:
        self._add_capped("score_rules", record, record.project_id, max_per_project, "score rules")

    def get_score_rule(self, project_id: str, rule_id: str) -> ScoreRuleRecord:
        with self._read() as session:
            row = session.one(
                "SELECT * FROM score_rules WHERE id = ? AND project_id = ?", (rule_id, project_id)
            )
        if row is None:
            raise NotFound(f"no score rule {rule_id!r}")
        return from_row(ScoreRuleRecord, row)

    def list_score_rules(self, project_id: str, *, cursor: str | None, limit: int) -> Page[ScoreRuleRecord]:
        return self._oldest_first(ScoreRuleRecord, "score_rules", project_id, cursor, limit)

    def delete_score_rule(self, project_id: str, rule_id: str) -> None:
        with self._write() as session:
            if not session.run(
                "DELETE FROM score_rules WHERE id = ? AND project_id = ?", (rule_id, project_id)
            ):
                raise NotFound(f"no score rule {rule_id!r}")
            session.run("DELETE FROM scores WHERE rule_id = ?", (rule_id,))

    def replace_scores(self, rule: ScoreRuleRecord, experiment_id: str, scores: list[ScoreRecord]) -> bool:
        with self._write() as session:
            if session.one("SELECT id FROM score_rules WHERE id = ?", (rule.id,)) is None:
                return False
            session.run(
                "DELETE FROM scores WHERE rule_id = ? AND experiment_id = ?", (rule.id, experiment_id)
            )
            for score in scores:
                session.run(*insert_sql("scores", to_row(score)))
        return True

    def list_scores(
        self, project_id: str, experiment_id: str, *, rule_id: str | None, cursor: str | None, limit: int
    ) -> Page[ScoreRecord]:
        filters = {"experiment_id": experiment_id, "rule_id": rule_id}
        return self._oldest_first(ScoreRecord, "scores", project_id, cursor, limit, filters)

    # -- datasets and their versioned entries
    def add_dataset(self, record: DatasetRecord, *, max_per_project: int) -> None:
        self._add_capped("datasets", record, record.project_id, max_per_project, "datasets")

    def get_dataset(self, project_id: str, dataset_id: str) -> DatasetRecord:
        with self._read() as session:
            return _dataset(session, project_id, dataset_id)

    def list_datasets(self, project_id: str, *, cursor: str | None, limit: int) -> Page[DatasetRecord]:
        return self._oldest_first(DatasetRecord, "datasets", project_id, cursor, limit)

    def delete_dataset(self, project_id: str, dataset_id: str) -> None:
        with self._write() as session:
            if not session.run(
                "DELETE FROM datasets WHERE id = ? AND project_id = ?", (dataset_id, project_id)
            ):
                raise NotFound(f"no dataset {dataset_id!r}")
            session.run("DELETE FROM dataset_entries WHERE dataset_id = ?", (dataset_id,))
            session.run("DELETE FROM dataset_entry_tags WHERE dataset_id = ?", (dataset_id,))

    def append_dataset_entries(
        self, project_id: str, dataset_id: str, entries: Sequence[DatasetEntry], quota: DatasetQuota
    ) -> DatasetRecord:
        # One conditional UPDATE takes the next version and checks the quota: concurrent appends queue on
        # the dataset's row, so each gets its own version and none passes the quota on a stale count.
        count, added_bytes = len(entries), sum(entry.size_bytes for entry in entries)
        room_entries, room_bytes = quota.max_entries - count, quota.max_bytes - added_bytes
        now = timestamp(self._now())
        with self._write() as session:
            row = session.one(
                "UPDATE datasets SET version = version + 1, entry_count = entry_count + ?, "
                "size_bytes = size_bytes + ?, updated_at = ? WHERE id = ? AND project_id = ? "
                "AND entry_count <= ? AND size_bytes <= ? RETURNING *",
                (count, added_bytes, now, dataset_id, project_id, room_entries, room_bytes),
            )
            if row is None:
                held = _dataset(session, project_id, dataset_id)
                raise Conflict(
                    f"dataset {dataset_id!r} holds {held.entry_count} records ({held.size_bytes} bytes); "
                    f"{count} more ({added_bytes} bytes) would pass its limit of {quota.max_entries} "
                    f"records or {quota.max_bytes} bytes"
                )
            updated = from_row(DatasetRecord, row)
            entry_rows = [
                _entry_row(project_id, dataset_id, updated.version, position, entry, now)
                for position, entry in enumerate(entries)
            ]
            tag_rows = [
                (dataset_id, tag, updated.version, position)
                for position, entry in enumerate(entries)
                for tag in dict.fromkeys(entry.tags)
            ]
            if entry_rows:
                statement = insert_sql("dataset_entries", entry_rows[0])[0]
                session.run_many(statement, [tuple(entry_row.values()) for entry_row in entry_rows])
            if tag_rows:
                session.run_many(
                    "INSERT INTO dataset_entry_tags (dataset_id, tag, version, position) VALUES (?, ?, ?, ?)",
                    tag_rows,
                )
        return updated

    def dataset_entries(
        self,
        project_id: str,
        dataset_id: str,
        *,
        version: int | None,
        tags: Sequence[str],
        cursor: str | None,
        limit: int,
        max_bytes: int,
    ) -> Page[DatasetEntryRecord]:
        where = ["e.dataset_id = ?", "e.version <= ?"]
        params: list[Any] = [dataset_id]
        with self._read() as session:
            latest = _dataset(session, project_id, dataset_id).version
            if version is not None and version > latest:
                raise NotFound(f"dataset {dataset_id!r} has no version {version} yet: its latest is {latest}")
            params.append(latest if version is None else version)
            for tag in dict.fromkeys(tags):
                where.append(
                    "EXISTS (SELECT 1 FROM dataset_entry_tags t WHERE t.dataset_id = e.dataset_id "
                    "AND t.tag = ? AND t.version = e.version AND t.position = e.position)"
                )
                params.append(tag)
            if cursor is not None:
                where.append("(e.version, e.position) > (?, ?)")
                params.extend(decode_cursor(cursor, "dataset_entries", 2))
            matching = f"FROM dataset_entries e WHERE {' AND '.join(where)} ORDER BY e.version, e.position"
            sizes = [
                row["size_bytes"]
                for row in session.all(f"SELECT e.size_bytes {matching} LIMIT ?", (*params, limit + 1))
            ]
            shown = _fitting(sizes, limit, max_bytes)
            records = [
                _entry_record(row) for row in session.all(f"SELECT e.* {matching} LIMIT ?", (*params, shown))
            ]
        if len(sizes) <= len(records):
            return Page(records, None)
        return Page(records, encode_cursor("dataset_entries", [records[-1].version, records[-1].position]))

    # -- prompt templates
    def add_prompt_version(
        self,
        project_id: str,
        prompt_id: str,
        slug: str,
        template: str,
        *,
        tag: str | None,
        variables: list[str],
        metadata: dict[str, Any],
        max_per_project: int,
    ) -> PromptRecord:
        def attempt() -> PromptRecord:
            with self._write() as session:
                live = session.one(
                    "SELECT COUNT(*) AS n FROM prompts WHERE project_id = ? AND NOT deleted", (project_id,)
                )
                if live and live["n"] >= max_per_project:
                    raise Conflict(
                        f"the project has {live['n']} prompt versions, "
                        f"the most it may have ({max_per_project})"
                    )
                latest = session.one(
                    "SELECT MAX(version) AS version FROM prompts WHERE project_id = ? AND slug = ?",
                    (project_id, slug),
                )
                row = {
                    "project_id": project_id,
                    "id": prompt_id,
                    "slug": slug,
                    "version": (latest["version"] if latest and latest["version"] else 0) + 1,
                    "template": template,
                    "tag": tag,
                    "variables": json.dumps(variables),
                    "metadata": json.dumps(metadata),
                    "created_at": timestamp(self._now()),
                }
                session.run(*insert_sql("prompts", row))
                return _prompt(row)

        return self._retry_races(attempt)

    def get_prompt(self, project_id: str, prompt_id: str) -> PromptRecord:
        with self._read() as session:
            row = session.one(
                "SELECT * FROM prompts WHERE project_id = ? AND id = ? AND NOT deleted",
                (project_id, prompt_id),
            )
        if row is None:
            raise NotFound(f"no prompt {prompt_id!r}")
        return _prompt(row)

    def resolve_prompt(
        self, project_id: str, slug: str, *, version: int | None = None, tag: str | None = None
    ) -> PromptRecord:
        where = "project_id = ? AND slug = ? AND NOT deleted"
        params: tuple[Any, ...] = (project_id, slug)
        if tag is not None:
            where += " AND tag = ?"
            params += (tag,)
            missing = f"prompt {slug!r} has no version tagged {tag!r}"
        elif version is not None:
            where += " AND version = ?"
            params += (version,)
            missing = f"prompt {slug!r} has no version {version}"
        else:
            missing = f"no prompt {slug!r}"
        with self._read() as session:
            row = session.one(f"SELECT * FROM prompts WHERE {where} ORDER BY version DESC LIMIT 1", params)
        if row is None:
            raise NotFound(missing)
        return _prompt(row)

    def list_prompts(self, project_id: str, *, cursor: str | None, limit: int) -> Page[PromptRecord]:
        where = [
            "p.project_id = ?",
            "NOT p.deleted",
            "p.version = (SELECT MAX(v.version) FROM prompts v"
            " WHERE v.project_id = p.project_id AND v.slug = p.slug AND NOT v.deleted)",
        ]
        params: list[Any] = [project_id]
        if cursor is not None:
            where.append("p.slug > ?")
            params.extend(decode_cursor(cursor, "prompts", 1))
        with self._read() as session:
            rows = session.all(
                f"SELECT p.* FROM prompts p WHERE {' AND '.join(where)} ORDER BY p.slug LIMIT ?",
                (*params, limit + 1),
            )
        return _page(
            [_prompt(row) for row in rows], limit, lambda item: encode_cursor("prompts", [item.slug])
        )

    def list_prompt_versions(
        self, project_id: str, slug: str, *, cursor: str | None, limit: int
    ) -> Page[PromptRecord]:
        where = ["project_id = ?", "slug = ?", "NOT deleted"]
        params: list[Any] = [project_id, slug]
        if cursor is not None:
            where.append("version < ?")
            params.extend(decode_cursor(cursor, "prompt-versions", 1))
        with self._read() as session:
            rows = session.all(
                f"SELECT * FROM prompts WHERE {' AND '.join(where)} ORDER BY version DESC LIMIT ?",
                (*params, limit + 1),
            )
        if not rows and cursor is None:
            raise NotFound(f"no prompt {slug!r}")
        return _page(
            [_prompt(row) for row in rows],
            limit,
            lambda item: encode_cursor("prompt-versions", [item.version]),
        )

    def delete_prompt(self, project_id: str, prompt_id: str) -> None:
        with self._write() as session:
            if not session.run(
                "UPDATE prompts SET deleted = TRUE WHERE project_id = ? AND id = ? AND NOT deleted",
                (project_id, prompt_id),
            ):
                raise NotFound(f"no prompt {prompt_id!r}")

    # -- blob owners
    def add_blob_owner(self, project_id: str, sha256: str, size: int, max_project_bytes: int | None) -> bool:
        # The project's usage is one row, raised by a conditional UPDATE: concurrent claims of a project
        # queue on that row, so they cannot both pass the quota on the same usage. A concurrent claim of
        # the same blob breaks the primary key instead, and is tried again (it is then owned).
        def attempt() -> bool:
            with self._write() as session:
                session.lock(_blob_lock(sha256))  # see release_blobs
                owned = "SELECT 1 FROM blob_owners WHERE project_id = ? AND sha256 = ?"
                if session.one(owned, (project_id, sha256)):
                    return True
                usage = {"project_id": project_id, "bytes": 0}
                session.run(*insert_sql("blob_usage", usage, "ON CONFLICT (project_id) DO NOTHING"))
                raise_usage = "UPDATE blob_usage SET bytes = bytes + ? WHERE project_id = ?"
                if max_project_bytes is not None:
                    raise_usage += " AND bytes + ? <= ?"
                quota = () if max_project_bytes is None else (size, max_project_bytes)
                if not session.run(raise_usage, (size, project_id, *quota)):
                    return False
                row = {"project_id": project_id, "sha256": sha256, "size": size}
                session.run(*insert_sql("blob_owners", {**row, "created_at": timestamp(self._now())}))
            return True

        return self._retry_races(attempt)

    def owned_blobs(self, project_id: str, digests: Sequence[str]) -> set[str]:
        unique = list(dict.fromkeys(digests))
        owned: set[str] = set()
        with self._read() as session:
            for chunk in _chunks(unique):
                rows = session.all(
                    f"SELECT sha256 FROM blob_owners WHERE project_id = ? AND sha256 IN ({_marks(chunk)})",
                    (project_id, *chunk),
                )
                owned.update(row["sha256"] for row in rows)
        return owned

    def blob_usage(self, project_id: str) -> int:
        with self._read() as session:
            row = session.one("SELECT bytes FROM blob_usage WHERE project_id = ?", (project_id,))
        return int(row["bytes"]) if row else 0

    def hold_blobs(self, project_id: str, digests: Sequence[str]) -> set[str]:
        held: set[str] = set()
        now = timestamp(self._now())
        with self._write() as session:
            for chunk in _chunks(list(dict.fromkeys(digests))):
                rows = session.all(
                    "UPDATE blob_owners SET created_at = ? "
                    f"WHERE project_id = ? AND sha256 IN ({_marks(chunk)}) RETURNING sha256",
                    (now, project_id, *chunk),
                )
                held.update(row["sha256"] for row in rows)
        return held

    # -- blob garbage collection
    def live_spec_versions(self, project_id: str) -> dict[str, set[int]]:
        with self._read() as session:
            rows = session.all(
                "SELECT id, version FROM specs WHERE project_id = ? AND NOT deleted", (project_id,)
            )
        versions: dict[str, set[int]] = {}
        for row in rows:
            versions.setdefault(row["id"], set()).add(row["version"])
        return versions

    def experiment_options_since(self, project_id: str, since: datetime) -> list[dict[str, Any]]:
        with self._read() as session:
            rows = session.all(
                "SELECT options FROM experiments WHERE project_id = ? "
                f"AND (created_at >= ? OR status IN ({_marks(_UNFINISHED)}))",
                (project_id, timestamp(since), *_UNFINISHED),
            )
        return [decode("options", row["options"]) for row in rows]

    def live_snapshot_digests(self, project_id: str) -> set[str]:
        with self._read() as session:
            rows = session.all(
                "SELECT DISTINCT digest FROM agent_snapshots WHERE project_id = ? AND NOT deleted",
                (project_id,),
            )
        return {row["digest"] for row in rows}

    def blobs_held_before(self, project_id: str, before: datetime) -> dict[str, int]:
        with self._read() as session:
            rows = session.all(
                "SELECT sha256, size FROM blob_owners WHERE project_id = ? AND created_at < ?",
                (project_id, timestamp(before)),
            )
        return {row["sha256"]: int(row["size"]) for row in rows}

    def release_blobs(
        self, project_id: str, digests: Sequence[str], before: datetime, delete: Callable[[str], None]
    ) -> dict[str, int]:
        released: dict[str, int] = {}
        for sha256 in dict.fromkeys(digests):
            with self._write() as session:
                session.lock(_blob_lock(sha256))  # a claim of this blob (add_blob_owner) waits
                row = session.one(
                    "DELETE FROM blob_owners WHERE project_id = ? AND sha256 = ? AND created_at < ? "
                    "RETURNING size",
                    (project_id, sha256, timestamp(before)),
                )
                if row is None:
                    continue
                session.run(
                    "UPDATE blob_usage SET bytes = bytes - ? WHERE project_id = ?", (row["size"], project_id)
                )
                if session.one("SELECT 1 FROM blob_owners WHERE sha256 = ? LIMIT 1", (sha256,)) is None:
                    delete(sha256)
            released[sha256] = int(row["size"])
        return released

    def blob_owners(self, digests: Sequence[str]) -> dict[str, set[str]]:
        owners: dict[str, set[str]] = {}
        with self._read() as session:
            for chunk in _chunks(list(dict.fromkeys(digests))):
                rows = session.all(
                    f"SELECT sha256, project_id FROM blob_owners WHERE sha256 IN ({_marks(chunk)})", chunk
                )
                for row in rows:
                    owners.setdefault(row["sha256"], set()).add(row["project_id"])
        return owners

    def take_lease(self, name: str, holder: str, ttl: timedelta) -> bool:
        # One conditional upsert: of two servers taking an expired lease at once, the database lets one
        # replace it, and the other's condition then fails on the new holder.
        now = self._now()
        sql, params = insert_sql(
            "leases",
            {"name": name, "holder": holder, "expires_at": timestamp(now + ttl)},
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at "
            "WHERE leases.holder = ? OR leases.expires_at < ? RETURNING holder",
        )
        with self._write() as session:
            taken = session.one(sql, (*params, holder, timestamp(now)))
        return taken is not None

    def drop_lease(self, name: str, holder: str) -> None:
        with self._write() as session:
            session.run("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))


def _same_snapshot(
    live: dict[str, Any], name: str, entrypoint: list[str], runtime: str | None, auth: dict[str, Any]
) -> None:
    """Refuse (Conflict) an upload of bytes that are already a snapshot, unless it says the same of them."""
    if live["name"] != name:
        raise Conflict(
            f"these bytes are already snapshot {live['id']} (agent {live['name']!r} version "
            f"{live['version']}); a snapshot belongs to one agent: upload other bytes or delete that one"
        )
    settings = (decode("entrypoint", live["entrypoint"]), live["runtime"], decode("auth", live["auth"]))
    if settings != (entrypoint, runtime, auth):
        raise Conflict(
            f"these bytes are already version {live['version']} of agent {name!r} with another entrypoint, "
            "runtime or auth; a snapshot's settings never change: change the bundle to make a new version"
        )


def _with_tags(session: Session, project_id: str, rows: list[dict[str, Any]]) -> list[AgentSnapshotRecord]:
    """The snapshots of `rows`, each with the tags that point at it."""
    names = sorted({row["name"] for row in rows})
    tags: dict[tuple[str, int], list[str]] = {}
    if names:
        found = session.all(
            f"SELECT name, tag, version FROM agent_tags WHERE project_id = ? AND name IN ({_marks(names)}) "
            "ORDER BY tag",
            (project_id, *names),
        )
        for item in found:
            tags.setdefault((item["name"], item["version"]), []).append(item["tag"])
    return [
        from_row(AgentSnapshotRecord, {**row, "tags": tuple(tags.get((row["name"], row["version"]), []))})
        for row in rows
    ]


def _chunks(values: list[str]) -> Iterator[list[str]]:
    """`values` in lists short enough to bind in one `IN (...)`."""
    for start in range(0, len(values), _IN_LIST_LIMIT):
        yield values[start : start + _IN_LIST_LIMIT]


def _blob_lock(sha256: str) -> int:
    """The lock key a claim and a sweep of one blob both take (a Postgres advisory lock is a bigint)."""
    return int(hashlib.sha256(sha256.encode()).hexdigest()[:15], 16)


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" for _ in values)


def _assignments(changes: dict[str, Any]) -> tuple[str, list[Any]]:
    """`col = ?, ...` and its parameters for an experiment's changeable fields."""
    unknown = sorted(set(changes) - _EXPERIMENT_CHANGES)
    if unknown:
        raise TypeError(f"experiments have no changeable field {', '.join(unknown)}")
    if not changes:
        return "id = id", []
    return ", ".join(f"{name} = ?" for name in changes), [
        encode(name, value) for name, value in changes.items()
    ]


def _dataset(session: Session, project_id: str, dataset_id: str) -> DatasetRecord:
    row = session.one("SELECT * FROM datasets WHERE id = ? AND project_id = ?", (dataset_id, project_id))
    if row is None:
        raise NotFound(f"no dataset {dataset_id!r}")
    return from_row(DatasetRecord, row)


def _fitting(sizes: list[int], limit: int, max_bytes: int) -> int:
    """How many of the first entries (of these sizes) a page shows: at most `limit`, and no more than fit in
    `max_bytes` together, but always one."""
    total = 0
    for count, size in enumerate(sizes[:limit]):
        total += size
        if total > max_bytes:
            return max(count, 1)
    return min(len(sizes), limit)


def _entry_row(
    project_id: str, dataset_id: str, version: int, position: int, entry: DatasetEntry, created_at: str
) -> dict[str, Any]:
    return {
        "project_id": project_id,
        "dataset_id": dataset_id,
        "version": version,
        "position": position,
        "id": entry.id,
        "input": json.dumps(entry.input),
        "expected": None if entry.expected is None else json.dumps(entry.expected),
        "metadata": json.dumps(entry.metadata),
        "tags": json.dumps(list(entry.tags)),
        "size_bytes": entry.size_bytes,
        "created_at": created_at,
    }


def _entry_record(row: dict[str, Any]) -> DatasetEntryRecord:
    entry = DatasetEntry(
        id=row["id"],
        input=json.loads(row["input"]),
        expected=None if row["expected"] is None else json.loads(row["expected"]),
        metadata=json.loads(row["metadata"]),
        tags=tuple(json.loads(row["tags"])),
        size_bytes=row["size_bytes"],
    )
    return DatasetEntryRecord(
        row["dataset_id"], row["version"], row["position"], entry, decode("created_at", row["created_at"])
    )


def _prompt(row: dict[str, Any]) -> PromptRecord:
    return from_row(PromptRecord, {**row, "variables": json.loads(row["variables"])})


def _page(items: list[T], limit: int, position: Callable[[T], str]) -> Page[T]:
    """The first `limit` of `items` (fetched one over), with a cursor when more follow."""
    if limit < 1:
        raise ValueError(f"a page holds at least one item, not {limit}")
    if len(items) <= limit:
        return Page(items, None)
    return Page(items[:limit], position(items[limit - 1]))
