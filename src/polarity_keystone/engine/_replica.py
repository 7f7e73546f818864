"""Run one replica end to end: boot a fresh sandbox, run the agent, score what it left behind."""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from ..results import ReplicaResult, Reproducer
from ..sandbox import (
    BootListener,
    Sandbox,
    SandboxBackend,
    SandboxBootError,
    SandboxError,
    SettleReport,
    WorkspaceDiff,
)
from ..scoring import (
    CheckContext,
    RunRecord,
    check_forbidden,
    first_fetch,
    leading_sql_services,
    run_checks,
    score_run,
)
from ..secrets import Redactor, SecretError, redact_result
from ..spec import Spec
from ._audit import audit_events
from ._db_audit import DbAudit, needs_db_audit
from ._model_calls import Recordings, divergence_events, put_recordings, with_model_calls
from ._network import gateway_calls, mock_calls
from ._parameters import parameter_text
from ._prepare import TASK_FILE, PreparedSpec, ReplicaPlan, plan_replica
from ._run_reads import read_run
from ._state_audit import capture, state_changes
from ._trace import ReportedTrace, tool_call_events, tool_calls
from ._usage import run_cost

AGENT_OUTPUT_LIMIT = 1024 * 1024
"""Bytes of the agent's stdout, and of its stderr, that a replica keeps: the first and the last half MiB,
with a line saying how much was cut between them. The result, the checks and `secrets_in_logs` see this."""
LOG_FILE_LIMIT = 1024 * 1024

BootSandbox = Callable[[ReplicaPlan, BootListener | None], Sandbox]
"""Where a replica gets its ready sandbox: a new boot (`booting_on`), or a warm pool."""
ReturnSandbox = Callable[[Sandbox, ReplicaPlan, bool], None]
"""Where a replica's sandbox goes after it: with `clean` (the replica ran and was scored, within its
limits) a warm pool may renew it for another replica; otherwise it must be destroyed."""


def booting_on(backend: SandboxBackend) -> BootSandbox:
    return lambda plan, on_boot: backend.create(plan.sandbox, on_boot)


def destroying(sandbox: Sandbox, plan: ReplicaPlan, clean: bool) -> None:
    sandbox.destroy()


@dataclass
class ReplicaJob:
    run_id: str
    scenario_id: str
    replica: int
    seed: int
    parameters: dict[str, Any]


def replay_command(prepared: PreparedSpec, job: ReplicaJob) -> str:
    path = prepared.loaded.path
    spec_file = (
        "SPEC" if path is None else os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
    )
    parts = ["ks", "replay", spec_file, "--seed", str(job.seed), "--replica", str(job.replica)]
    for key, value in sorted(job.parameters.items()):
        parts += ["--param", f"{key}={parameter_text(value)}"]
    parts += ["--fingerprint", prepared.fingerprint_id]
    return shlex.join(parts)


