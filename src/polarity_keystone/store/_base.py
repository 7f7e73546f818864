"""What the server persists, behind one interface with a SQLite and a Postgres implementation.

Records are plain dataclasses; JSON-shaped fields (`metadata`, `results`, `data`, ...) are dicts stored
as JSON text. Every method is safe to call from several threads at once: the server calls the store
from its request handlers and from the experiment workers.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Literal, TypeVar

ExperimentStatus = Literal["created", "queued", "running", "completed", "failed", "cancelled", "interrupted"]
SandboxStateName = Literal["creating", "ready", "running", "error", "destroyed"]
T = TypeVar("T")
DEFAULT_PROJECT = "default"
"""The project of the embedded server, and of every key and resource stored before projects existed."""


class StoreError(Exception):
    """A store operation that cannot succeed as asked (unknown id, wrong state)."""


class NotFound(StoreError):
    pass


class Conflict(StoreError):
    """A uniqueness or state rule would be broken (e.g. an idempotency key reused with another body)."""


class InvalidCursor(StoreError):
    """A pagination cursor this store did not issue, or issued for another listing (a client error)."""


@dataclass(frozen=True)
class ProjectRecord:
    id: str
    name: str
    created_at: datetime


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
    project_id: str = DEFAULT_PROJECT
    """The project whose resources the key sees; it sees nothing of another project."""
    admin: bool = False
    """An admin key may also create projects and keys (of any project)."""


@dataclass(frozen=True)
class SpecRecord:
    id: str
    version: int
    yaml: str
    sha256: str
    created_at: datetime
    project_id: str = DEFAULT_PROJECT
    """Spec ids are per project: two projects may each have a spec `refunds`."""


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class TraceEventIndex:
    """What trace listings filter on, read from an event by its caller: the store keeps events as sent."""

    trace_id: str | None = None
    event_type: str = ""
    tool: str = ""


@dataclass(frozen=True)
class TraceEventRecord:
    id: int
    sandbox_id: str | None
    trace_id: str | None
    data: dict[str, Any]
    created_at: datetime


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
    project_id: str = DEFAULT_PROJECT
    instance_id: str | None = None
    """The server instance that queued it last: while it is queued or running, the one running it (see
    `Store.renew_instance`)."""


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
    project_id: str = DEFAULT_PROJECT
    instance_id: str | None = None
    """The server instance that booted it (see `Store.renew_instance`)."""


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


@dataclass(frozen=True)
class WebhookRecord:
    """A project's subscription: `events` of its experiments are POSTed to `url`, signed with `secret`."""

    id: str
    project_id: str
    url: str
    events: list[str]
    secret: str
    created_at: datetime


@dataclass(frozen=True)
class AlertRuleRecord:
    """A project's alert: when `condition` holds over `eval_window` of a spec's completed experiments,
    a firing is sent to `webhook_url` (signed with `secret`) or to Slack (`slack_webhook_url`, else the
    operator's)."""

    id: str
    project_id: str
    name: str
    eval_id: str | None
    condition: str
    eval_window: str
    notify: Literal["webhook", "slack"]
    webhook_url: str | None
    slack_channel: str | None
    slack_webhook_url: str | None
    secret: str
    created_at: datetime


@dataclass(frozen=True)
class AlertFiringRecord:
    """One time a rule held after an experiment completed, and its delivery's last outcome."""

    id: str
    rule_id: str
    rule_name: str
    reason: str
    experiment_id: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    status_code: int | None
    error: str | None
    created_at: datetime
    """When it fired."""
    updated_at: datetime


