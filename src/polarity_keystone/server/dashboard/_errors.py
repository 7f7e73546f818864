"""A dashboard request that fails gets an HTML page with the API's status, error code, message and request
id, not the API's JSON: the same handlers decide, only the rendering differs."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from .._sessions import is_dashboard_path
from ._render import page

Handler = Callable[[Request, Exception], Awaitable[Response]]


def render_errors_as_pages(app: FastAPI) -> None:
    """Wrap every installed exception handler: its response stays as it is for the API, and becomes an
    error page for a dashboard path."""
    for exception, handler in list(app.exception_handlers.items()):
        app.add_exception_handler(exception, _as_page(handler))  # type: ignore[arg-type]


def _as_page(handler: Handler) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        response = await handler(request, exc)
        if not is_dashboard_path(request.url.path):
            return response
        error = json.loads(bytes(response.body))
        rendered = page(request, "error.html", response.status_code, error=error)
        for name in ("Retry-After", "Allow"):
            if name in response.headers:
                rendered.headers[name] = response.headers[name]
        return rendered

    return handle