def run_replica(
    prepared: PreparedSpec,
    boot: BootSandbox,
    job: ReplicaJob,
    *,
    keep: bool = False,
    on_boot: BootListener | None = None,
    on_sandbox: Callable[[Sandbox], None] | None = None,
    reported_trace: ReportedTrace | None = None,
    replaying: Recordings | None = None,
    give_back: ReturnSandbox = destroying,
) -> ReplicaResult:
    """Never raises for a failure inside the sandbox: boot and infrastructure failures become a result
    with status `error`, agent failures a result with status `fail`. `reported_trace` gives the events
    the agent reported over the API, scored with its trace file's. With `replaying`, the spec's model
    services answer from those recordings instead of their own mode, with no network."""
    started = time.monotonic()
    result = ReplicaResult(replica=job.replica, seed=job.seed, status="error")
    try:
        plan = plan_replica(
            prepared,
            run_id=job.run_id,
            scenario_id=job.scenario_id,
            replica=job.replica,
            seed=job.seed,
            parameters=job.parameters,
            keep=keep,
            replaying=replaying is not None,
        )
    except SecretError as exc:
        result.error = str(exc)
        # No plan, so no generated values yet: the fixed ones are all this message could hold.
        return _finish(prepared, job, result, started, Redactor(prepared.secrets))
    sandbox: Sandbox | None = None
    clean = False
    try:
        sandbox = boot(plan, on_boot)
        result.sandbox_id = sandbox.id
        result.boot_ms = int((time.monotonic() - started) * 1000)
        result.renewed, result.boot_note = sandbox.renewed > 0, sandbox.boot_note
        if on_sandbox is not None:
            on_sandbox(sandbox)
        if replaying is not None:
            put_recordings(sandbox, plan.services, replaying)
        clean = _run_and_score(prepared, sandbox, plan, result, reported_trace)
    except SandboxBootError as exc:
        result.sandbox_id = exc.sandbox_id
        result.error = f"{exc}\n{exc.output}".strip()
    except SandboxError as exc:
        limits = sandbox.limits_hit() if sandbox is not None else []
        result.status, result.error = "error", "; ".join([str(exc), *limits])
    finally:
        if sandbox is not None and not keep:
            give_back(sandbox, plan, clean)
    return _finish(prepared, job, result, started, plan.redact)


def unrun_replica(prepared: PreparedSpec, job: ReplicaJob, error: str) -> ReplicaResult:
    """The result of a replica that never ran to its end where it was sent (its cluster node was lost):
    status `error` with the reason, and how to replay it."""
    result = ReplicaResult(replica=job.replica, seed=job.seed, status="error", error=error)
    return _finish(prepared, job, result, time.monotonic(), Redactor(prepared.secrets))


def _run_and_score(
    prepared: PreparedSpec,
    sandbox: Sandbox,
    plan: ReplicaPlan,
    result: ReplicaResult,
    reported_trace: ReportedTrace | None,
) -> bool:
    """Runs the agent and scores what it did; True when it stayed within its time and limits."""
    spec = prepared.spec
    task = spec.task.prompt + (f"\n\n{spec.task.context}" if spec.task.context else "")
    sandbox.write_file(TASK_FILE, task.encode())
    timeout = min(spec.agent.timeout or spec.resources.timeout, spec.resources.timeout)
    db_audit = None
    if needs_db_audit(spec):
        db_audit = DbAudit.start(sandbox, plan.services, leading_sql_services(spec.invariants))
    state_before = capture(sandbox, plan.services) if spec.audit.service_state else {}
    agent_started, agent_started_at = time.monotonic(), time.time()
    user = plan.sandbox.agent_user
    run = sandbox.exec(
        agent_command(spec),
        timeout=timeout,
        env={"HOME": user.home, **plan.agent_env},
        user=user.exec_user,
        output_limit=AGENT_OUTPUT_LIMIT,
    )
    result.agent_ms = int((time.monotonic() - agent_started) * 1000)
    # The audit closes once every process the agent started is gone, not when its command returns.
    settled = sandbox.settle_agent(deadline=agent_started + timeout)
    limits = sandbox.limits_hit()
    # What the agent did is read before any check runs: checks may write files or query databases too.
    reads = read_run(sandbox, spec, plan.services, db_audit, reported_trace, state_before)
    diff, agent_commands = reads.diff, reads.commands
    first = first_fetch(spec.invariants, sandbox, plan.services, db_audit.ahead() if db_audit else {})
    writes, statements = db_audit.finish(first) if db_audit else ([], [])
    result.recordings = reads.recordings
    events = with_model_calls(reads.trace, result.recordings)
    calls = tool_calls(events)
    result.cost = run_cost(events, prepared.pricing)
    if state_before:
        result.service_state = state_changes(state_before, reads.state_after)
    through_gateway, lookups = gateway_calls(reads.network_log, since=agent_started_at)
    http_calls = through_gateway + mock_calls(reads.mock_requests)
    result.audit = audit_events(
        str(spec.agent.command),
        run,
        diff,
        writes,
        statements,
        http_calls,
        lookups,
        agent_commands=agent_commands,
    )
    result.audit += tool_call_events(calls)
    result.audit += divergence_events(result.recordings)
    result.audit += _leftover_events(settled)
    result.tool_calls = len(calls)
    result.exit_code = run.exit_code
    result.timed_out = run.timed_out
    result.agent_output = run.stdout
    result.agent_stderr = run.stderr

    context = CheckContext(sandbox, plan.services, prepared.loaded.spec_dir, result.agent_output, plan.redact)
    result.invariants = run_checks(spec.invariants, context, first)
    logs = {"agent_output": run.stdout, "agent_stderr": run.stderr, **_log_files(sandbox, diff)}
    record = RunRecord(
        diff,
        logs,
        plan.redact.leaked,
        writes,
        statements,
        http_calls,
        commands=[executed.line for executed in agent_commands],
        tool_calls=calls,
    )
    result.forbidden_checks = check_forbidden(spec.forbidden, record)
    verdict = score_run(result.invariants, result.forbidden_checks, spec.scoring.pass_threshold)
    result.composite_score = verdict.composite_score
    passed = verdict.passed and not run.timed_out and not limits
    result.status = "pass" if passed else "fail"
    reasons = [*limits, *verdict.reasons]
    if run.timed_out:
        reasons.insert(0, f"agent timed out after {timeout:g}s")
    result.reasons = [] if passed else reasons
    return not run.timed_out and not limits


