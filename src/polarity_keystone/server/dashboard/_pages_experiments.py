"""The experiments list (filters, pass rates, a spec's trend) and one experiment's page, which follows a
running experiment live: `static/live.js` listens to the page's event stream and swaps in a fresh copy of
the live section on every event."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from .._deps import Context, LiveKey, ResumeAfter
from .._routes_experiments import stream_experiment
from ._experiment_list import DEFAULT_BRANCH, STATUSES, Filters, list_page, trend
from ._experiment_view import experiment_view, previous_finished
from ._render import page

router = APIRouter(include_in_schema=False)


@router.get("/ui")
def home() -> Response:
    return RedirectResponse("/ui/experiments", status_code=303)


@router.get("/ui/experiments")
def experiments(
    request: Request, context: Context, caller: LiveKey, cursor: Annotated[str | None, Query()] = None
) -> Response:
    filters = Filters.of(dict(request.query_params))
    listing = list_page(context.store, caller.project_id, filters, cursor)
    spec_trend = (
        trend(context.store, caller.project_id, filters.spec, filters.branch or DEFAULT_BRANCH)
        if filters.spec
        else None
    )
    return page(
        request,
        "experiments.html",
        filters=filters,
        statuses=STATUSES,
        listing=listing,
        trend=spec_trend,
    )


@router.get("/ui/experiments/{experiment_id}")
def experiment(experiment_id: str, request: Request, context: Context, caller: LiveKey) -> Response:
    record = context.experiment(caller.project_id, experiment_id)
    return page(
        request,
        "experiment.html",
        view=experiment_view(context.store, record),
        baseline=previous_finished(context.store, record),
    )


@router.get("/ui/experiments/{experiment_id}/live")
def experiment_live(experiment_id: str, request: Request, context: Context, caller: LiveKey) -> Response:
    """The live section alone: what the experiment page fetches on each event of its stream."""
    record = context.experiment(caller.project_id, experiment_id)
    return page(request, "_experiment_live.html", view=experiment_view(context.store, record))


@router.get("/ui/experiments/{experiment_id}/stream")
async def experiment_events(
    experiment_id: str, context: Context, caller: LiveKey, after: ResumeAfter
) -> StreamingResponse:
    """The experiment's event stream, as the API sends it, for the page's session: an EventSource cannot
    send an API key."""
    return await stream_experiment(experiment_id, context, caller, after)
