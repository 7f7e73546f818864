"""Request and response bodies of the REST API (they make the OpenAPI document).

Requests ignore unknown fields and responses allow extra ones, so clients and servers of different
versions keep working together.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..analysis import Correction, Decision
from ..results import RunResults
from ..spec import MAX_ID_LENGTH as MAX_SPEC_ID_LENGTH
from ..spec import SHA256_PATTERN
from ._seeds import MAX_SEED, WireSeed
from ._webhook_targets import MAX_URL_LENGTH as MAX_WEBHOOK_URL_LENGTH

Duration = Annotated[str, Field(max_length=64)] | float
"""`"10m"`, `"30s"`, `"1h"` or a number of seconds."""
MAX_VERSION = 2**31 - 1
"""Larger numbers cannot name a stored version (and no database column holds them)."""
MAX_ID_LENGTH = 128
"""Of any id the API accepts; ids the server makes are far shorter, spec ids at most MAX_SPEC_ID_LENGTH."""
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
SpecId = Annotated[str, Field(min_length=1, max_length=MAX_SPEC_ID_LENGTH)]


def unstorable_text(value: Any) -> str | None:
    """Why `value` (a JSON value, keys included) cannot be stored as text, or None: no store keeps a NUL
    character, and a lone surrogate is not UTF-8."""
    if isinstance(value, str):
        if "\x00" in value:
            return "text may not contain NUL characters"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "text must be valid Unicode (no lone surrogates)"
        return None
    items = (
        [*value.keys(), *value.values()]
        if isinstance(value, dict)
        else value
        if isinstance(value, list)
        else []
    )
    return next((reason for item in items if (reason := unstorable_text(item))), None)


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        reason = unstorable_text(data)
        if reason:
            raise ValueError(reason)
        return data


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorBody(_Response):
    error: str = Field(description="Stable machine-readable error code.")
    message: str = Field(description="Human-readable explanation.")
    request_id: str = Field(description="The request's X-Request-ID.")
    details: dict[str, Any] | None = None


class Health(_Response):
    status: str
    version: str


# --- specs -----------------------------------------------------------------------------------------


BlobDigest = Annotated[str, Field(pattern=SHA256_PATTERN, description="A sha256, 64 lowercase hex digits.")]


class BundleEntry(_Request):
    sha256: BlobDigest
    size: int = Field(ge=0)
    mode: Literal[420, 493] = 420
    """0o644, or 0o755 for an executable."""


class SpecUpload(_Request):
    """The JSON form of an upload (the raw YAML body is the usual one)."""

    yaml: str
    name: str | None = None
    bundle: dict[str, BundleEntry] | None = Field(
        default=None,
        description="The spec's local files, by path relative to the spec's directory (POSIX): upload "
        "each blob first (POST /v1/blobs/missing, PUT /v1/blobs/{sha256}). The spec is loaded from "
        "these files, on any server.",
    )


class BlobDigests(_Request):
    digests: list[BlobDigest] = Field(max_length=100_000)


class MissingBlobs(_Response):
    missing: list[str]


class BlobStored(_Response):
    sha256: str
    size: int


class SpecOut(_Response):
    id: str
    version: int
    name: str
    description: str
    yaml: str
    sha256: str
    created_at: datetime


class SpecBundleFileOut(_Response):
    sha256: str
    size: int
    mode: int
    """0o644 (420), or 0o755 (493) for an executable."""


class SpecBundleOut(_Response):
    """A spec bundle's manifest: its files by path relative to the spec's directory."""

    digest: str
    files: dict[str, SpecBundleFileOut]


# --- experiments -----------------------------------------------------------------------------------


class ExperimentCreate(_Request):
    name: str = Field(min_length=1, max_length=200)
    spec_id: SpecId
    spec_version: int | None = Field(default=None, ge=1, le=MAX_VERSION, description="Default: the latest.")
    secrets: dict[str, str] = Field(default_factory=dict, description="Never stored; used by the run.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free tags (repo, branch, commit...).")
    replicas: int | None = Field(default=None, ge=1, le=1000, description="Overrides parallelism.replicas.")
    concurrency: int | None = Field(default=None, ge=1, le=64, description="Sandboxes at once.")
    seed: int | None = Field(
        default=None, ge=0, le=MAX_SEED, description="Experiment seed (random if absent)."
    )


ScenarioKey = Annotated[str, Field(min_length=1, max_length=1000)]
ReplicaCount = Annotated[int, Field(ge=1, le=1000)]


class ExperimentExtend(_Request):
    replicas: dict[ScenarioKey, ReplicaCount] = Field(
        min_length=1,
        max_length=10_000,
        description="Replicas wanted per scenario id, in all: a scenario that has as many already is left "
        "as it is, so sending the same request twice runs nothing twice.",
    )
    secrets: dict[str, str] = Field(
        default_factory=dict,
        description="Never stored: an experiment created with secrets needs them again to run more replicas.",
    )


class ExperimentOut(_Response):
    id: str
    name: str
    spec_id: str
    spec_version: int
    status: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    progress: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class ExperimentResults(RunResults):
    """RunResults (partial while the experiment runs) plus the experiment's status and progress."""

    id: str
    name: str
    status: str
    spec_version: int
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    progress: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class CompareRequest(_Request):
    baseline_id: Id
    candidate_id: Id
    alpha: float | None = Field(
        default=None, gt=0, le=0.5, description="Significance level after the correction. Default: 0.05."
    )
    correction: Correction | None = Field(
        default=None,
        description="Multiple-testing correction: holm (family-wise error) or bh (false discovery rate). "
        "Default: holm.",
    )
    min_effect: float | None = Field(
        default=None, ge=0, le=1, description="Smallest pass-rate change (0-1) that counts. Default: 0.1."
    )


