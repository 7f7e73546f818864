"""The compare page: a candidate experiment against a baseline, per scenario and for the suite, decided as
`ks gate` decides; without both, a form to choose them."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ...analysis import RegressionPolicy
from .._deps import Context, LiveKey
from .._errors import WrongState
from ._compare_view import compare_request, compare_view, finished_choices
from ._render import page

router = APIRouter(include_in_schema=False)


@router.get("/ui/compare")
def compare_page(request: Request, context: Context, caller: LiveKey) -> Response:
    query = dict(request.query_params)
    view, problem, status = None, None, 200
    if query.get("baseline") and query.get("candidate"):
        asked = compare_request(query)
        try:
            view = compare_view(context, caller.project_id, asked)
        except WrongState as exc:
            problem, status = exc.message, 409
    return page(
        request,
        "compare.html",
        status,
        view=view,
        problem=problem,
        choices=finished_choices(context.store, caller.project_id),
        query=query,
        defaults=RegressionPolicy(),
    )
