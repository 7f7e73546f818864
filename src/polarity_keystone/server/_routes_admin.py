"""`/v1/projects` and `/v1/keys`: what an admin key may do besides what any key does — create projects,
create keys of any project, list and revoke them. A key itself is answered once, at creation; listings
show its first characters only."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from ..store import ApiKeyRecord, ProjectRecord
from ._deps import AdminKey, Context
from ._keys import create_api_key, revoke_live_key
from ._models import KeyCreate, KeyCreated, KeyOut, ProjectCreate, ProjectOut, error_responses
from ._paging import LIST_RESPONSES, Paging

router = APIRouter(tags=["Admin"])


def _position(moment: datetime) -> str:
    """A creation time as a cursor position: fixed width, so text order is time order."""
    return moment.isoformat(timespec="microseconds")


def _project_out(record: ProjectRecord) -> ProjectOut:
    return ProjectOut(id=record.id, name=record.name, created_at=record.created_at)


def key_out(record: ApiKeyRecord) -> KeyOut:
    return KeyOut(
        id=record.id,
        name=record.name,
        prefix=record.prefix,
        project_id=record.project_id,
        admin=record.admin,
        revoked=record.revoked,
        created_at=record.created_at,
    )


@router.post(
    "/v1/projects",
    status_code=201,
    response_model=ProjectOut,
    summary="Create a project (admin key)",
    responses=error_responses(403, 409),
)
def create_project(body: ProjectCreate, context: Context, _: AdminKey) -> ProjectOut:
    record = ProjectRecord(f"proj_{secrets.token_hex(8)}", body.name, datetime.now(UTC))
    context.store.add_project(record)
    return _project_out(record)


@router.get(
    "/v1/projects",
    response_model=list[ProjectOut],
    summary="List projects (admin key)",
    responses={**LIST_RESPONSES, **error_responses(403)},
)
def list_projects(context: Context, _: AdminKey, pager: Paging) -> list[ProjectOut]:
    projects = context.store.list_projects()
    page = pager.slice(projects, "projects", lambda project: (_position(project.created_at), project.id))
    return pager.answer(page, _project_out)


@router.post(
    "/v1/keys",
    status_code=201,
    response_model=KeyCreated,
    summary="Create an API key of a project (admin key); the key is in this response only",
    responses=error_responses(403, 404),
)
async def create_key(body: KeyCreate, context: Context, _: AdminKey) -> KeyCreated:
    key, record = await run_in_threadpool(
        create_api_key, context.store, body.name, body.project_id, admin=body.admin
    )
    return KeyCreated(**key_out(record).model_dump(), key=key)


@router.get(
    "/v1/keys",
    response_model=list[KeyOut],
    summary="List API keys, of every project or of one (admin key); never the keys themselves",
    responses={**LIST_RESPONSES, **error_responses(403)},
)
def list_keys(
    context: Context, _: AdminKey, pager: Paging, project_id: str | None = Query(default=None, max_length=128)
) -> list[KeyOut]:
    keys = [key for key in context.store.list_api_keys(project_id) if key.kind == "live"]
    page = pager.slice(keys, "keys", lambda key: (_position(key.created_at), key.id))
    return pager.answer(page, key_out)


@router.delete(
    "/v1/keys/{key_id}",
    status_code=204,
    response_class=Response,
    summary="Revoke an API key (admin key); requests with it are refused from then on",
    responses=error_responses(403, 404),
)
def revoke_key(key_id: str, context: Context, _: AdminKey) -> Response:
    revoke_live_key(context.store, key_id)
    return Response(status_code=204)