class ComparisonPolicy(_Response):
    """What the comparison used: the request's values, or the defaults (those of `ks gate`)."""

    alpha: float
    correction: Correction
    min_effect: float


class MetricComparison(_Response):
    name: str
    baseline: float
    candidate: float
    delta: float
    direction: Literal["better", "worse", "same"]
    p_value: float | None = None


class SuiteComparison(_Response):
    """The test over all scenarios compared (with one scenario, that scenario's test)."""

    baseline_pass_rate: float
    candidate_pass_rate: float
    drop: float = Field(description="Baseline minus candidate pass rate, the mean over the scenarios.")
    p_value: float = Field(description="One-sided: the candidate passes less often.")
    p_adjusted: float
    decision: Decision
    replicas_needed: int | None = Field(
        default=None, description="Replicas per scenario that would decide (when inconclusive)."
    )


class ScenarioComparison(_Response):
    scenario_id: str
    baseline_pass_rate: float | None
    candidate_pass_rate: float | None
    p_value: float | None = Field(description="One-sided Fisher exact test: the candidate passes less often.")
    p_adjusted: float | None = None
    decision: Decision | Literal["untested"] = Field(
        default="untested", description="untested: the candidate's scenario errored, or a run has no verdict."
    )
    replicas_needed: int | None = None
    regressed: bool


class Comparison(_Response):
    baseline_id: str
    candidate_id: str
    metrics: list[MetricComparison]
    regressed: bool
    regressions: list[str]
    summary: str
    policy: ComparisonPolicy
    suite: SuiteComparison | None = None
    scenarios: list[ScenarioComparison] = Field(default_factory=list)


class ToolStats(_Response):
    count: int
    mean_ms: float
    error_rate: float


class MetricsSummary(_Response):
    total_runs: int
    pass_rate: float
    total_cost_usd: float
    mean_cost_per_run_usd: float
    mean_wall_ms: float
    p95_wall_ms: float
    total_tool_calls: int
    tool_success_rate: float


class TrendPoint(_Response):
    run_id: str
    ts: datetime | None
    pass_rate: float | None = None
    cost_usd: float | None = None


class ExperimentMetrics(_Response):
    experiment_id: str
    summary: MetricsSummary
    tool_breakdown: dict[str, ToolStats]
    cost_trend: list[TrendPoint]
    pass_rate_trend: list[TrendPoint]


# --- sandboxes -------------------------------------------------------------------------------------


