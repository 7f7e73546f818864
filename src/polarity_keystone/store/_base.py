"""What the server persists, behind one interface with a SQLite and a Postgres implementation.

Records are plain dataclasses; JSON-shaped fields (`metadata`, `results`, `data`, ...) are dicts stored
as JSON text. Every method is safe to call from several threads at once: the server calls the store
from its request handlers and from the experiment workers.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

ExperimentStatus = Literal["created", "queued", "running", "completed", "failed", "cancelled", "interrupted"]
SandboxStateName = Literal["creating", "ready", "running", "error", "destroyed"]
T = TypeVar("T")


class StoreError(Exception):
    """A store operation that cannot succeed as asked (unknown id, wrong state)."""


class NotFound(StoreError):
    pass


class Conflict(StoreError):
    """A uniqueness or state rule would be broken (e.g. an idempotency key reused with another body)."""


class InvalidCursor(StoreError):
    """A pagination cursor this store did not issue, or issued for another listing (a client error)."""


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    name: str
    prefix: str
    """The first characters of the key (`ks_live_ab12`), shown in listings; the key itself is never stored."""
    key_hash: str
    """sha256 hex of the whole key."""
    kind: Literal["live", "sandbox"]
    sandbox_id: str | None
    """For `ks_sb_` tokens: the one sandbox they may touch."""
    created_at: datetime
    revoked: bool = False


@dataclass(frozen=True)
class SpecRecord:
    id: str
    version: int
    yaml: str
    sha256: str
    created_at: datetime


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class ExperimentRecord:
    id: str
    name: str
    spec_id: str
    spec_version: int
    status: ExperimentStatus
    created_at: datetime
    owner: str
    """The id of the API key that created it."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Free tags, e.g. repo/branch/commit/ci_run from the gate; list_experiments filters on them."""
    options: dict[str, Any] = field(default_factory=dict)
    """How to run it: replicas, concurrency, seed, ... (engine RunOptions as JSON)."""
    progress: dict[str, Any] = field(default_factory=dict)
    """{"total": n, "done": k, ...} while it runs."""
    results: dict[str, Any] | None = None
    """RunResults as JSON once finished."""
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class ReplicaRecord:
    """One finished replica, stored the moment it finishes so a restart never loses it."""

    experiment_id: str
    scenario_id: str
    replica_index: int
    result: dict[str, Any]
    """ReplicaResult as JSON."""
    created_at: datetime


@dataclass(frozen=True)
class SandboxRecord:
    id: str
    spec_id: str
    state: SandboxStateName
    owner: str
    created_at: datetime
    expires_at: datetime | None
    metadata: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    """The Sandbox object the API returns (services, image, ...), as JSON."""


@dataclass(frozen=True)
class EventRecord:
    id: int
    """Increasing across the whole store: the SSE `id:` a client resumes from with Last-Event-ID."""
    stream: str
    """e.g. "experiment:exp-1", "sandbox:sb-1", "replica:exp-1/s/0"."""
    type: str
    data: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class IdempotencyRecord:
    owner: str
    key: str
    method: str
    path: str
    body_hash: str
    state: Literal["pending", "done"]
    created_at: datetime
    status_code: int | None = None
    response_body: bytes | None = None
    content_type: str | None = None


