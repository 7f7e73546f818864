"""`/v1/sandboxes`: boot from a spec or an image, list, get, destroy; commands, files, state, diff,
trace, timeout extension and the lifecycle event stream. Sandbox tokens reach only their own
sandbox's endpoints."""

from __future__ import annotations

import base64
import binascii
import posixpath
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from ..sandbox import Sandbox, SandboxError
from ..secrets import require_available
from ..spec import parse_duration
from ..store import SandboxRecord, SandboxStateName
from ._context import ServerContext
from ._deps import Context, LiveKey, ResumeAfter, SandboxScoped
from ._errors import InvalidRequest, NotFoundError, PayloadTooLarge, WrongState
from ._events import sandbox_event_ends, sandbox_stream, sse_response
from ._image_spec import image_spec
from ._models import (
    SSE_RESPONSES,
    CommandRequest,
    CommandResult,
    Duration,
    FileWrite,
    FileWritten,
    SandboxCreate,
    SandboxOut,
    SandboxStatus,
    StateDiff,
    StateSnapshot,
    TimeoutRequest,
    Trace,
    TraceAccepted,
    TraceIngest,
    error_responses,
)
from ._paging import LIST_RESPONSES, Paging
from ._results import trace_metrics
from ._routes_traces import store_events
from ._sandbox_manager import BootRequest
from ._seeds import seed_text

router = APIRouter(prefix="/v1/sandboxes", tags=["Sandboxes"])
T = TypeVar("T")

WORKSPACE = "/workspace"
MAX_TIMEOUT_S = 24 * 3600.0
MAX_FILE_BYTES = 32 * 1024 * 1024


STATUSES: dict[SandboxStateName, SandboxStatus] = {
    "creating": "provisioning",
    "ready": "ready",
    "running": "running",
    "destroyed": "stopped",
    "error": "failed",
}
"""Keystone's sandbox states as the REST API's sandbox statuses."""


def sandbox_out(record: SandboxRecord) -> SandboxOut:
    seed = record.info.get("seed")
    return SandboxOut(
        **{key: value for key, value in record.info.items() if key not in ("services", "seed")},
        id=record.id,
        spec_id=record.spec_id,
        status=STATUSES[record.state],
        state=record.state,
        seed=None if seed is None else seed_text(seed),
        created_at=record.created_at,
        expires_at=record.expires_at,
        metadata=record.metadata,
        services=record.info.get("services", {}),
    )


def seconds(value: Duration | None, what: str) -> float | None:
    if value is None:
        return None
    try:
        parsed = parse_duration(value)
    except ValueError as exc:
        raise InvalidRequest(f"{what}: {exc}") from None
    if parsed > MAX_TIMEOUT_S:
        raise InvalidRequest(f"{what}: at most 24h")
    return parsed


def workspace_relative(path: str) -> str:
    """`/workspace/x` and `x` are the same file; `..` and paths outside the workspace are refused."""
    if "\x00" in path:
        raise InvalidRequest("the path contains a NUL character", code="invalid_path")
    if path == WORKSPACE or path.startswith(WORKSPACE + "/"):
        path = path[len(WORKSPACE) :]
    elif path.startswith("/"):
        raise InvalidRequest(f"{path!r} is outside {WORKSPACE}", code="invalid_path")
    relative = path.lstrip("/")
    if ".." in relative.split("/"):
        raise InvalidRequest(f"{path!r}: path traversal (..) is not allowed", code="invalid_path")
    normal = posixpath.normpath(relative) if relative else ""
    if normal in ("", "."):
        raise InvalidRequest("the path names the workspace itself, not a file", code="invalid_path")
    return normal


@router.post(
    "",
    status_code=201,
    response_model=SandboxOut,
    summary="Create a sandbox from a spec, or from an image and services (returns once ready)",
    responses=error_responses(403, 404, 500, 503),
)
def create_sandbox(body: SandboxCreate, request: Request, context: Context, caller: LiveKey) -> SandboxOut:
    if body.image is not None:
        loaded, spec_id, version = image_spec(body.image, body.services), "", None
    else:
        assert body.spec_id is not None  # the body holds one or the other
        spec = context.store.get_spec(caller.project_id, body.spec_id, body.spec_version)
        loaded = context.specs.load(spec.project_id, spec.id, spec.version)
        spec_id, version = spec.id, spec.version
    require_available(loaded.spec.secrets, body.secrets, context.settings.secret_policy)
    boot = BootRequest(
        owner=caller.id,
        project_id=caller.project_id,
        loaded=loaded,
        spec_id=spec_id,
        spec_version=version,
        timeout_s=seconds(body.timeout, "timeout"),
        metadata=body.metadata,
        provided_secrets=body.secrets,
        seed=body.seed,
        base_url=context.base_url(request),
    )
    return sandbox_out(context.sandboxes.create(boot))