MAX_IMAGE_LENGTH = 255
"""Of an image reference in a request (Docker's own limit on a repository name)."""
MAX_SANDBOX_SERVICES = 8
ImageService = Literal["postgres", "redis", "s3", "http_mock"]
"""The service kinds a sandbox created from an image may ask for, each under its own name."""
ImageReference = Annotated[
    str, Field(min_length=1, max_length=MAX_IMAGE_LENGTH, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
]


class SandboxCreate(_Request):
    """Either a spec (`spec_id`, the sandbox the spec declares) or an image and the services to run
    beside it (`image`, `services`; no spec)."""

    spec_id: SpecId | None = Field(default=None, description="Boot the sandbox this spec declares.")
    spec_version: int | None = Field(default=None, ge=1, le=MAX_VERSION)
    image: ImageReference | None = Field(
        default=None, description="Boot this image, with `services` and no spec (e.g. debian:bookworm-slim)."
    )
    services: list[ImageService] = Field(
        default_factory=list,
        max_length=MAX_SANDBOX_SERVICES,
        description="With `image`: the services to run beside it, each reachable under its kind's name "
        "(`http-mock` for http_mock).",
    )
    timeout: Duration | None = Field(default=None, description='e.g. "10m"; default: resources.timeout.')
    metadata: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict, description="Never stored; used by the boot.")
    seed: WireSeed | None = Field(default=None, description="Reuse a sandbox's seed (random if absent).")

    @model_validator(mode="after")
    def _spec_or_image(self) -> SandboxCreate:
        if (self.spec_id is None) == (self.image is None):
            raise ValueError("give either `spec_id` (a sandbox from a spec) or `image` (and `services`)")
        if self.image is None and self.services:
            raise ValueError("`services` go with `image`; a spec declares its own services")
        if self.image is not None and self.spec_version is not None:
            raise ValueError("`spec_version` goes with `spec_id`")
        if len(set(self.services)) < len(self.services):
            raise ValueError("each service may be asked for once")
        return self


class ServiceInfo(_Response):
    host: str
    port: int | None
    ready: bool


SandboxStatus = Literal["provisioning", "ready", "running", "stopped", "failed"]


class SandboxOut(_Response):
    id: str
    spec_id: str = Field(description="Empty for a sandbox created from an image.")
    status: SandboxStatus
    state: str = Field(description="Keystone's state: creating, ready, running, error or destroyed.")
    image: str | None = None
    seed: str | None = Field(default=None, description="Create a sandbox with it to reproduce this one.")
    created_at: datetime
    expires_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    services: dict[str, ServiceInfo] = Field(default_factory=dict)


class CommandRequest(_Request):
    command: str = Field(min_length=1)
    timeout: Duration | None = Field(default=None, description='e.g. "30s"; default: no limit.')
    background: bool = False


class CommandResult(_Response):
    command: str
    stdout: str
    stderr: str
    exit_code: int
    duration_ms: int
    timed_out: bool = False
    background: bool = False


class FileWrite(_Request):
    path: str = Field(min_length=1, description="Relative to /workspace (`/workspace/x` is `x`).")
    content: str
    encoding: Literal["utf-8", "base64"] = "utf-8"


class FileWritten(_Response):
    path: str
    size: int


class FileInfo(_Response):
    size: int
    mode: str
    checksum: str


class StateSnapshot(_Response):
    sandbox_id: str
    captured_at: datetime
    files: dict[str, FileInfo]


class StateDiff(_Response):
    sandbox_id: str
    added: list[str]
    removed: list[str]
    modified: list[str]


class TimeoutRequest(_Request):
    timeout: Duration = Field(description='New time left from now, e.g. "10m".')


class TraceIngest(_Request):
    events: list[dict[str, Any]] = Field(max_length=10_000)


class TraceAccepted(_Response):
    accepted: int


class TracesIngest(_Request):
    events: list[dict[str, Any]] = Field(max_length=10_000)
    sandbox_id: str | None = Field(
        default=None,
        max_length=200,
        description="The sandbox the events belong to (scored with its replica); a sandbox token's own "
        "sandbox when it sends them; none for an agent run outside Keystone.",
    )
    trace_id: str | None = Field(
        default=None, max_length=200, description="The trace of events that name none; a new one if absent."
    )


class TracesAccepted(_Response):
    accepted: int
    trace_ids: list[str]
    """The traces the events were filed under."""


class TraceMetrics(_Response):
    total_tool_calls: int
    tool_success_rate: float
    mean_duration_ms: float
    p95_duration_ms: float
    tool_breakdown: dict[str, ToolStats]


class Trace(_Response):
    sandbox_id: str
    events: list[dict[str, Any]]
    metrics: TraceMetrics


# --- agent snapshots -------------------------------------------------------------------------------

