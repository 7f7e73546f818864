"""The specs pages: the project's specs, and one spec's versions, YAML, diffs between versions and
experiments."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from .._deps import Context, LiveKey
from .._models import MAX_VERSION
from .._routes_specs import spec_out
from ._render import page
from ._spec_view import diff, versions

router = APIRouter(include_in_schema=False)

SPECS_PER_PAGE = 50
EXPERIMENTS_SHOWN = 20

Version = Annotated[int | None, Query(ge=1, le=MAX_VERSION)]


@router.get("/ui/specs")
def specs(
    request: Request, context: Context, caller: LiveKey, cursor: Annotated[str | None, Query()] = None
) -> Response:
    listing = context.store.list_specs(caller.project_id, cursor=cursor, limit=SPECS_PER_PAGE)
    specs = [spec_out(record) for record in listing.items]
    return page(request, "specs.html", specs=specs, next_cursor=listing.next_cursor)


@router.get("/ui/specs/{spec_id}")
def spec(
    spec_id: str,
    request: Request,
    context: Context,
    caller: LiveKey,
    version: Version = None,
    against: Version = None,
) -> Response:
    store, project = context.store, caller.project_id
    shown = store.get_spec(project, spec_id, version)
    other = None if against is None else store.get_spec(project, spec_id, against)
    experiments = store.list_experiments(project, cursor=None, limit=EXPERIMENTS_SHOWN, spec_id=spec_id)
    return page(
        request,
        "spec.html",
        spec=spec_out(shown),
        versions=versions(store, project, spec_id),
        against=other,
        diff=None if other is None else diff(other, shown),
        experiments=experiments.items,
    )
