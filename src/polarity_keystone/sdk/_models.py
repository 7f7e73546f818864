"""Typed responses of the Keystone API (the Keystone SDK's dataclasses, as pydantic models).

Every model keeps fields it does not know (`extra="allow"`), so a newer server never breaks an older
SDK, and has `from_dict` as the Keystone SDK's dataclasses do. Run results reuse
`polarity_keystone.results`, the shapes the engine writes, so a result read through the API is the same
object a local run produces.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..results import RunResults

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "interrupted"})
"""Experiment statuses after which nothing changes any more."""


class KeystoneModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls.model_validate(data)

    def __getitem__(self, key: str) -> Any:
        """Fields read by key too, so code written for calls that returned a plain dict (`get_trace`)
        keeps working on the typed model."""
        if key in type(self).model_fields or key in (self.model_extra or {}):
            return getattr(self, key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def keys(self) -> list[str]:
        """The fields and the unknown keys kept: with `in`, `items()` and `values()`, a model reads like
        the dict the hosted product's SDK returns (`"events" in trace`, `dict(trace)`, `{**trace}`)."""
        return [*type(self).model_fields, *(self.model_extra or {})]

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def items(self) -> list[tuple[str, Any]]:
        return [(key, self[key]) for key in self.keys()]

    def values(self) -> list[Any]:
        return [self[key] for key in self.keys()]


class ServiceInfo(KeystoneModel):
    """How the agent reaches one service of its sandbox: `db` -> host "db", port 5432."""

    host: str = ""
    port: int | None = None
    ready: bool = False


class Sandbox(KeystoneModel):
    id: str
    spec_id: str = ""
    """Empty for a sandbox created from an image."""
    status: str = ""
    """provisioning, ready, running, stopped or failed (the REST API's statuses)."""
    state: str = ""
    """creating, ready, running, error or destroyed (Keystone's own states)."""
    image: str | None = None
    seed: str | None = None
    """`seed_` and hex digits: create a sandbox with it to reproduce this one."""
    created_at: datetime | None = None
    expires_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    services: dict[str, ServiceInfo] = Field(default_factory=dict)

    @field_validator("services", mode="before")
    @classmethod
    def _services_by_name(cls, value: Any) -> Any:
        """Keystone's OpenAPI document lists services as bare names; its REST docs map name -> info."""
        if isinstance(value, list):
            return {str(name): {"host": str(name)} for name in value}
        return value


class CommandResult(KeystoneModel):
    command: str = ""
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    duration_ms: int = 0
    timed_out: bool = False
    background: bool = False


class FileInfo(KeystoneModel):
    size: int = 0
    mode: str | int | None = None
    checksum: str = ""


class StateSnapshot(KeystoneModel):
    sandbox_id: str = ""
    captured_at: datetime | None = None
    files: dict[str, FileInfo] = Field(default_factory=dict)
    processes: list[dict[str, Any]] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


class StateDiff(KeystoneModel):
    """What changed in the workspace since the sandbox became ready."""

    sandbox_id: str = ""
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    modified: list[str] = Field(default_factory=list)


class Spec(KeystoneModel):
    id: str
    version: int = 1
    description: str = ""
    name: str | None = None
    yaml: str = ""
    sha256: str = ""
    created_at: datetime | None = None


class SpecBundleFile(KeystoneModel):
    sha256: str
    size: int = 0
    mode: int = 0o644


class SpecBundle(KeystoneModel):
    """`GET /v1/bundles/{sha256}`: the files a spec was uploaded with, by path relative to its directory."""

    digest: str
    files: dict[str, SpecBundleFile] = Field(default_factory=dict)


class ConfigFile(KeystoneModel):
    """A file written into the agent's directory before it runs; `{{NAME}}` in `template` becomes the
    run's value of the environment variable or secret NAME."""

    path: str
    template: str = ""


class AgentAuth(KeystoneModel):
    required_env: list[str] = Field(default_factory=list)
    """Environment variables a run must provide (the spec's `env` or `secrets`)."""
    config_files: list[ConfigFile] = Field(default_factory=list)


class AgentSnapshot(KeystoneModel):
    id: str
    """`snap_` and the sha256 of the tarball: the same bytes are the same snapshot."""
    name: str
    version: int
    tag: str | None = None
    tags: list[str] = Field(default_factory=list)
    """Every tag pointing at this version now."""
    digest: str = ""
    size_bytes: int = 0
    storage_path: str = ""
    runtime: str | None = None
    entrypoint: list[str] = Field(default_factory=list)
    auth: AgentAuth = Field(default_factory=AgentAuth)
    created_at: datetime | None = None


