"""Result shapes of a run, with the exact JSON keys of KEYSTONE-REFERENCE.md section 4.4.

Our additions are extra keys (never renamed ones): `schema_version`, per-replica results under each
scenario, pass-rate intervals, pass^k and the fingerprint that replay checks. Models tolerate unknown
keys so that results written by a newer Keystone still load.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

RESULTS_SCHEMA_VERSION = 1

ScenarioStatus = Literal["pass", "fail", "flaky", "error"]
ReplicaStatus = Literal["pass", "fail", "error"]


class _Result(BaseModel):
    """Unknown keys are kept, never refused: results a newer Keystone wrote still load."""

    model_config = ConfigDict(extra="allow")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """The result from its JSON object (as the server answers it or a results file holds it)."""
        return cls.model_validate(data)


class InvariantResult(_Result):
    name: str
    passed: bool
    gate: bool = False
    weight: float = 1.0
    score: float = 0.0
    message: str = ""
    reason: str = ""
    """Why it failed or was skipped; empty when it passed."""
    skipped: bool = False
    evidence: dict[str, Any] = Field(default_factory=dict)
    """What the check saw (file excerpt, query rows, command output), so a failure explains itself."""


class ForbiddenCheckResult(_Result):
    rule: str
    violated: bool
    details: str = ""
    evidence: dict[str, Any] = Field(default_factory=dict)


class Reproducer(_Result):
    spec_file: str
    seed: int
    scenario_id: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    command: str
    replica: int = 0
    fingerprint: dict[str, Any] = Field(default_factory=dict)


class CostInfo(_Result):
    """Tokens and estimated cost of the LLM calls a run reported (its `llm_call` trace events), or of
    all replicas of a scenario together. `input_tokens` includes the `cache_read_tokens`."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    reasoning_tokens: int = 0
    model: str = ""
    """The model called; several, comma-separated in name order."""
    estimated_usd: float | None = 0.0
    """None when a model called has no price (`unpriced_models`): an unknown cost, never 0."""
    llm_calls: int = 0
    unpriced_models: list[str] = Field(default_factory=list)
    pricing_version: str = ""
    """The version of the price table that priced the calls."""


class RunOutcome(_Result):
    """What one run in one sandbox produced: the per-run keys of the reference's ScenarioResult."""

    sandbox_id: str = ""
    wall_ms: int = 0
    exit_code: int | None = None
    tool_calls: int = 0
    composite_score: float = 0.0
    agent_output: str = ""
    agent_stderr: str = ""
    invariants: list[InvariantResult] = Field(default_factory=list)
    forbidden_checks: list[ForbiddenCheckResult] = Field(default_factory=list)
    reproducer: Reproducer | None = None
    error: str | None = None
    """Why the run could not be evaluated (status `error`)."""
    cost: CostInfo | None = None


class ReplicaResult(RunOutcome):
    """One run of a scenario in one fresh sandbox."""

    replica: int
    seed: int
    status: ReplicaStatus
    boot_ms: int = 0
    agent_ms: int = 0
    timed_out: bool = False
    reasons: list[str] = Field(default_factory=list)
    """Why the replica failed (gates, threshold, forbidden rules, timeout); empty when it passed."""
    audit: list[dict[str, Any]] = Field(default_factory=list)
    """The audit log: commands run through the sandbox, files written, SQL statements and rows written
    per table (when the spec audits databases), each a JSON object with a `type`."""
    service_state: dict[str, Any] = Field(default_factory=dict)
    """With `audit.service_state`: per service, the items the agent added, removed and changed."""
    renewed: bool = False
    """Its services were reset after an earlier replica instead of booted afresh, their state verified
    equal to a fresh boot's (data, schema, users, settings)."""
    boot_note: str = ""
    """How the sandbox was prepared, when the replica should know (e.g. a reset that failed its check)."""
    recordings: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    """Per `type: llm` service, every model call it answered, in order (request, response or stream,
    usage, tool calls requested, and in a replay where it diverged): what `ks replay --recording`
    answers the same calls from."""
    node: str | None = None
    """The cluster node the replica ran on (a server with `--executor ray`: the Ray node id); None when
    it ran on the Docker engine of the machine that ran the experiment."""


