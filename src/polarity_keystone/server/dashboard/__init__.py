"""The web dashboard: server-rendered pages under `/ui`, read from the same store and results as the API,
scoped to the signed-in key's project (see `.._auth` for how a page is admitted)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

from .._deps import storable_parameters
from ._errors import render_errors_as_pages
from ._pages_compare import router as compare
from ._pages_experiments import router as experiments
from ._pages_replica import router as replica
from ._pages_sandboxes import router as sandboxes
from ._pages_sign_in import router as sign_in
from ._pages_specs import router as specs
from ._static import router as static

_PAGES = (static, sign_in, experiments, replica, compare, specs, sandboxes)


def install_dashboard(app: FastAPI) -> None:
    """Add the dashboard's routes to `app`, and error pages for them (after the API's error handlers)."""
    router = APIRouter(include_in_schema=False)
    for pages in _PAGES:
        router.include_router(pages)
    app.include_router(router, dependencies=[Depends(storable_parameters)])
    render_errors_as_pages(app)


__all__ = ["install_dashboard"]