@router.get(
    "",
    response_model=list[SandboxOut],
    summary="List live sandboxes, oldest first",
    responses={**LIST_RESPONSES, **error_responses(403)},
)
def list_sandboxes(context: Context, caller: LiveKey, pager: Paging) -> list[SandboxOut]:
    live = context.store.list_sandboxes(project_id=caller.project_id)
    return pager.answer(pager.slice(live, "sandboxes", _list_position), sandbox_out)


def _list_position(record: SandboxRecord) -> tuple[str, str]:
    """The store lists sandboxes by creation time, then id; fixed-width times sort as text."""
    return record.created_at.isoformat(timespec="microseconds"), record.id


@router.get(
    "/{sandbox_id}", response_model=SandboxOut, summary="Get a sandbox", responses=error_responses(403, 404)
)
def get_sandbox(sandbox_id: str, context: Context, _: SandboxScoped) -> SandboxOut:
    return sandbox_out(context.store.get_sandbox(sandbox_id))


@router.delete(
    "/{sandbox_id}",
    status_code=204,
    response_class=Response,
    summary="Destroy a sandbox",
    responses=error_responses(403, 404),
)
def destroy_sandbox(sandbox_id: str, context: Context, _: SandboxScoped) -> Response:
    context.sandboxes.destroy(sandbox_id, reason="destroyed through the API")
    return Response(status_code=204)


@router.post(
    "/{sandbox_id}/commands",
    response_model=CommandResult,
    summary="Run a shell command in the sandbox",
    responses=error_responses(403, 404, 409),
)
def run_command(sandbox_id: str, body: CommandRequest, context: Context, _: SandboxScoped) -> dict[str, Any]:
    timeout = seconds(body.timeout, "timeout")
    return context.sandboxes.run_command(sandbox_id, body.command, timeout, body.background)


def _sandbox_call(sandbox_id: str, context: ServerContext, action: str, call: Callable[[Sandbox], T]) -> T:
    """`call` on the live sandbox, its failures as API errors (404 no such file, 409 sandbox gone)."""
    live = context.sandboxes.live(sandbox_id)
    try:
        return call(live.sandbox)
    except FileNotFoundError:
        raise NotFoundError(f"no file {action} in sandbox {sandbox_id}") from None
    except IsADirectoryError:
        raise InvalidRequest(f"{action} is a directory, not a file", code="invalid_path") from None
    except SandboxError as exc:
        raise WrongState(live.redact(str(exc)), code="sandbox_not_running") from exc