def _leftover_events(settled: SettleReport) -> list[dict[str, Any]]:
    """One `process` audit event per process the agent left running after its command returned: it
    `exited` on its own before the agent's deadline, or was `killed` there."""
    killed = {process.pid: process for process in settled.killed}
    left = {process.pid: process for process in settled.lingering} | killed
    return [
        {
            "type": "process",
            "pid": process.pid,
            "name": process.name,
            "outcome": "killed" if pid in killed else "exited",
            "waited_ms": settled.waited_ms,
        }
        for pid, process in sorted(left.items())
    ]


def agent_command(spec: Spec) -> str | list[str]:
    """The agent's command, under `faketime` when the spec fixes the clock: frozen at `clock`, or as an
    offset from now, which every process the agent starts shares (a start time would restart per process)."""
    command = str(spec.agent.command)
    clock = spec.determinism.clock
    if clock is None:
        return command
    clock = clock if clock.tzinfo else clock.replace(tzinfo=UTC)
    if spec.determinism.clock_runs:
        fake = f"{math.ceil(clock.timestamp() - time.time()):+d}"  # never before `clock`
    else:
        fake = clock.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return ["env", "TZ=UTC", "faketime", "-f", fake, "sh", "-c", command]


def _log_files(sandbox: Sandbox, diff: WorkspaceDiff) -> dict[str, str]:
    """The `*.log` files the run created or changed in the workspace, by path (first MiB of each)."""
    logs = {}
    for path in [*diff.added, *diff.modified]:
        if path.endswith(".log"):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                logs[path] = sandbox.read_file(path, LOG_FILE_LIMIT).decode("utf-8", errors="replace")
    return logs


def _finish(
    prepared: PreparedSpec, job: ReplicaJob, result: ReplicaResult, started: float, redact: Redactor
) -> ReplicaResult:
    """Complete the result, then redact it as a whole: the one place secret values leave a replica."""
    result.wall_ms = int((time.monotonic() - started) * 1000)
    if result.status != "pass":
        result.reproducer = Reproducer(
            spec_file=str(prepared.loaded.path or ""),
            seed=job.seed,
            scenario_id=job.scenario_id,
            parameters=job.parameters,
            command=replay_command(prepared, job),
            replica=job.replica,
            fingerprint=prepared.fingerprint,
        )
    return redact_result(result, redact)