@dataclass(frozen=True)
class ScoreRuleRecord:
    """A project's score rule: how an experiment's replicas are scored when it is (re-)scored offline.
    `options` is the rule type's configuration (`{text}`, `{pattern}`, `{criteria|rubric, model}`)."""

    id: str
    project_id: str
    name: str
    type: Literal["contains", "regex", "llm_as_judge"]
    options: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class ScoreRecord:
    """One rule's score of one replica of an experiment; `state` skipped: the rule could not be
    evaluated (no judge configured), never passed."""

    id: str
    project_id: str
    experiment_id: str
    rule_id: str
    trace_id: str
    """The replica's sandbox id, under which its trace events are filed."""
    scenario_id: str
    replica: int
    score: float | None
    state: Literal["passed", "failed", "skipped"]
    message: str
    created_at: datetime


@dataclass(frozen=True)
class WebhookDeliveryRecord:
    """One event sent (or being sent) to one subscription: the last attempt's outcome."""

    id: str
    """Sent as `Keystone-Delivery`; the same on every retry."""
    webhook_id: str
    event_id: str
    event_type: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    status_code: int | None
    """The receiver's answer to the last attempt; None when it could not be reached."""
    error: str | None
    created_at: datetime
    updated_at: datetime
    experiment_id: str | None = None
    """The experiment (or run) the event is about: its body is made again from it when the delivery is
    resumed by another server. None in deliveries logged before it was recorded."""
    instance_id: str | None = None
    """The server instance delivering it (see `take_abandoned_deliveries`)."""


@dataclass(frozen=True)
class AgentSnapshotRecord:
    """One uploaded agent bundle of a project. Its tarball is the blob `digest` (sha256 hex) and its id is
    `snap_<digest>`, so the same bytes are the same snapshot; versions count up per name, never reused."""

    project_id: str
    id: str
    name: str
    version: int
    digest: str
    size_bytes: int
    entrypoint: list[str]
    runtime: str | None
    auth: dict[str, Any]
    created_at: datetime
    tags: tuple[str, ...] = ()
    """The tags that point at this version now (a tag points at one version of its name)."""


@dataclass(frozen=True)
class DatasetRecord:
    """A project's versioned dataset: each append of entries makes the next version (the first is 1,
    empty), and every older version stays readable (its entries are those of versions up to it)."""

    id: str
    project_id: str
    name: str
    description: str
    owner: str
    """The id of the API key that created it."""
    version: int
    entry_count: int
    size_bytes: int
    """What its entries weigh, summed (each entry's `size_bytes`)."""
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DatasetEntry:
    """One entry to append to a dataset, as its caller made it (id and size included)."""

    id: str
    input: Any
    expected: Any
    metadata: dict[str, Any]
    tags: tuple[str, ...]
    size_bytes: int


@dataclass(frozen=True)
class DatasetEntryRecord:
    """A stored dataset entry: the version that added it, and its place among that version's entries."""

    dataset_id: str
    version: int
    position: int
    entry: DatasetEntry
    created_at: datetime


@dataclass(frozen=True)
class DatasetQuota:
    """The most one dataset may hold, over all its versions."""

    max_entries: int
    max_bytes: int


@dataclass(frozen=True)
class PromptRecord:
    """One version of a project's prompt template. Versions count up per slug from 1 and are never
    reused, even after a delete; a tag names the newest live version that was created with it."""

    project_id: str
    id: str
    slug: str
    version: int
    template: str
    tag: str | None
    variables: list[str]
    metadata: dict[str, Any]
    created_at: datetime


