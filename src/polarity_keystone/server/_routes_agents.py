"""`/v1/agents` and `/v1/snapshots`: agent snapshots, versioned tarballs of agent code, per project.

An upload is a multipart form: `metadata` (JSON, `AgentUpload`) and `bundle` (the .tar.gz). The body is
streamed to a temporary file as it arrives, never held whole in memory, and refused (413) past the
server's snapshot limit. Another project's snapshot answers 404, as a missing one does.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Response, UploadFile
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ._agents import snapshot_out
from ._deps import Context, LiveKey
from ._errors import InvalidRequest
from ._models import MAX_VERSION, AgentSnapshotOut, AgentSnapshotPage, AgentUpload, error_responses
from ._paging import Paging

agents = APIRouter(prefix="/v1/agents", tags=["Agents"])
snapshots = APIRouter(prefix="/v1/snapshots", tags=["Agents"])

_METADATA = (
    'JSON: {"name", "entrypoint": [..], "runtime"?, "tag"?, "auth"?: {"required_env": [..], '
    '"config_files": [{"path", "template"}]}}'
)


def _metadata(text: str) -> AgentUpload:
    try:
        return AgentUpload.model_validate(json.loads(text))
    except (ValueError, ValidationError) as exc:
        raise InvalidRequest(f"the metadata field is {_METADATA}: {exc}") from None


@agents.post(
    "",
    status_code=201,
    response_model=AgentSnapshotOut,
    summary="Upload an agent snapshot (the next version of its name, or the snapshot these bytes are)",
    responses=error_responses(403, 409, 413),
)
async def upload_agent(
    metadata: Annotated[str, Form(description=_METADATA)],
    bundle: Annotated[UploadFile, File(description="The agent's code as a gzip'd tar (.tar.gz).")],
    context: Context,
    principal: LiveKey,
) -> AgentSnapshotOut:
    upload = _metadata(metadata)
    record = await run_in_threadpool(context.agents.upload, principal.project_id, upload, bundle.file)
    return snapshot_out(record, upload.tag)


@agents.get(
    "",
    response_model=AgentSnapshotPage,
    summary="List agents (the latest version of each, by name)",
    responses=error_responses(403),
)
def list_agents(context: Context, principal: LiveKey, pager: Paging) -> AgentSnapshotPage:
    page = context.store.list_agents(principal.project_id, cursor=pager.cursor, limit=pager.limit)
    return AgentSnapshotPage(items=[snapshot_out(item) for item in page.items], next_cursor=page.next_cursor)


@agents.get(
    "/{name}/latest",
    response_model=AgentSnapshotOut,
    summary="An agent's latest version",
    responses=error_responses(403, 404),
)
def latest_agent(name: str, context: Context, principal: LiveKey) -> AgentSnapshotOut:
    return snapshot_out(context.store.resolve_agent(principal.project_id, name))


@agents.get(
    "/{name}/tags/{tag}",
    response_model=AgentSnapshotOut,
    summary="The version a tag points at",
    responses=error_responses(403, 404),
)
def tagged_agent(name: str, tag: str, context: Context, principal: LiveKey) -> AgentSnapshotOut:
    return snapshot_out(context.store.resolve_agent(principal.project_id, name, tag=tag), tag)


@agents.get(
    "/{name}/versions/{version}",
    response_model=AgentSnapshotOut,
    summary="One version of an agent",
    responses=error_responses(403, 404),
)
def agent_version(
    name: str,
    version: Annotated[int, Path(ge=1, le=MAX_VERSION)],
    context: Context,
    principal: LiveKey,
) -> AgentSnapshotOut:
    return snapshot_out(context.store.resolve_agent(principal.project_id, name, version=version))


@agents.get(
    "/{name}/versions",
    response_model=AgentSnapshotPage,
    summary="An agent's versions, newest first",
    responses=error_responses(403, 404),
)
def agent_versions(name: str, context: Context, principal: LiveKey, pager: Paging) -> AgentSnapshotPage:
    page = context.store.list_agent_versions(
        principal.project_id, name, cursor=pager.cursor, limit=pager.limit
    )
    return AgentSnapshotPage(items=[snapshot_out(item) for item in page.items], next_cursor=page.next_cursor)


@snapshots.get(
    "/{snapshot_id}",
    response_model=AgentSnapshotOut,
    summary="A snapshot by its id (`snap_` and its content hash)",
    responses=error_responses(403, 404),
)
def get_snapshot(snapshot_id: str, context: Context, principal: LiveKey) -> AgentSnapshotOut:
    return snapshot_out(context.store.get_agent_snapshot(principal.project_id, snapshot_id))


@snapshots.delete(
    "/{snapshot_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a snapshot (its version number is never given again)",
    responses=error_responses(403, 404),
)
def delete_snapshot(snapshot_id: str, context: Context, principal: LiveKey) -> Response:
    context.store.delete_agent_snapshot(principal.project_id, snapshot_id)
    return Response(status_code=204)
