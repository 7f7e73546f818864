"""`/v1/experiments`: create, list, get RunResults with progress, run, compare, stream; and
`/v1/metrics/experiments/{id}`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic_core import to_json
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from ..analysis import RegressionPolicy
from ..results import RunResults
from ..store import ExperimentRecord
from ._context import ServerContext
from ._deps import Context, LiveKey, ResumeAfter
from ._errors import WrongState
from ._events import experiment_event_ends, experiment_stream, sse_response
from ._models import (
    SSE_RESPONSES,
    CompareRequest,
    Comparison,
    ExperimentCreate,
    ExperimentExtend,
    ExperimentMetrics,
    ExperimentOut,
    ExperimentResults,
    error_responses,
)
from ._paging import LIST_RESPONSES, Paging
from ._planning import Plan, record_experiment
from ._results import compare, experiment_metrics
from ._results_cache import json_object, results_key
from ._runner import TERMINAL

router = APIRouter(tags=["Experiments"])

METADATA_PREFIX = "metadata."
HISTORY = 20
"""How many of a spec's experiments the metrics trends cover."""


def experiment_out(record: ExperimentRecord) -> ExperimentOut:
    return ExperimentOut(
        id=record.id,
        name=record.name,
        spec_id=record.spec_id,
        spec_version=record.spec_version,
        status=record.status,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        metadata=record.metadata,
        options=record.options,
        progress=record.progress,
        error=record.error,
    )


@router.post(
    "/v1/experiments",
    status_code=201,
    response_model=ExperimentOut,
    summary="Create an experiment",
    responses=error_responses(403, 404, 409),
)
def create_experiment(body: ExperimentCreate, context: Context, caller: LiveKey) -> ExperimentOut:
    plan = Plan(
        name=body.name,
        spec_id=body.spec_id,
        spec_version=body.spec_version,
        metadata=body.metadata,
        secrets=body.secrets,
        replicas=body.replicas,
        concurrency=body.concurrency,
        seed=body.seed,
    )
    return experiment_out(record_experiment(context, caller, plan))


@router.get(
    "/v1/experiments",
    response_model=list[ExperimentOut],
    summary="List experiments, newest first",
    description="Filter by `spec_id`, `status` and metadata tags as `?metadata.<key>=<value>`.",
    responses={**LIST_RESPONSES, **error_responses(403)},
)
def list_experiments(
    request: Request,
    context: Context,
    caller: LiveKey,
    pager: Paging,
    spec_id: str | None = None,
    status: str | None = None,
) -> list[ExperimentOut]:
    metadata = {
        key.removeprefix(METADATA_PREFIX): value
        for key, value in request.query_params.items()
        if key.startswith(METADATA_PREFIX) and len(key) > len(METADATA_PREFIX)
    }
    page = context.store.list_experiments(
        caller.project_id,
        cursor=pager.cursor,
        limit=pager.limit,
        spec_id=spec_id,
        status=status,
        metadata=metadata or None,
    )
    return pager.answer(page, experiment_out)


@router.get(
    "/v1/experiments/{experiment_id}",
    response_model=ExperimentResults,
    summary="Get RunResults (partial while running) with status and progress",
    responses=error_responses(403, 404),
)
def get_experiment(experiment_id: str, context: Context, caller: LiveKey) -> Response:
    # A finished experiment read a moment ago is answered from memory before it gets here (see
    # FinishedReadsMiddleware).
    document = _read_document(context, caller.project_id, experiment_id)
    return Response(document, media_type="application/json")


def _read_document(context: ServerContext, project_id: str, experiment_id: str) -> bytes:
    """The document, built as JSON directly, without the response model: results can be large, and they
    were validated when they were stored. A finished experiment's results are encoded once; the record is
    read without them, to check the caller's project and the status on every call."""
    writes = context.store.experiment_writes(experiment_id)  # before the reads: a write during them counts
    record = context.experiment(project_id, experiment_id, with_results=False)
    finished = record.status in TERMINAL
    results = context.encoded_results.get(results_key(record)) if finished else None
    if results is None:
        record = context.experiment(project_id, experiment_id)
        finished = record.status in TERMINAL and record.results is not None
        results = _members({key: value for key, value in context.results(record).items() if key not in HEAD})
        if finished:
            context.encoded_results.put(results_key(record), results)
    head = _members(experiment_head(record))
    if finished:
        context.encoded_results.remember_head(results_key(record), head, writes)
    return json_object(results, head)


HEAD = frozenset(ExperimentOut.model_fields) - {"options"}
"""The experiment's own fields in its document; where the results have a field of the same name
(`spec_id`), the experiment's is answered."""


def experiment_head(record: ExperimentRecord) -> dict[str, Any]:
    return experiment_out(record).model_dump(mode="json", include=set(HEAD))


def _members(document: dict[str, Any]) -> bytes:
    """`document` as the members of a JSON object, without its braces (empty for an empty one). NaN and
    infinities are written as Python's json module writes them, as they always were."""
    return to_json(document, inf_nan_mode="constants")[1:-1]


