"""`/v1/runs` and `/v1/replicas`, the runs and replica suites of the seed OpenAPI document.

Both are experiments underneath (listed by `/v1/experiments` too): a run is one replica of one matrix
cell with a known seed, so `POST /v1/runs/{id}/replay` (or `POST /v1/runs` with a seed taken from a
replica suite) re-creates the same sandbox; a replica suite is N replicas measuring non-determinism.
"""

from __future__ import annotations

import secrets as random_bits
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Body, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from ..engine import SEED_BITS, replica_seed
from ..results import InvariantResult, ReplicaResult, RunResults
from ..store import EventRecord, ExperimentRecord
from ._context import ServerContext
from ._deps import Context, LiveKey, Principal, ResumeAfter
from ._errors import AtCapacity, InvalidRequest, NotFoundError
from ._events import Render, experiment_event_ends, experiment_stream, sse_response
from ._models import (
    SSE_RESPONSES,
    ReplicaSuiteCreate,
    ReplicaSuiteOut,
    RunCreate,
    RunInvariant,
    RunOut,
    RunReplay,
    RunStatus,
    RunTrajectory,
    SuiteStatus,
    error_responses,
)
from ._planning import Plan, record_experiment
from ._results import results_so_far, trace_metrics
from ._runner import REPLICA_SUITE, RUN
from ._seeds import seed_text

router = APIRouter(tags=["Runs"])
_ENDED = ("failed", "cancelled", "interrupted")


def _start(context: ServerContext, request: Request, caller: Principal, plan: Plan) -> ExperimentRecord:
    """Record and start at once; refused (503) runs are cancelled, not left waiting."""
    record = record_experiment(context, caller, plan)
    try:
        return context.runner.start(record, caller.id, context.base_url(request))
    except AtCapacity:
        context.store.transition_experiment(
            record.id, ("created",), "cancelled", error="refused: at capacity"
        )
        raise


def _of_kind(context: ServerContext, caller: Principal, experiment_id: str, kind: str) -> ExperimentRecord:
    record = context.experiment(caller.project_id, experiment_id)
    if record.options.get("kind") != kind:
        raise NotFoundError(f"{kind.replace('_', ' ')} {experiment_id} does not exist")
    return record


# --- runs --------------------------------------------------------------------------------------------


def _run_status(record: ExperimentRecord, replica: ReplicaResult | None) -> RunStatus:
    if record.status in _ENDED or (replica is not None and replica.status == "error"):
        return "errored"
    if replica is not None:
        return "passed" if replica.status == "pass" else "failed"
    return "running" if record.status == "running" else "queued"


def _invariant(result: InvariantResult) -> RunInvariant:
    status: Literal["passed", "failed", "skipped"] = (
        "skipped" if result.skipped else "passed" if result.passed else "failed"
    )
    return RunInvariant(invariant_id=result.name, name=result.name, status=status, evidence=result.evidence)


def _replica(context: ServerContext, record: ExperimentRecord) -> ReplicaResult | None:
    """The run's one replica, once it has finished."""
    results = RunResults.model_validate(results_so_far(record, context.store.replicas(record.id)))
    return next((r for s in results.scenarios for r in s.replicas), None)


def _sandbox_id(context: ServerContext, record: ExperimentRecord, replica: ReplicaResult | None) -> str:
    """The finished replica's sandbox, else the live one booting or running it, else (none yet) empty."""
    if replica is not None:
        return replica.sandbox_id
    live = context.store.list_sandboxes(project_id=record.project_id, owner=record.owner)
    return next((s.id for s in live if s.metadata.get("experiment_id") == record.id), "")