class ScenarioResult(RunOutcome):
    """One scenario (a matrix cell of a spec) aggregated over its replicas.

    The per-run keys (those of `RunOutcome`) describe a representative replica: the first erroring
    one, else the first failing one, else the first; `composite_score` is the mean over replicas.
    """

    scenario_id: str
    spec_id: str = ""
    status: ScenarioStatus
    parameters: dict[str, Any] = Field(default_factory=dict)
    trace_file: str = ""
    replicas_total: int = 0
    replicas_passed: int = 0
    pass_rate: float = 0.0
    pass_rate_ci: tuple[float, float] = (0.0, 0.0)
    """95% Wilson score interval of the pass rate over the replicas that produced a verdict."""
    replicas: list[ReplicaResult] = Field(default_factory=list)
    mean_cost_per_run_usd: float | None = None
    """Mean estimated cost of the replicas whose cost is known; None when none is (no LLM calls
    reported, or only unpriced models). `cost` holds the tokens and cost of all replicas together."""


class RunMetrics(_Result):
    pass_rate: float = 0.0
    mean_wall_ms: float = 0.0
    p95_wall_ms: float = 0.0
    mean_tool_calls: float = 0.0
    mean_tokens: float = 0.0
    total_cost_usd: float = 0.0
    mean_cost_per_run_usd: float = 0.0
    tool_success_rate: float = 0.0
    side_effect_violations: int = 0
    pass_rate_ci: tuple[float, float] = (0.0, 0.0)
    pass_hat_k: float = 0.0
    """pass^k: the estimated chance that k fresh replicas of a scenario all pass (k = replicas)."""
    k: int = 1
    mean_boot_ms: float = 0.0
    runs_priced: int = 0
    """Replicas whose cost is known: `mean_cost_per_run_usd` is over these (`mean_tokens` is over the
    replicas that reported LLM calls)."""
    unpriced_models: list[str] = Field(default_factory=list)
    """Models that replicas called but the price table does not know: their cost is unknown."""


class RunResults(_Result):
    schema_version: int = RESULTS_SCHEMA_VERSION
    ran_at: str
    spec_id: str
    experiment_id: str
    seed: int
    total_scenarios: int = 0
    passed: int = 0
    failed: int = 0
    flaky: int = 0
    errors: int = 0
    metrics: RunMetrics = Field(default_factory=RunMetrics)
    scenarios: list[ScenarioResult] = Field(default_factory=list)
    fingerprint: dict[str, Any] = Field(default_factory=dict)
    spec_file: str = ""


EVIDENCE_LINES = 6
"""Lines of agent output kept as a failure's evidence: the last ones, where the error usually is."""
EVIDENCE_CHARS = 600
"""Characters of agent output kept as a failure's evidence (the tail), so a chatty agent stays short."""


def failure_evidence(outcome: RunOutcome) -> str:
    """What the agent left behind when a run failed: its exit code and the last lines of its stderr
    (else its stdout), cut to their tail. Empty when the run left neither. Every report that shows a
    failed run (the CLI, the gate's JUnit, summary and comment) shows this text, so "hello.txt does not
    exist" comes with the `python3: not found` that caused it."""
    stream, text = ("stderr", outcome.agent_stderr)
    if not text.strip():
        stream, text = ("stdout", outcome.agent_output)
    tail = text.strip().splitlines()[-EVIDENCE_LINES:]
    body = "\n".join(line.rstrip() for line in tail)
    if len(body) > EVIDENCE_CHARS:
        body = "…" + body[-(EVIDENCE_CHARS - 1) :]
    exit_text = f"agent exited {outcome.exit_code}" if outcome.exit_code is not None else ""
    if not body:
        return exit_text
    return f"{exit_text or 'agent output'}; last lines of {stream}:\n{body}"


INVALID_INPUT_PREFIX = "invalid input:"
"""How a server begins the error of an experiment that failed on its input (spec, secrets), so a client
can tell it from an infrastructure failure."""
SERVER_REPLAY = "ks replay SPEC "
"""How replay commands start in results a server produced: it knows uploaded text, not files."""


def name_spec_file(results: RunResults, path: Path) -> None:
    """Put the spec file a client ran into results a server produced, so their replay commands run as
    printed (from the working directory: relative to it when the file is under it)."""
    shown = os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
    results.spec_file = results.spec_file or shown
    for scenario in results.scenarios:
        for outcome in [scenario, *scenario.replicas]:
            if outcome.reproducer is not None and outcome.reproducer.command.startswith(SERVER_REPLAY):
                command = outcome.reproducer.command.removeprefix(SERVER_REPLAY)
                outcome.reproducer.command = f"ks replay {shlex.quote(shown)} {command}"
                outcome.reproducer.spec_file = shown