class Store(abc.ABC):
    """Persistence for the server. Implementations: `SqliteStore`, `PostgresStore` (`open_store(url)`)."""

    # -- lifecycle
    @abc.abstractmethod
    def close(self) -> None: ...

    # -- API keys
    @abc.abstractmethod
    def add_api_key(self, record: ApiKeyRecord) -> None: ...

    @abc.abstractmethod
    def api_key_by_hash(self, key_hash: str) -> ApiKeyRecord | None: ...

    @abc.abstractmethod
    def list_api_keys(self) -> list[ApiKeyRecord]: ...

    @abc.abstractmethod
    def revoke_api_key(self, key_id: str) -> None: ...

    # -- specs
    @abc.abstractmethod
    def put_spec(self, spec_id: str, yaml_text: str, sha256: str) -> SpecRecord:
        """Store a new version (latest + 1); uploading the latest version's exact content again returns
        that version instead of adding one."""

    @abc.abstractmethod
    def get_spec(self, spec_id: str, version: int | None = None) -> SpecRecord:
        """The latest version, or the given one; NotFound if absent or deleted."""

    @abc.abstractmethod
    def list_specs(self, *, cursor: str | None, limit: int) -> Page[SpecRecord]:
        """Latest version of each spec, ordered by id."""

    @abc.abstractmethod
    def delete_spec(self, spec_id: str) -> None: ...

    # -- experiments
    @abc.abstractmethod
    def add_experiment(self, record: ExperimentRecord) -> None: ...

    @abc.abstractmethod
    def get_experiment(self, experiment_id: str) -> ExperimentRecord: ...

    @abc.abstractmethod
    def list_experiments(
        self,
        *,
        cursor: str | None,
        limit: int,
        spec_id: str | None = None,
        status: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Page[ExperimentRecord]:
        """Newest first (by created_at, then id); `metadata` keeps experiments whose metadata has all the
        given key/values (string values, compared exactly)."""

    @abc.abstractmethod
    def update_experiment(self, experiment_id: str, **changes: Any) -> ExperimentRecord:
        """Set the given fields (status, progress, results, error, started_at, finished_at, options)."""

    @abc.abstractmethod
    def transition_experiment(
        self, experiment_id: str, from_statuses: tuple[str, ...], to_status: str, **changes: Any
    ) -> ExperimentRecord | None:
        """Atomically move to `to_status` only if the status is one of `from_statuses`; None otherwise.
        This is how two concurrent `run` calls start the experiment once."""

    @abc.abstractmethod
    def unfinished_experiments(self) -> list[ExperimentRecord]:
        """Experiments queued or running, for recovery when the server starts."""

    @abc.abstractmethod
    def add_replica(self, record: ReplicaRecord) -> None:
        """Idempotent on (experiment_id, scenario_id, replica_index)."""

    @abc.abstractmethod
    def replicas(self, experiment_id: str) -> list[ReplicaRecord]:
        """Ordered by scenario id, then replica index."""

    # -- sandboxes
    @abc.abstractmethod
    def put_sandbox(self, record: SandboxRecord) -> None:
        """Insert or replace."""

    @abc.abstractmethod
    def get_sandbox(self, sandbox_id: str) -> SandboxRecord: ...

    @abc.abstractmethod
    def list_sandboxes(
        self, *, owner: str | None, include_destroyed: bool = False
    ) -> list[SandboxRecord]: ...

    # -- trace events reported by agents
    @abc.abstractmethod
    def add_trace_events(self, sandbox_id: str | None, owner: str, events: list[dict[str, Any]]) -> int:
        """Append; returns how many were stored."""

    @abc.abstractmethod
    def trace_events(self, sandbox_id: str) -> list[dict[str, Any]]: ...

    # -- events for SSE streams
    @abc.abstractmethod
    def append_event(self, stream: str, type: str, data: dict[str, Any]) -> EventRecord: ...

    @abc.abstractmethod
    def events_after(self, stream: str, after_id: int, limit: int = 500) -> list[EventRecord]: ...

    # -- idempotency
    @abc.abstractmethod
    def begin_idempotent(
        self, owner: str, key: str, method: str, path: str, body_hash: str
    ) -> IdempotencyRecord | None:
        """Claim (owner, key). None means this caller claimed it and must `finish_idempotent`; otherwise the
        existing record (pending or done), whatever its body hash: the caller decides on 409.
        Records older than 24 h are expired first, so their keys can be claimed again."""

    @abc.abstractmethod
    def finish_idempotent(
        self, owner: str, key: str, status_code: int, body: bytes, content_type: str
    ) -> None:
        """Record the response of a pending claim; a no-op when the claim is gone (expired or abandoned)."""

    @abc.abstractmethod
    def abandon_idempotent(self, owner: str, key: str) -> None:
        """Drop a pending claim whose request failed with a 5xx, so a retry may run it again."""
