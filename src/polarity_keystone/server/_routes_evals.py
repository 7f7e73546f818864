"""`/v1/evals`: an `Eval` run by a client, recorded as an experiment (started, its cases added as they
finish, completed into RunResults like a spec experiment's), and an eval's history of completed runs.

The experiment then lists, streams, compares, exports and alerts like any other. An eval may not take
the name of one of the project's specs: its experiments (`spec_id` = the eval's name) would be listed,
trended and gated together with the spec's.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path

from ..store import ExperimentRecord, NotFound, ReplicaRecord
from ._context import ServerContext
from ._deps import Context, LiveKey
from ._errors import InvalidRequest, PayloadTooLarge, WrongState
from ._evals import (
    EVAL,
    MAX_CASE_FIELDS_BYTES,
    EvalCasesAdd,
    EvalCreate,
    case_fields_bytes,
    eval_results,
    is_eval,
    replica_of,
    score_means,
    stored_case,
)
from ._events import experiment_stream
from ._export_pages import ExportPage, envelope
from ._models import AGENT_NAME_PATTERN, ExperimentOut, ExperimentResults, _Response, error_responses
from ._paging import Paging
from ._routes_experiments import experiment_document, experiment_out
from ._runner import replica_event

router = APIRouter(prefix="/v1/evals", tags=["Evals"])


class EvalCasesStored(_Response):
    stored: int
    done: int
    """Cases the experiment holds now."""
    total: int
    """Cases the eval said it would send."""


@router.post(
    "",
    status_code=201,
    response_model=ExperimentOut,
    summary="Start recording an eval: a `running` experiment whose spec_id is the eval's name",
    responses=error_responses(400, 403, 409),
)
def create_eval(body: EvalCreate, context: Context, caller: LiveKey) -> ExperimentOut:
    try:
        context.store.get_spec(caller.project_id, body.name)
    except NotFound:
        pass
    else:
        raise WrongState(
            f"the project has a spec {body.name!r}: an eval of that name would be listed with its "
            "experiments; name the eval differently",
            code="name_taken",
        )
    now = datetime.now(UTC)
    progress = {**_counts(body.total_cases, []), "notes": [], "status": "running"}
    record = ExperimentRecord(
        id="exp-" + secrets.token_hex(6),
        name=body.experiment_name or f"{body.name} {now:%Y-%m-%d %H:%M:%S}",
        spec_id=body.name,
        spec_version=0,
        status="running",
        created_at=now,
        started_at=now,
        owner=caller.id,
        metadata=body.metadata,
        options={"kind": EVAL, "total_cases": body.total_cases, "scorers": body.scorers},
        progress=progress,
        project_id=caller.project_id,
    )
    context.store.add_experiment(record)
    context.bus.publish(experiment_stream(record.id), "progress", progress)
    return experiment_out(record)


@router.post(
    "/{experiment_id}/cases",
    response_model=EvalCasesStored,
    summary="Record finished cases of a running eval, each as a scenario with one replica",
    responses=error_responses(400, 403, 404, 409, 413),
)
def add_cases(experiment_id: str, body: EvalCasesAdd, context: Context, caller: LiveKey) -> EvalCasesStored:
    record = _running_eval(context, caller.project_id, experiment_id)
    for case in body.cases:
        size = case_fields_bytes(case)
        if size > MAX_CASE_FIELDS_BYTES:
            raise PayloadTooLarge(
                f"case {case.scenario_id!r}: input, expected and metadata take {size} bytes as JSON; at "
                f"most {MAX_CASE_FIELDS_BYTES} are kept per case"
            )
    stored = context.store.replicas(experiment_id)
    known = {replica.scenario_id for replica in stored}
    for case in body.cases:
        if case.scenario_id in known:
            raise WrongState(f"case {case.scenario_id!r} is already recorded in {experiment_id}")
        known.add(case.scenario_id)
    total = int(record.options.get("total_cases", 0))
    if len(known) > total:
        raise InvalidRequest(f"the eval said it has {total} cases; these would make {len(known)}")
    stream = experiment_stream(experiment_id)
    statuses = [str(replica.result.get("status")) for replica in stored]
    for case in body.cases:
        replica = replica_of(case)
        context.store.add_replica(
            ReplicaRecord(experiment_id, case.scenario_id, 0, stored_case(case, replica), datetime.now(UTC))
        )
        statuses.append(replica.status)
        context.bus.publish(stream, "replica_done", replica_event(case.scenario_id, replica))
    progress = {**record.progress, **_counts(total, statuses)}
    context.store.update_experiment(experiment_id, progress=progress)
    context.bus.publish(stream, "progress", progress)
    return EvalCasesStored(stored=len(body.cases), done=len(statuses), total=total)


@router.post(
    "/{experiment_id}/complete",
    response_model=ExperimentResults,
    summary="Aggregate the eval's cases into RunResults and complete its experiment",
    description="Completion sends the `experiment.completed` webhooks and evaluates the alert rules, as a "
    "spec experiment's does. Completing a completed eval answers its results again.",
    responses=error_responses(403, 404, 409),
)
def complete_eval(experiment_id: str, context: Context, caller: LiveKey) -> dict[str, Any]:
    record = _eval(context, caller.project_id, experiment_id)
    if record.status == "running":
        results = eval_results(record, context.store.replicas(experiment_id))
        summary = {"score_means": score_means(results), "pass_rate": results.metrics.pass_rate}
        moved = context.store.transition_experiment(
            experiment_id, ("running",), "completed", options={**record.options, **summary}
        )
        if moved is not None:
            context.runner.finish(experiment_id, "completed", results=results)
    record = context.experiment(caller.project_id, experiment_id)
    if record.status != "completed":
        raise WrongState(f"eval experiment {experiment_id} is {record.status}")
    return experiment_document(context, record)


@router.get(
    "/{eval_name}/history",
    response_model=ExportPage,
    summary="The eval's completed runs, newest first: experiment, metadata, pass rate, each scorer's mean",
    responses=error_responses(400, 403, 404),
)
def eval_history(
    eval_name: Annotated[str, Path(pattern=AGENT_NAME_PATTERN)],
    context: Context,
    caller: LiveKey,
    pager: Paging,
) -> ExportPage:
    page = context.store.list_experiments(
        caller.project_id, cursor=pager.cursor, limit=pager.limit, spec_id=eval_name, status="completed"
    )
    items = [_history_item(record) for record in page.items if is_eval(record)]
    if not items and pager.cursor is None:
        raise NotFound(f"no completed eval {eval_name!r}")
    return envelope(items, page.next_cursor)


def _history_item(record: ExperimentRecord) -> dict[str, Any]:
    return {
        "experiment_id": record.id,
        "experiment_name": record.name,
        "created_at": record.created_at.isoformat(),
        "metadata": record.metadata,
        "pass_rate": record.options.get("pass_rate", 0.0),
        "total_cases": record.progress.get("done", 0),
        "scores": record.options.get("score_means", {}),
    }


def _eval(context: ServerContext, project_id: str, experiment_id: str) -> ExperimentRecord:
    """The eval experiment, if it belongs to the project; NotFound for any other experiment too."""
    record = context.experiment(project_id, experiment_id, with_results=False)
    if not is_eval(record):
        raise NotFound(f"no eval experiment {experiment_id!r}")
    return record


def _running_eval(context: ServerContext, project_id: str, experiment_id: str) -> ExperimentRecord:
    record = _eval(context, project_id, experiment_id)
    if record.status != "running":
        raise WrongState(f"eval experiment {experiment_id} is {record.status}; cases go to a running one")
    return record


def _counts(total: int, statuses: list[str]) -> dict[str, int]:
    return {
        "total": total,
        "done": len(statuses),
        "passed": statuses.count("pass"),
        "failed": statuses.count("fail"),
        "errors": statuses.count("error"),
    }