def run_out(context: ServerContext, record: ExperimentRecord, base_url: str) -> RunOut:
    replica = _replica(context, record)
    return RunOut(
        id=record.id,
        sandbox_id=_sandbox_id(context, record, replica),
        spec_id=record.spec_id,
        status=_run_status(record, replica),
        score=replica.composite_score if replica else None,
        invariant_results=[_invariant(i) for i in (replica.invariants if replica else [])],
        trajectory_url=f"{base_url}/v1/runs/{quote(record.id, safe='')}/trajectory",
        seed=seed_text(int(record.options["replica_seed"])),
        inputs=record.options["scenarios"][0]["parameters"] if record.options["scenarios"] else {},
        duration_ms=replica.wall_ms if replica else None,
        error=record.error or (replica.error if replica else None),
        created_at=record.created_at,
    )


@router.post(
    "/v1/runs",
    status_code=202,
    response_model=RunOut,
    summary="Run an agent task (one replica in a fresh sandbox; a seed replays a run)",
    responses=error_responses(403, 404, 503),
)
def create_run(body: RunCreate, request: Request, context: Context, caller: LiveKey) -> RunOut:
    if body.sandbox_id is not None:
        raise InvalidRequest("runs always boot a fresh sandbox from the spec; omit sandbox_id")
    plan = Plan(
        name=f"run of {body.spec_id}",
        spec_id=body.spec_id,
        spec_version=body.spec_version,
        metadata=body.metadata,
        secrets=body.secrets,
        replicas=1,
        kind=RUN,
        inputs=body.inputs,
        replica_seed=random_bits.randbits(SEED_BITS) if body.seed is None else body.seed,
    )
    return run_out(context, _start(context, request, caller, plan), context.base_url(request))


@router.get(
    "/v1/runs/{run_id}", response_model=RunOut, summary="Get a run", responses=error_responses(403, 404)
)
def get_run(run_id: str, request: Request, context: Context, caller: LiveKey) -> RunOut:
    return run_out(context, _of_kind(context, caller, run_id, RUN), context.base_url(request))


@router.get(
    "/v1/runs/{run_id}/trajectory",
    response_model=RunTrajectory,
    summary="A run's trajectory: what its agent reported (trace events) and what its sandbox audited",
    responses=error_responses(403, 404),
)
def get_trajectory(run_id: str, context: Context, caller: LiveKey) -> RunTrajectory:
    record = _of_kind(context, caller, run_id, RUN)
    replica = _replica(context, record)
    sandbox_id = _sandbox_id(context, record, replica)
    events = context.store.trace_events(sandbox_id) if sandbox_id else []
    return RunTrajectory.model_validate(
        {
            "run_id": run_id,
            "sandbox_id": sandbox_id,
            "events": events,
            "metrics": trace_metrics(events),
            "audit": replica.audit if replica else [],
        }
    )


@router.post(
    "/v1/runs/{run_id}/replay",
    status_code=202,
    response_model=RunOut,
    summary="Replay a run from its seed (same spec version, cell and seed)",
    responses=error_responses(403, 404, 503),
)
def replay_run(
    run_id: str,
    request: Request,
    context: Context,
    caller: LiveKey,
    body: Annotated[RunReplay | None, Body()] = None,
) -> RunOut:
    original = _of_kind(context, caller, run_id, RUN)
    plan = Plan(
        name=f"replay of {run_id}",
        spec_id=original.spec_id,
        spec_version=original.spec_version,
        metadata={**original.metadata, "replay_of": run_id},
        secrets=body.secrets if body else {},
        replicas=1,
        kind=RUN,
        inputs=original.options["scenarios"][0]["parameters"],
        replica_seed=int(original.options["replica_seed"]),
    )
    return run_out(context, _start(context, request, caller, plan), context.base_url(request))


def _run_event(event: EventRecord) -> tuple[str, dict[str, Any]]:
    """The seed's run events: `step` (progress), `invariant_result`, then `done` or `error`."""
    data = event.data
    if event.type in ("done", "error"):
        passed, failed = data.get("passed"), data.get("failed")
        status = "passed" if passed else "failed" if failed else "errored"
        return event.type, {
            "type": event.type,
            "run_id": data["experiment_id"],
            "status": status,
            "score": data.get("score"),
            "error": data.get("error"),
        }
    name = "invariant_result" if event.type == "invariant_result" else "step"
    return name, {"type": name, "event": event.type, **data}