def experiment_document(context: ServerContext, record: ExperimentRecord) -> dict[str, Any]:
    """The experiment as `GET /v1/experiments/{id}` answers it (and `experiment.completed` sends it)."""
    return {**context.results(record), **experiment_head(record)}


@router.post(
    "/v1/experiments/{experiment_id}/run",
    status_code=202,
    response_model=ExperimentOut,
    summary="Run the experiment (enqueued; returns at once)",
    responses=error_responses(403, 404, 409, 503),
)
def run_experiment(experiment_id: str, request: Request, context: Context, caller: LiveKey) -> ExperimentOut:
    record = context.experiment(caller.project_id, experiment_id)
    return experiment_out(context.runner.start(record, caller.id, context.base_url(request)))


@router.post(
    "/v1/experiments/{experiment_id}/extend",
    status_code=202,
    response_model=ExperimentOut,
    summary="Run more replicas of some scenarios of a completed experiment (enqueued; returns at once)",
    description="`replicas` says how many each scenario should have in all; the replicas run before are "
    "kept, and the new ones get the seeds that follow theirs. A scenario that already has as many is left "
    "as it is, so a repeated request runs nothing twice. The experiment goes back to `queued`, then "
    "`running`, and ends `completed` with all its replicas; follow it as a new run.",
    responses=error_responses(400, 403, 404, 409, 503),
)
def extend_experiment(
    experiment_id: str, body: ExperimentExtend, request: Request, context: Context, caller: LiveKey
) -> ExperimentOut:
    record = context.experiment(caller.project_id, experiment_id)
    extended = context.runner.extend(
        record, body.replicas, body.secrets, caller.id, context.base_url(request)
    )
    return experiment_out(extended)


def finished_results(context: ServerContext, project_id: str, experiment_id: str) -> RunResults:
    """The experiment's results; WrongState while it has not finished (compare needs final results)."""
    record = context.experiment(project_id, experiment_id)
    if record.status not in TERMINAL:
        raise WrongState(f"experiment {experiment_id} is {record.status}; compare needs finished experiments")
    return RunResults.model_validate(context.results(record))


def regression_policy(asked: CompareRequest) -> RegressionPolicy:
    """The policy a comparison asked for, with `ks gate`'s defaults where it asked nothing."""
    defaults = RegressionPolicy()
    return RegressionPolicy(
        alpha=defaults.alpha if asked.alpha is None else asked.alpha,
        correction=asked.correction or defaults.correction,
        min_effect=defaults.min_effect if asked.min_effect is None else asked.min_effect,
    )


@router.post(
    "/v1/experiments/compare",
    response_model=Comparison,
    summary="Compare a candidate experiment with a baseline",
    description="Decides every scenario both ran, and the suite, as `ks gate` does: regressed, improved, "
    "unchanged or inconclusive, at `alpha` after the `correction`, for changes of at least `min_effect`.",
    responses=error_responses(403, 404, 409),
)
def compare_experiments(body: CompareRequest, context: Context, caller: LiveKey) -> dict[str, Any]:
    baseline = finished_results(context, caller.project_id, body.baseline_id)
    candidate = finished_results(context, caller.project_id, body.candidate_id)
    return compare(baseline, candidate, regression_policy(body))


@router.get(
    "/v1/experiments/{experiment_id}/stream",
    summary="Stream experiment events (SSE)",
    description=(
        "Server-Sent Events: `id:`, `event:` (progress, replica_done, done, error) and `data: {json}`. "
        "Resume with `Last-Event-ID`; the stream ends after `done` or `error`."
    ),
    response_class=StreamingResponse,
    responses=SSE_RESPONSES,
)
async def stream_experiment(
    experiment_id: str,
    context: Context,
    caller: LiveKey,
    after: ResumeAfter,
) -> StreamingResponse:
    await run_in_threadpool(context.experiment, caller.project_id, experiment_id)
    events = context.bus.follow(
        experiment_stream(experiment_id),
        after,
        experiment_event_ends,
        context.settings.stream_timeout_s,
    )
    return sse_response(events, lambda event: (event.type, {"type": event.type, **event.data}))


@router.get(
    "/v1/metrics/experiments/{experiment_id}",
    response_model=ExperimentMetrics,
    summary="Aggregate metrics of one experiment",
    responses=error_responses(403, 404),
)
def metrics(experiment_id: str, context: Context, caller: LiveKey) -> dict[str, Any]:
    record = context.experiment(caller.project_id, experiment_id)
    results = RunResults.model_validate(context.results(record))
    events = [
        event
        for scenario in results.scenarios
        for replica in scenario.replicas
        if replica.sandbox_id
        for event in context.store.trace_events(replica.sandbox_id)
    ]
    history = context.store.list_experiments(
        record.project_id, cursor=None, limit=HISTORY, spec_id=record.spec_id
    ).items
    return experiment_metrics(record, results, events, history)
