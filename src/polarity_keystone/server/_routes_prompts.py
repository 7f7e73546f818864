"""`/v1/prompts`: a project's versioned prompt templates, read by slug (latest, a version, a tag) or by a
version's id, and rendered with variables. Another project's prompt answers 404, as a missing one does."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from ._deps import Context, LiveKey
from ._models import MAX_VERSION, error_responses
from ._paging import LIST_RESPONSES, Paging
from ._prompts import (
    MAX_PROMPT_VERSIONS_PER_PROJECT,
    RENDER_TOO_LARGE_RESPONSE,
    PromptCreate,
    PromptOut,
    PromptRendered,
    PromptRenderRequest,
    new_prompt_id,
    prompt_out,
    render_prompt,
    template_variables,
)

router = APIRouter(prefix="/v1/prompts", tags=["Prompts"])


@router.post(
    "",
    status_code=201,
    response_model=PromptOut,
    summary="Create the next version of a prompt (version 1 for a new slug)",
    description=f"At most {MAX_PROMPT_VERSIONS_PER_PROJECT} live versions per project (409 past that).",
    responses=error_responses(403, 409),
)
def create_prompt(body: PromptCreate, context: Context, caller: LiveKey) -> PromptOut:
    record = context.store.add_prompt_version(
        caller.project_id,
        new_prompt_id(),
        body.slug,
        body.template,
        tag=body.tag,
        variables=template_variables(body),
        metadata=body.metadata,
        max_per_project=MAX_PROMPT_VERSIONS_PER_PROJECT,
    )
    return prompt_out(record)


@router.get(
    "",
    response_model=list[PromptOut],
    summary="List the project's prompts (the latest version of each, by slug)",
    responses={**LIST_RESPONSES, **error_responses(403)},
)
def list_prompts(context: Context, caller: LiveKey, pager: Paging) -> list[PromptOut]:
    page = context.store.list_prompts(caller.project_id, cursor=pager.cursor, limit=pager.limit)
    return pager.answer(page, prompt_out)


@router.get(
    "/{slug}/latest",
    response_model=PromptOut,
    summary="A prompt's latest version",
    responses=error_responses(403, 404),
)
def latest_prompt(slug: str, context: Context, caller: LiveKey) -> PromptOut:
    return prompt_out(context.store.resolve_prompt(caller.project_id, slug))


@router.get(
    "/{slug}/versions/{version}",
    response_model=PromptOut,
    summary="One version of a prompt",
    responses=error_responses(403, 404),
)
def prompt_version(
    slug: str,
    version: Annotated[int, Path(ge=1, le=MAX_VERSION)],
    context: Context,
    caller: LiveKey,
) -> PromptOut:
    return prompt_out(context.store.resolve_prompt(caller.project_id, slug, version=version))


@router.get(
    "/{slug}/tags/{tag}",
    response_model=PromptOut,
    summary="The newest version of a prompt created with this tag",
    responses=error_responses(403, 404),
)
def tagged_prompt(slug: str, tag: str, context: Context, caller: LiveKey) -> PromptOut:
    return prompt_out(context.store.resolve_prompt(caller.project_id, slug, tag=tag))


@router.get(
    "/{slug}/versions",
    response_model=list[PromptOut],
    summary="A prompt's versions, newest first",
    responses={**LIST_RESPONSES, **error_responses(403, 404)},
)
def prompt_versions(slug: str, context: Context, caller: LiveKey, pager: Paging) -> list[PromptOut]:
    page = context.store.list_prompt_versions(caller.project_id, slug, cursor=pager.cursor, limit=pager.limit)
    return pager.answer(page, prompt_out)


@router.get(
    "/{prompt_id}",
    response_model=PromptOut,
    summary="A prompt version by its id",
    responses=error_responses(403, 404),
)
def get_prompt(prompt_id: str, context: Context, caller: LiveKey) -> PromptOut:
    return prompt_out(context.store.get_prompt(caller.project_id, prompt_id))


@router.delete(
    "/{prompt_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a prompt version (its number is never given again; a tag on it moves back)",
    responses=error_responses(403, 404),
)
def delete_prompt(prompt_id: str, context: Context, caller: LiveKey) -> Response:
    context.store.delete_prompt(caller.project_id, prompt_id)
    return Response(status_code=204)


@router.post(
    "/{prompt_id}/render",
    response_model=PromptRendered,
    summary="Render a prompt version with variables",
    responses={**error_responses(403, 404), **RENDER_TOO_LARGE_RESPONSE},
)
def render(prompt_id: str, body: PromptRenderRequest, context: Context, caller: LiveKey) -> PromptRendered:
    return render_prompt(context.store.get_prompt(caller.project_id, prompt_id), body.variables)
