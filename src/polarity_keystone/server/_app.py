"""`create_app`: the FastAPI application of one Keystone server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool

from .._version import __version__
from ._auth import AuthenticationMiddleware
from ._context import ServerContext
from ._deps import storable_parameters
from ._errors import install_error_handlers
from ._finished_reads import FinishedReadsMiddleware
from ._idempotency import IdempotencyMiddleware
from ._limits import MAX_JSON_DEPTH, BodyLimitMiddleware, describe_size
from ._models import ExperimentResults, ReplicaSuiteOut, RunOut
from ._request_id import RequestIdMiddleware
from ._routes_admin import router as admin
from ._routes_agents import agents, snapshots
from ._routes_alerts import router as alerts
from ._routes_blobs import router as blobs
from ._routes_bundles import router as bundles
from ._routes_datasets import router as datasets
from ._routes_evals import router as evals
from ._routes_experiments import router as experiments
from ._routes_export import router as export
from ._routes_health import router as health
from ._routes_otlp import router as otlp
from ._routes_prompts import router as prompts
from ._routes_runs import router as runs
from ._routes_sandbox_checks import router as sandbox_checks
from ._routes_sandboxes import router as sandboxes
from ._routes_scoring import router as scoring
from ._routes_specs import router as specs
from ._routes_traces import router as traces
from ._routes_webhooks import completion_body
from ._routes_webhooks import router as webhook_subscriptions
from ._settings import ServerSettings
from .dashboard import install_dashboard

DESCRIPTION = """\
Keystone runs each agent task in an isolated Docker sandbox next to real backing services, scores the run
against invariants and forbidden rules, and repeats it in fresh sandboxes to measure non-determinism.

Errors are `{error, message, request_id, details?}`. Every response carries `X-Request-ID`. POSTs accept
`Idempotency-Key`: the same key and body within 24 h returns the stored response (`Idempotent-Replayed:
true`); the same key with another body is 409. Lists answer a JSON array, paged with `limit` and `cursor`;
the next page's cursor is in the `X-Next-Cursor` header and a `Link: <...>; rel="next"` header.
"""
LIMITS = """
The key is checked before the body is read (401). A body larger than {size} is refused unread (413);
JSON nested more than {depth} levels deep is 400.
"""

_HEADERS = [
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "Makes the POST safely retryable: the response is stored for 24 hours.",
        "schema": {"type": "string", "maxLength": 255},
    },
    {
        "name": "X-Request-ID",
        "in": "header",
        "required": False,
        "description": "Echoed on the response; generated when absent.",
        "schema": {"type": "string"},
    },
]


_TOO_LARGE = {
    "description": "The body is larger than the server's limit",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
}
_IDEMPOTENCY_CONFLICT = {
    "description": "The Idempotency-Key was used with another request, or that request is still running",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
}


def _document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with our error contract: validation failures are 400 (never 422) and POSTs
    document Idempotency-Key (and its 409) and the body limit (413)."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            webhooks=app.webhooks.routes,
        )
        for operations in document.get("paths", {}).values():
            for method, operation in operations.items():
                operation.get("responses", {}).pop("422", None)
                if method == "post":
                    operation["parameters"] = [*operation.get("parameters", []), *_HEADERS]
                    operation["responses"].setdefault("409", _IDEMPOTENCY_CONFLICT)
                    operation["responses"].setdefault("413", _TOO_LARGE)
        schemas = document.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = document
    return app.openapi_schema


def _public_paths(app: FastAPI) -> set[str]:
    """What a caller without a key may reach: the health probe, the OpenAPI document and its pages."""
    documents = (app.openapi_url, app.docs_url, app.swagger_ui_oauth2_redirect_url)
    return {*(getattr(route, "path", "") for route in health.routes), *filter(None, documents)}


def create_app(settings: ServerSettings) -> FastAPI:
    """The app, with its store opened and recovered (experiments that stopped servers left running are
    marked `interrupted`). Call `close_app` when done if the app's lifespan does not run (in-process
    ASGI transports); under uvicorn the lifespan closes it."""
    context = ServerContext(settings, completion_body)
    try:
        context.recover()
    except BaseException:
        context.close()
        raise

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(context.close)

    app = FastAPI(
        title="Keystone REST API",
        version=__version__,
        description=DESCRIPTION
        + LIMITS.format(size=describe_size(settings.max_body_bytes), depth=MAX_JSON_DEPTH),
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.keystone = context
    install_error_handlers(app)
    app.include_router(health)
    routers = (
        specs,
        blobs,
        bundles,
        experiments,
        runs,
        sandboxes,
        sandbox_checks,
        agents,
        snapshots,
        webhook_subscriptions,
        alerts,
        datasets,
        evals,
        prompts,
        scoring,
        traces,
        export,
        otlp,
        admin,
    )
    for router in routers:
        app.include_router(router, dependencies=[Depends(storable_parameters)])
    install_dashboard(app)

    @app.webhooks.post("run.completed")
    def run_completed(body: RunOut) -> None:
        """Sent when a run reaches a terminal state: the Run as `GET /v1/runs/{id}` answers it. Headers:
        `Keystone-Event`, `Keystone-Event-Id`, `Keystone-Delivery`, `Keystone-Signature`."""

    @app.webhooks.post("replica.completed")
    def replica_completed(body: ReplicaSuiteOut) -> None:
        """Sent when a replica suite reaches a terminal state: the ReplicaSuite as its GET answers it."""

    @app.webhooks.post("experiment.completed")
    def experiment_completed(body: ExperimentResults) -> None:
        """Sent when an experiment reaches a terminal state: the experiment and its results as
        `GET /v1/experiments/{id}` answers it."""

    # Outermost last: request id, then who is calling, then the body's bounds, all before anything
    # (idempotency, FastAPI) reads the body; innermost, finished experiments' reads answered from memory.
    streamed = {"/v1/agents": settings.max_snapshot_bytes}
    app.add_middleware(FinishedReadsMiddleware, context=context)
    app.add_middleware(
        IdempotencyMiddleware, store=context.store, wait_s=settings.idempotency_wait_s, unkeyed=streamed
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, streamed=streamed)
    app.add_middleware(AuthenticationMiddleware, context=context, public_paths=_public_paths(app))
    app.add_middleware(RequestIdMiddleware)
    app.openapi = lambda: _document(app)  # type: ignore[method-assign]
    return app


def close_app(app: FastAPI) -> None:
    """Stop the app's experiments and sandboxes and close its store; idempotent."""
    context: ServerContext = app.state.keystone
    context.close()