class Store(abc.ABC):
    """Persistence for the server. Implementations: `SqliteStore`, `PostgresStore` (`open_store(url)`)."""

    # -- lifecycle
    @abc.abstractmethod
    def close(self) -> None: ...

    # -- projects and API keys
    @abc.abstractmethod
    def add_project(self, record: ProjectRecord) -> None:
        """Conflict when the id or the name is taken."""

    @abc.abstractmethod
    def get_project(self, project_id: str) -> ProjectRecord: ...

    @abc.abstractmethod
    def list_projects(self) -> list[ProjectRecord]: ...

    @abc.abstractmethod
    def add_api_key(self, record: ApiKeyRecord) -> None: ...

    @abc.abstractmethod
    def api_key_by_hash(self, key_hash: str) -> ApiKeyRecord | None: ...

    @abc.abstractmethod
    def list_api_keys(self, project_id: str | None = None) -> list[ApiKeyRecord]:
        """Every key, or those of one project."""

    @abc.abstractmethod
    def revoke_api_key(self, key_id: str) -> None: ...

    @property
    @abc.abstractmethod
    def revocations(self) -> int:
        """How many keys were revoked through this object so far: a key record read through it before this
        number changed may be stale."""

    # -- specs
    @abc.abstractmethod
    def put_spec(self, project_id: str, spec_id: str, yaml_text: str, sha256: str) -> SpecRecord:
        """Store a new version (latest + 1); uploading the latest version's exact content again returns
        that version instead of adding one."""

    @abc.abstractmethod
    def get_spec(self, project_id: str, spec_id: str, version: int | None = None) -> SpecRecord:
        """The latest version, or the given one; NotFound if absent or deleted."""

    @abc.abstractmethod
    def list_specs(self, project_id: str, *, cursor: str | None, limit: int) -> Page[SpecRecord]:
        """Latest version of each spec, ordered by id."""

    @abc.abstractmethod
    def delete_spec(self, project_id: str, spec_id: str) -> None: ...

    # -- experiments
    @abc.abstractmethod
    def add_experiment(self, record: ExperimentRecord) -> None: ...

    @abc.abstractmethod
    def get_experiment(self, experiment_id: str) -> ExperimentRecord: ...

    @abc.abstractmethod
    def get_experiment_head(self, experiment_id: str) -> ExperimentRecord:
        """The experiment with `results` left out (None whatever is stored): enough to check its project
        and status without reading and decoding a large document."""

    @abc.abstractmethod
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
        """Newest first (by created_at, then id); `metadata` keeps experiments whose metadata has all the
        given key/values (string values, compared exactly)."""

    @abc.abstractmethod
    def update_experiment(self, experiment_id: str, **changes: Any) -> ExperimentRecord:
        """Set the given fields (status, progress, results, error, started_at, finished_at, options,
        metadata, instance_id)."""

    @abc.abstractmethod
    def transition_experiment(
        self, experiment_id: str, from_statuses: tuple[str, ...], to_status: str, **changes: Any
    ) -> ExperimentRecord | None:
        """Atomically move to `to_status` only if the status is one of `from_statuses`; None otherwise.
        This is how two concurrent `run` calls start the experiment once."""

    @abc.abstractmethod
    def experiment_writes(self, experiment_id: str) -> int:
        """A count that grows whenever the experiment is updated or transitioned through this object (a
        write to another experiment may grow it too): a record read through it before the count changed
        may be stale."""

    @abc.abstractmethod
    def interrupt_abandoned_experiments(self) -> list[ExperimentRecord]:
        """Move every queued or running experiment whose server instance is gone (its lease expired, or
        it has none: an experiment from before instances) to `interrupted`, and return them. Of
        concurrent callers (servers sweeping one store), each experiment goes to exactly one."""

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
        self, *, project_id: str | None, owner: str | None = None, include_destroyed: bool = False
    ) -> list[SandboxRecord]:
        """Those of one project (every project's: None), of one key (`owner`) or all of them."""

    @abc.abstractmethod
    def destroy_abandoned_sandboxes(self) -> list[SandboxRecord]:
        """Move every sandbox not yet destroyed (nor failed) whose server instance is gone to
        `destroyed`, and return them; as `interrupt_abandoned_experiments`, each goes to one caller."""

    # -- the server instances sharing this store
    @abc.abstractmethod
    def renew_instance(self, instance_id: str, ttl: timedelta) -> None:
        """Say that the server instance `instance_id` lives for `ttl` from now: the experiments it queued
        and the sandboxes it booted (their `instance_id`) are left alone until then."""

    @abc.abstractmethod
    def end_instance(self, instance_id: str) -> None:
        """The instance stopped: what it still holds is abandoned at once."""

    # -- trace events reported by agents
    @abc.abstractmethod
    def add_trace_events(
        self,
        sandbox_id: str | None,
        owner: str,
        events: list[dict[str, Any]],
        *,
        project_id: str = DEFAULT_PROJECT,
        index: Callable[[dict[str, Any]], TraceEventIndex] | None = None,
    ) -> int:
        """Append, as sent, with what `index` reads from each for listings; returns how many were stored."""

    @abc.abstractmethod
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
        """The project's events, oldest first, narrowed by each filter given."""

    @abc.abstractmethod
    def trace_events(self, sandbox_id: str) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def trace_event_count(self, sandbox_id: str) -> int: ...

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

    # -- agent snapshots (every method reads and writes only the given project's)
    @abc.abstractmethod
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
        """Add the next version of `name`, or return the snapshot these bytes already are (moving `tag` to
        it). Conflict when the bytes are already another agent's snapshot, or this one's with other
        settings (entrypoint, runtime, auth)."""

    @abc.abstractmethod
    def get_agent_snapshot(self, project_id: str, snapshot_id: str) -> AgentSnapshotRecord: ...

    @abc.abstractmethod
    def resolve_agent(
        self, project_id: str, name: str, *, version: int | None = None, tag: str | None = None
    ) -> AgentSnapshotRecord:
        """The given version, the version `tag` points at, or (neither given) the latest version."""

    @abc.abstractmethod
    def list_agents(self, project_id: str, *, cursor: str | None, limit: int) -> Page[AgentSnapshotRecord]:
        """The latest version of each agent, ordered by name."""

    @abc.abstractmethod
    def list_agent_versions(
        self, project_id: str, name: str, *, cursor: str | None, limit: int
    ) -> Page[AgentSnapshotRecord]:
        """The versions of one agent, newest first; NotFound when it has none."""

    @abc.abstractmethod
    def delete_agent_snapshot(self, project_id: str, snapshot_id: str) -> None:
        """Delete one version (its number is never given again) and the tags pointing at it."""

    # -- webhook subscriptions and their deliveries
    @abc.abstractmethod
    def add_webhook(self, record: WebhookRecord, *, max_per_project: int) -> None:
        """Conflict when the project already has `max_per_project` subscriptions."""

    @abc.abstractmethod
    def get_webhook(self, project_id: str, webhook_id: str) -> WebhookRecord:
        """NotFound when absent or another project's."""

    @abc.abstractmethod
    def list_webhooks(self, project_id: str, *, cursor: str | None, limit: int) -> Page[WebhookRecord]:
        """Oldest first (by created_at, then id)."""

    @abc.abstractmethod
    def subscribed_webhooks(self, project_id: str, event_type: str) -> list[WebhookRecord]: ...

    @abc.abstractmethod
    def delete_webhook(self, project_id: str, webhook_id: str) -> None:
        """Also drops its delivery log; NotFound when absent or another project's."""

    @abc.abstractmethod
    def put_webhook_delivery(self, record: WebhookDeliveryRecord, *, keep: int) -> bool:
        """Insert or replace; only the subscription's `keep` newest deliveries are kept. False, storing
        nothing, when the subscription was deleted meanwhile."""

    @abc.abstractmethod
    def take_abandoned_deliveries(self, instance_id: str) -> list[WebhookDeliveryRecord]:
        """Hand every pending delivery whose server instance is gone (as `interrupt_abandoned_experiments`
        decides) to `instance_id`, and return them; of concurrent callers, each goes to exactly one."""

    @abc.abstractmethod
    def webhook_deliveries(self, webhook_id: str) -> list[WebhookDeliveryRecord]:
        """Oldest first."""

    # -- alert rules and their firings
    @abc.abstractmethod
    def add_alert_rule(self, record: AlertRuleRecord, *, max_per_project: int) -> None:
        """Conflict when the project already has `max_per_project` rules."""

    @abc.abstractmethod
    def get_alert_rule(self, project_id: str, rule_id: str) -> AlertRuleRecord:
        """NotFound when absent or another project's."""

    @abc.abstractmethod
    def list_alert_rules(self, project_id: str, *, cursor: str | None, limit: int) -> Page[AlertRuleRecord]:
        """Oldest first (by created_at, then id)."""

    @abc.abstractmethod
    def delete_alert_rule(self, project_id: str, rule_id: str) -> None:
        """Also drops its firings; NotFound when absent or another project's."""

    @abc.abstractmethod
    def put_alert_firing(self, record: AlertFiringRecord, *, keep: int) -> bool:
        """Insert or replace; only the rule's `keep` newest firings are kept. False, storing nothing, when
        the rule was deleted meanwhile."""

    @abc.abstractmethod
    def alert_firings(self, rule_id: str) -> list[AlertFiringRecord]:
        """Oldest first."""

    # -- score rules and the scores they gave
    @abc.abstractmethod
    def add_score_rule(self, record: ScoreRuleRecord, *, max_per_project: int) -> None:
        """Conflict when the project already has `max_per_project` rules."""

    @abc.abstractmethod
    def get_score_rule(self, project_id: str, rule_id: str) -> ScoreRuleRecord:
        """NotFound when absent or another project's."""

    @abc.abstractmethod
    def list_score_rules(self, project_id: str, *, cursor: str | None, limit: int) -> Page[ScoreRuleRecord]:
        """Oldest first (by created_at, then id)."""

    @abc.abstractmethod
    def delete_score_rule(self, project_id: str, rule_id: str) -> None:
        """Also drops its scores; NotFound when absent or another project's."""

    @abc.abstractmethod
    def replace_scores(self, rule: ScoreRuleRecord, experiment_id: str, scores: list[ScoreRecord]) -> bool:
        """The rule's scores of the experiment become `scores` (earlier ones are dropped). False, storing
        nothing, when the rule was deleted meanwhile."""

    @abc.abstractmethod
    def list_scores(
        self, project_id: str, experiment_id: str, *, rule_id: str | None, cursor: str | None, limit: int
    ) -> Page[ScoreRecord]:
        """The experiment's scores (of one rule, when given), oldest first (by created_at, then id)."""

    # -- datasets and their versioned entries (every method reads and writes only the given project's)
    @abc.abstractmethod
    def add_dataset(self, record: DatasetRecord, *, max_per_project: int) -> None:
        """Conflict when the project already has `max_per_project` datasets."""

    @abc.abstractmethod
    def get_dataset(self, project_id: str, dataset_id: str) -> DatasetRecord:
        """NotFound when absent or another project's."""

    @abc.abstractmethod
    def list_datasets(self, project_id: str, *, cursor: str | None, limit: int) -> Page[DatasetRecord]:
        """Oldest first (by created_at, then id)."""

    @abc.abstractmethod
    def delete_dataset(self, project_id: str, dataset_id: str) -> None:
        """The dataset and all its entries; NotFound when absent or another project's."""

    @abc.abstractmethod
    def append_dataset_entries(
        self, project_id: str, dataset_id: str, entries: Sequence[DatasetEntry], quota: DatasetQuota
    ) -> DatasetRecord:
        """Store `entries` as the dataset's next version, in their order; returns the dataset as it is
        then. Conflict, storing nothing, when the dataset would then exceed `quota`. Concurrent appends
        each make their own version."""

    @abc.abstractmethod
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
        """The entries of `version` (all versions up to it; default: the latest) carrying every one of
        `tags`, oldest first: a page of at most `limit`, and of no more than `max_bytes` of entries unless
        its one entry is larger. NotFound when the dataset is absent or has no such version yet."""

    # -- prompt templates, versioned per slug (every method reads and writes only the given project's)
    @abc.abstractmethod
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
        """Store `template` as the next version of `slug`. Conflict when the project already has
        `max_per_project` live versions (of all its prompts)."""

    @abc.abstractmethod
    def get_prompt(self, project_id: str, prompt_id: str) -> PromptRecord:
        """NotFound when absent, deleted or another project's."""

    @abc.abstractmethod
    def resolve_prompt(
        self, project_id: str, slug: str, *, version: int | None = None, tag: str | None = None
    ) -> PromptRecord:
        """The given version, the newest version created with `tag`, or (neither given) the latest."""

    @abc.abstractmethod
    def list_prompts(self, project_id: str, *, cursor: str | None, limit: int) -> Page[PromptRecord]:
        """The latest version of each prompt, ordered by slug."""

    @abc.abstractmethod
    def list_prompt_versions(
        self, project_id: str, slug: str, *, cursor: str | None, limit: int
    ) -> Page[PromptRecord]:
        """The versions of one prompt, newest first; NotFound when it has none."""

    @abc.abstractmethod
    def delete_prompt(self, project_id: str, prompt_id: str) -> None:
        """Delete one version (its number is never given again); NotFound when absent."""

    # -- blob owners: blobs are shared on disk, but a project may name in a bundle only the blobs it
    # uploaded itself (or a manifest it sent)
    @abc.abstractmethod
    def add_blob_owner(self, project_id: str, sha256: str, size: int, max_project_bytes: int | None) -> bool:
        """Record that the project holds the blob (a no-op when it already does). False, recording
        nothing, when the project's blobs would then total more than `max_project_bytes`."""

    @abc.abstractmethod
    def owned_blobs(self, project_id: str, digests: Sequence[str]) -> set[str]:
        """The digests of `digests` the project holds."""

    @abc.abstractmethod
    def blob_usage(self, project_id: str) -> int:
        """The total size of the project's blobs, in bytes."""

    @abc.abstractmethod
    def hold_blobs(self, project_id: str, digests: Sequence[str]) -> set[str]:
        """The digests of `digests` the project holds, each held anew from now: garbage collection
        releases no ownership held within its grace period, so a bundle naming them is safe from it."""

    # -- blob garbage collection: what a project still uses, and releasing what it does not
    @abc.abstractmethod
    def live_spec_versions(self, project_id: str) -> dict[str, set[int]]:
        """The versions of each of the project's specs that are not deleted, by spec id."""

    @abc.abstractmethod
    def experiment_options_since(self, project_id: str, since: datetime) -> list[dict[str, Any]]:
        """The options of the project's experiments created at or after `since`, or still queued or
        running (whatever their age)."""

    @abc.abstractmethod
    def live_snapshot_digests(self, project_id: str) -> set[str]:
        """The tarball digests of the project's snapshots that are not deleted."""

    @abc.abstractmethod
    def blobs_held_before(self, project_id: str, before: datetime) -> dict[str, int]:
        """The project's blobs (digest: size) last held before `before`."""

    @abc.abstractmethod
    def release_blobs(
        self, project_id: str, digests: Sequence[str], before: datetime, delete: Callable[[str], None]
    ) -> dict[str, int]:
        """Drop the project's ownership of each of `digests` still last held before `before`, lower its
        usage by the blob's size, and call `delete(digest)` when no project owns the blob any more: one
        transaction per blob, which a concurrent claim of the same blob waits for. So a claim either
        comes first (the blob stays) or finds it gone (and stores it again), and a `delete` that raises
        keeps the ownership (released again next time). Returns the released blobs (digest: size)."""

    @abc.abstractmethod
    def blob_owners(self, digests: Sequence[str]) -> dict[str, set[str]]:
        """The projects owning each of `digests` (a digest no project owns is absent)."""

    @abc.abstractmethod
    def take_lease(self, name: str, holder: str, ttl: timedelta) -> bool:
        """Hold the lease `name` for `ttl` unless another holder's lease is unexpired; whether taken."""

    @abc.abstractmethod
    def drop_lease(self, name: str, holder: str) -> None:
        """End `holder`'s lease `name` (a no-op when another holds it)."""
