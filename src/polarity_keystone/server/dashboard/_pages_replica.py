"""One replica's page: what a developer opens when a gate blocks, to see why. Its verdict and timings, the
invariants and forbidden rules with their evidence, the audit timeline (narrowed by kind with a GET
form, which `static/replica.js` submits on each change), the service-state diff, the agent's trace, its
output, and the `ks replay` command that reproduces it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from .._deps import Context, LiveKey
from ._render import page
from ._replica_view import compact, replica_view

router = APIRouter(include_in_schema=False)


@router.get("/ui/experiments/{experiment_id}/scenarios/{scenario_id}/replicas/{replica_index}")
def replica(
    experiment_id: str,
    scenario_id: str,
    replica_index: int,
    request: Request,
    context: Context,
    caller: LiveKey,
    kind: Annotated[list[str] | None, Query()] = None,
) -> Response:
    record = context.experiment(caller.project_id, experiment_id)
    view = replica_view(
        context.store, caller.project_id, context.results(record), scenario_id, replica_index, kind or []
    )
    return page(request, "replica.html", record=record, view=view, compact=compact)
