"""The experiments list."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .._deps import Context, LiveKey
from ._render import page

router = APIRouter(include_in_schema=False)


@router.get("/ui")
def home() -> Response:
    return RedirectResponse("/ui/experiments", status_code=303)


@router.get("/ui/experiments")
def experiments(request: Request, context: Context, caller: LiveKey) -> Response:
    found = context.store.list_experiments(caller.project_id, cursor=None, limit=50)
    return page(request, "experiments.html", experiments=found.items)