class ExperimentRecord(KeystoneModel):
    """What the server records of every experiment: its name, version, status and times."""

    id: str = ""
    name: str = ""
    status: str = ""
    """created, queued, running, completed, failed, cancelled or interrupted."""
    spec_version: int = 1
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    progress: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class Experiment(ExperimentRecord):
    id: str
    spec_id: str = ""
    options: dict[str, Any] = Field(default_factory=dict)


class ExperimentResults(RunResults, ExperimentRecord):
    """`GET /v1/experiments/{id}`: the RunResults so far, plus where the run stands."""

    ran_at: str = ""
    seed: int = 0

    @property
    def finished(self) -> bool:
        """Done, by the server's status, or else by the Keystone SDK's rule (every scenario has a verdict)."""
        if self.status:
            return self.status in TERMINAL_STATUSES
        counted = self.passed + self.failed + self.flaky + self.errors
        return self.total_scenarios > 0 and counted >= self.total_scenarios


class MetricComparison(KeystoneModel):
    name: str
    baseline: float | None = None
    candidate: float | None = None
    delta: float | None = None
    direction: str = "same"
    """better, worse or same."""
    p_value: float | None = None
    """For pass_rate: the suite test's one-sided p-value (the candidate passes less often)."""


class ComparisonPolicy(KeystoneModel):
    """What the server decided with: significance level, multiple-testing correction, smallest change."""

    alpha: float
    correction: str
    """holm or bh."""
    min_effect: float


class SuiteComparison(KeystoneModel):
    """The test over all scenarios compared (with one scenario, that scenario's test)."""

    baseline_pass_rate: float
    candidate_pass_rate: float
    drop: float
    p_value: float
    p_adjusted: float
    decision: str
    """regressed, improved, unchanged or inconclusive."""
    replicas_needed: int | None = None


class ScenarioComparison(KeystoneModel):
    scenario_id: str
    baseline_pass_rate: float | None = None
    candidate_pass_rate: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    decision: str = "untested"
    """regressed, improved, unchanged, inconclusive, or untested (the candidate's scenario errored, or a
    run has no verdict)."""
    replicas_needed: int | None = None
    regressed: bool = False


class Comparison(KeystoneModel):
    baseline_id: str
    candidate_id: str
    regressed: bool = False
    regressions: list[str] = Field(default_factory=list)
    metrics: list[MetricComparison] = Field(default_factory=list)
    summary: str = ""
    policy: ComparisonPolicy | None = None
    """None from a server older than the per-request policy."""
    suite: SuiteComparison | None = None
    scenarios: list[ScenarioComparison] = Field(default_factory=list)


class MetricsSummary(KeystoneModel):
    total_runs: int = 0
    pass_rate: float = 0.0
    total_cost_usd: float = 0.0
    mean_cost_per_run_usd: float = 0.0
    mean_wall_ms: float = 0.0
    p95_wall_ms: float = 0.0
    total_tool_calls: int = 0
    tool_success_rate: float = 0.0


class ToolStats(KeystoneModel):
    count: int = 0
    mean_ms: float = 0.0
    error_rate: float = 0.0


class TrendPoint(KeystoneModel):
    """One run of a metric's trend: the pass rate or cost it had."""

    run_id: str = ""
    ts: datetime | None = None
    pass_rate: float | None = None
    cost_usd: float | None = None


class ExperimentMetrics(KeystoneModel):
    experiment_id: str
    summary: MetricsSummary = Field(default_factory=MetricsSummary)
    tool_breakdown: dict[str, ToolStats] = Field(default_factory=dict)
    cost_trend: list[TrendPoint] = Field(default_factory=list)
    pass_rate_trend: list[TrendPoint] = Field(default_factory=list)


class TraceEvent(KeystoneModel):
    """One thing an agent did (an LLM call, a tool call, ...), as reported to the sandbox's trace."""

    ts: datetime | None = None
    event_type: str = "tool_call"
    tool: str = ""
    phase: str = "complete"
    """start, end, complete or invoked."""
    duration_ms: float | None = None
    status: str = "ok"
    error_type: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    root_span_id: str | None = None
    input: Any = None
    output: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class TraceMetrics(KeystoneModel):
    """What a sandbox's trace adds up to: tool calls, their success rate and durations."""

    total_tool_calls: int = 0
    tool_success_rate: float = 0.0
    mean_duration_ms: float = 0.0
    p95_duration_ms: float = 0.0
    tool_breakdown: dict[str, ToolStats] = Field(default_factory=dict)


class SandboxTrace(KeystoneModel):
    """`GET /v1/sandboxes/{id}/trace`: the events and their aggregate metrics."""

    sandbox_id: str = ""
    events: list[TraceEvent] = Field(default_factory=list)
    metrics: TraceMetrics = Field(default_factory=TraceMetrics)