AGENT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
AgentName = Annotated[str, Field(pattern=AGENT_NAME_PATTERN, description="e.g. `email-agent`.")]
AgentTag = Annotated[str, Field(pattern=AGENT_NAME_PATTERN, description="e.g. `v2.1`, `prod`.")]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]


class ConfigFile(_Request):
    path: str = Field(
        min_length=1,
        max_length=500,
        description="Where the file is written, relative to the agent's directory (no `..`).",
    )
    template: str = Field(
        max_length=1024**2,
        description="The file's text; `{{NAME}}` is replaced by the run's value of the environment "
        "variable or secret NAME.",
    )

    @model_validator(mode="after")
    def _relative(self) -> ConfigFile:
        parts = self.path.split("/")
        if self.path.startswith("/") or ".." in parts or "\\" in self.path:
            raise ValueError(f"config file path {self.path!r} must be relative, without '..'")
        return self


class AgentAuth(_Request):
    required_env: list[EnvName] = Field(
        default_factory=list,
        max_length=100,
        description="Environment variables a run must provide (spec `env` or `secrets`); a run without "
        "one fails with a message naming it.",
    )
    config_files: list[ConfigFile] = Field(default_factory=list, max_length=100)


class AgentUpload(_Request):
    """The `metadata` form field of `POST /v1/agents` (JSON)."""

    name: AgentName
    entrypoint: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(
        min_length=1, max_length=64, description='The command that runs the agent: ["python", "main.py"].'
    )
    runtime: str | None = Field(default=None, max_length=64, description="e.g. `python3.12`.")
    tag: AgentTag | None = Field(default=None, description="Points this tag at the snapshot (moving it).")
    auth: AgentAuth = Field(default_factory=AgentAuth)


class AgentSnapshotOut(_Response):
    id: str = Field(description="`snap_` and the sha256 of the tarball: the same bytes, the same id.")
    name: str
    version: int
    tag: str | None = Field(description="The tag this upload set, else one of `tags`.")
    tags: list[str] = Field(description="Every tag pointing at this version now.")
    digest: str = Field(description="`sha256:<hex>` of the tarball.")
    size_bytes: int
    storage_path: str
    runtime: str | None
    entrypoint: list[str]
    auth: AgentAuth
    created_at: datetime


class AgentSnapshotPage(_Response):
    items: list[AgentSnapshotOut]
    next_cursor: str | None = Field(description="The `cursor` of the next page; null on the last page.")


# --- documented error statuses ---------------------------------------------------------------------

_ERROR_DESCRIPTIONS = {
    400: "Malformed request or validation failure",
    401: "Missing or invalid API key",
    403: "The key may not touch this resource (sandbox tokens reach only their own sandbox)",
    404: "Not found",
    409: "Resource in the wrong state, or an Idempotency-Key reused with another request",
    413: "Body too large",
    415: "Unsupported content type",
    429: "Rate limited; retry after Retry-After seconds",
    500: "Server error, or a sandbox that could not boot",
    503: "At capacity; retry after Retry-After seconds",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each status with the error body (and Retry-After on 429/503)."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in (400, 401, 429, *statuses):
        entry: dict[str, Any] = {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[status]}
        if status in (429, 503):
            entry["headers"] = _RETRY_AFTER
        documented[status] = entry
    return documented


SSE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
    **error_responses(403, 404),
}
"""The `responses=` of a Server-Sent Events route."""


# --- webhook subscriptions ---------------------------------------------------------------------------

WebhookEventType = Literal["run.completed", "replica.completed", "experiment.completed"]


class WebhookCreate(_Request):
    url: str = Field(
        min_length=1,
        max_length=MAX_WEBHOOK_URL_LENGTH,
        description="http(s) URL the events are POSTed to; no credentials, no private network address.",
    )
    events: list[WebhookEventType] = Field(min_length=1, max_length=len(get_args(WebhookEventType)))
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=256,
        description="Signs every delivery (`Keystone-Signature`); generated when absent.",
    )


class WebhookOut(_Response):
    id: str
    url: str
    events: list[str]
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="Verifies `Keystone-Signature`; answered only here, never again.")


class WebhookDeliveryOut(_Response):
    id: str = Field(description="The `Keystone-Delivery` header; the same on every retry.")
    event_id: str = Field(description="The `Keystone-Event-Id` header.")
    event_type: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    status_code: int | None = Field(description="The receiver's answer to the last attempt, if any.")
    error: str | None = None
    created_at: datetime
    updated_at: datetime