@router.post(
    "/{sandbox_id}/files",
    status_code=201,
    response_model=FileWritten,
    summary="Write a file (path relative to /workspace)",
    responses=error_responses(403, 404, 409, 413),
)
def write_file(sandbox_id: str, body: FileWrite, context: Context, _: SandboxScoped) -> FileWritten:
    path = workspace_relative(body.path)
    if body.encoding == "base64":
        try:
            content = base64.b64decode(body.content, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("content is not valid base64") from None
    else:
        content = body.content.encode()
    if len(content) > MAX_FILE_BYTES:
        raise InvalidRequest(f"a file may be at most {MAX_FILE_BYTES} bytes", code="payload_too_large")
    _sandbox_call(sandbox_id, context, path, lambda sandbox: sandbox.write_file(path, content))
    context.sandboxes.file_event(sandbox_id, "write", path)
    return FileWritten(path=path, size=len(content))


@router.get(
    "/{sandbox_id}/files/{path:path}",
    response_class=Response,
    summary="Read a file (raw bytes)",
    responses={
        200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        **error_responses(403, 404, 409, 413),
    },
)
def read_file(sandbox_id: str, path: str, context: Context, _: SandboxScoped) -> Response:
    relative = workspace_relative(path)
    content = _sandbox_call(
        sandbox_id, context, relative, lambda sandbox: sandbox.read_file(relative, MAX_FILE_BYTES + 1)
    )
    if len(content) > MAX_FILE_BYTES:
        raise PayloadTooLarge(
            f"{relative} is over {MAX_FILE_BYTES // 2**20} MiB; read it inside the sandbox (POST .../exec)"
        )
    return Response(content, media_type="application/octet-stream")


@router.delete(
    "/{sandbox_id}/files/{path:path}",
    status_code=204,
    response_class=Response,
    summary="Delete a file",
    responses=error_responses(403, 404, 409),
)
def delete_file(sandbox_id: str, path: str, context: Context, _: SandboxScoped) -> Response:
    relative = workspace_relative(path)
    _sandbox_call(sandbox_id, context, relative, lambda sandbox: sandbox.delete_file(relative))
    context.sandboxes.file_event(sandbox_id, "delete", relative)
    return Response(status_code=204)


@router.get(
    "/{sandbox_id}/state",
    response_model=StateSnapshot,
    summary="Workspace snapshot (files with size, mode, checksum)",
    responses=error_responses(403, 404, 409),
)
def state(sandbox_id: str, context: Context, _: SandboxScoped) -> dict[str, Any]:
    snapshot = _sandbox_call(sandbox_id, context, "state", lambda sandbox: sandbox.workspace_snapshot())
    files = {path: vars(info) for path, info in snapshot.files.items()}
    return {"sandbox_id": sandbox_id, "captured_at": snapshot.captured_at, "files": files}


@router.get(
    "/{sandbox_id}/diff",
    response_model=StateDiff,
    summary="What changed in the workspace since boot",
    responses=error_responses(403, 404, 409),
)
def diff(sandbox_id: str, context: Context, _: SandboxScoped) -> StateDiff:
    changes = _sandbox_call(sandbox_id, context, "diff", lambda sandbox: sandbox.diff())
    return StateDiff(
        sandbox_id=sandbox_id, added=changes.added, removed=changes.removed, modified=changes.modified
    )


@router.post(
    "/{sandbox_id}/trace",
    response_model=TraceAccepted,
    summary="Ingest trace events (agents report tool calls)",
    responses=error_responses(403, 404, 413),
)
def ingest_trace(
    sandbox_id: str, body: TraceIngest, context: Context, caller: SandboxScoped
) -> TraceAccepted:
    context.store.get_sandbox(sandbox_id)
    return TraceAccepted(accepted=store_events(context, caller, sandbox_id, body.events))


@router.get(
    "/{sandbox_id}/trace",
    response_model=Trace,
    summary="Trace events and tool-call metrics",
    responses=error_responses(403, 404),
)
def get_trace(sandbox_id: str, context: Context, _: SandboxScoped) -> dict[str, Any]:
    context.store.get_sandbox(sandbox_id)
    events = context.store.trace_events(sandbox_id)
    return {"sandbox_id": sandbox_id, "events": events, "metrics": trace_metrics(events)}


@router.post(
    "/{sandbox_id}/timeout",
    response_model=SandboxOut,
    summary="Extend or reset the sandbox's timeout (from now)",
    responses=error_responses(403, 404, 409),
)
def extend_timeout(sandbox_id: str, body: TimeoutRequest, context: Context, _: SandboxScoped) -> SandboxOut:
    new_timeout = seconds(body.timeout, "timeout")
    assert new_timeout is not None
    return sandbox_out(context.sandboxes.extend(sandbox_id, new_timeout))


@router.get(
    "/{sandbox_id}/events",
    summary="Stream lifecycle events (SSE)",
    description=(
        "Events `status` (boot steps, state changes), `command` and `file`; "
        "the stream ends when the sandbox is destroyed."
    ),
    response_class=StreamingResponse,
    responses=SSE_RESPONSES,
)
async def events(
    sandbox_id: str,
    context: Context,
    _: SandboxScoped,
    after: ResumeAfter,
) -> StreamingResponse:
    await run_in_threadpool(context.store.get_sandbox, sandbox_id)
    followed = context.bus.follow(
        sandbox_stream(sandbox_id),
        after,
        sandbox_event_ends,
        context.settings.stream_timeout_s,
    )
    return sse_response(followed, lambda event: (event.type, {"event_type": event.type, "data": event.data}))