async def _stream(
    context: ServerContext, caller: Principal, experiment_id: str, kind: str, after: int, render: Render
) -> StreamingResponse:
    await run_in_threadpool(_of_kind, context, caller, experiment_id, kind)
    events = context.bus.follow(
        experiment_stream(experiment_id), after, experiment_event_ends, context.settings.stream_timeout_s
    )
    return sse_response(events, render)


@router.get(
    "/v1/runs/{run_id}/stream",
    summary="Stream a run's events (SSE): step, invariant_result, done, error",
    response_class=StreamingResponse,
    responses=SSE_RESPONSES,
)
async def stream_run(
    run_id: str,
    context: Context,
    caller: LiveKey,
    after: ResumeAfter,
) -> StreamingResponse:
    return await _stream(context, caller, run_id, RUN, after, _run_event)


# --- replica suites ----------------------------------------------------------------------------------


def suite_out(context: ServerContext, record: ExperimentRecord) -> ReplicaSuiteOut:
    results = RunResults.model_validate(results_so_far(record, context.store.replicas(record.id)))
    replicas = [r for s in results.scenarios for r in s.replicas]
    passed = sum(r.status == "pass" for r in replicas)
    failed = sum(r.status == "fail" for r in replicas)
    n = int(record.options["replicas"])
    seed = int(record.options["seed"])
    status: SuiteStatus = (
        "complete" if record.status == "completed" else "errored" if record.status in _ENDED else "running"
    )
    return ReplicaSuiteOut(
        id=record.id,
        run_id=record.id,
        spec_id=record.spec_id,
        n_replicas=n,
        status=status,
        passed=passed,
        failed=failed,
        errored=sum(r.status == "error" for r in replicas),
        failure_rate=failed / (passed + failed) if passed + failed else 0.0,
        seeds=[
            seed_text(replica_seed(seed, cell["scenario_id"], index))
            for cell in record.options["scenarios"]
            for index in range(n)
        ],
        error=record.error,
        created_at=record.created_at,
    )


@router.post(
    "/v1/replicas",
    status_code=202,
    response_model=ReplicaSuiteOut,
    summary="Run a replica suite (N replicas in fresh sandboxes)",
    tags=["Replicas"],
    responses=error_responses(403, 404, 503),
)
def create_replica_suite(
    body: ReplicaSuiteCreate, request: Request, context: Context, caller: LiveKey
) -> ReplicaSuiteOut:
    plan = Plan(
        name=f"{body.n_replicas} replicas of {body.spec_id}",
        spec_id=body.spec_id,
        spec_version=body.spec_version,
        metadata=body.metadata,
        secrets=body.secrets,
        replicas=body.n_replicas,
        concurrency=body.concurrency,
        seed=body.seed,
        kind=REPLICA_SUITE,
        inputs=body.inputs,
    )
    return suite_out(context, _start(context, request, caller, plan))


@router.get(
    "/v1/replicas/{suite_id}",
    response_model=ReplicaSuiteOut,
    summary="Get a replica suite",
    tags=["Replicas"],
    responses=error_responses(403, 404),
)
def get_replica_suite(suite_id: str, context: Context, caller: LiveKey) -> ReplicaSuiteOut:
    return suite_out(context, _of_kind(context, caller, suite_id, REPLICA_SUITE))


@router.get(
    "/v1/replicas/{suite_id}/stream",
    summary="Stream a replica suite's events (SSE): progress, replica_done, done, error",
    tags=["Replicas"],
    response_class=StreamingResponse,
    responses=SSE_RESPONSES,
)
async def stream_replica_suite(
    suite_id: str,
    context: Context,
    caller: LiveKey,
    after: ResumeAfter,
) -> StreamingResponse:
    return await _stream(
        context,
        caller,
        suite_id,
        REPLICA_SUITE,
        after,
        lambda event: (event.type, {"type": event.type, **event.data}),
    )