# --- runs and replica suites (the Keystone REST API's /v1/runs and /v1/replicas) ---------------------


class RunCreate(_Request):
    spec_id: SpecId
    spec_version: int | None = Field(default=None, ge=1, le=MAX_VERSION)
    sandbox_id: Id | None = Field(
        default=None, description="Not supported: a run always boots a fresh sandbox."
    )
    seed: WireSeed | None = Field(default=None, description="Replay this seed (from a previous run).")
    inputs: dict[str, Any] | None = Field(
        default=None, description="The matrix cell to run (its parameters)."
    )
    secrets: dict[str, str] = Field(default_factory=dict, description="Never stored; used by the run.")
    metadata: dict[str, Any] = Field(default_factory=dict)


class RunReplay(_Request):
    secrets: dict[str, str] = Field(default_factory=dict, description="Never stored; used by the run.")


class RunInvariant(_Response):
    invariant_id: str
    name: str
    status: Literal["passed", "failed", "skipped"]
    evidence: dict[str, Any] = Field(default_factory=dict)


RunStatus = Literal["queued", "running", "passed", "failed", "errored"]
SuiteStatus = Literal["running", "complete", "errored"]


class RunOut(_Response):
    id: str
    sandbox_id: str = Field(description="Empty until the run's sandbox boots.")
    spec_id: str
    status: RunStatus
    score: float | None = None
    invariant_results: list[RunInvariant] = Field(default_factory=list)
    trajectory_url: str = Field(description="GET it (with the API key) for the run's trace events.")
    seed: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    duration_ms: int | None = None
    error: str | None = None
    created_at: datetime


class RunTrajectory(_Response):
    """What a run's `trajectory_url` answers."""

    run_id: str
    sandbox_id: str = Field(description="Empty until the run's sandbox boots.")
    events: list[dict[str, Any]] = Field(description="What the agent reported to its sandbox's trace.")
    metrics: TraceMetrics
    audit: list[dict[str, Any]] = Field(
        description="Once the run ends: the commands, file writes and SQL its sandbox recorded."
    )


class ReplicaSuiteCreate(_Request):
    spec_id: SpecId
    spec_version: int | None = Field(default=None, ge=1, le=MAX_VERSION)
    n_replicas: int = Field(ge=2, le=1000)
    inputs: dict[str, Any] | None = Field(default=None, description="Run only this matrix cell.")
    concurrency: int | None = Field(default=None, ge=1, le=64)
    seed: WireSeed | None = Field(default=None, description="The suite's seed (random if absent).")
    secrets: dict[str, str] = Field(default_factory=dict, description="Never stored; used by the run.")
    metadata: dict[str, Any] = Field(default_factory=dict)


class ReplicaSuiteOut(_Response):
    id: str
    run_id: str = Field(description="The experiment that runs the suite (the suite's own id).")
    spec_id: str
    n_replicas: int
    status: SuiteStatus
    passed: int
    failed: int
    errored: int
    failure_rate: float
    seeds: list[str] = Field(description="One per replica; POST /v1/runs with a seed re-runs that replica.")
    error: str | None = None
    created_at: datetime


# --- projects and keys (admin) -----------------------------------------------------------------------

PROJECT_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
ProjectName = Annotated[str, Field(pattern=PROJECT_NAME_PATTERN)]


def project_name_problem(name: str) -> str | None:
    """Why `name` cannot name a project, or None."""
    if re.fullmatch(PROJECT_NAME_PATTERN, name):
        return None
    return f"{name[:80]!r}: 1 to 64 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"


class ProjectCreate(_Request):
    name: ProjectName


class ProjectOut(_Response):
    id: str
    name: str
    created_at: datetime


class KeyCreate(_Request):
    name: Annotated[str, Field(min_length=1, max_length=128)]
    project_id: Id
    admin: bool = False


class KeyOut(_Response):
    """A key as listings show it: never the key itself, only its first characters (`prefix`)."""

    id: str
    name: str
    prefix: str
    project_id: str
    admin: bool
    revoked: bool
    created_at: datetime


class KeyCreated(KeyOut):
    key: str = Field(description="The key itself, shown only in this response.")
