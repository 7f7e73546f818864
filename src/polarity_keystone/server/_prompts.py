"""Prompt templates on the wire: the bodies of `/v1/prompts`, their bounds, and rendering a version.

A prompt is a slug of the caller's project with numbered versions (1, 2, ... never reused, even after a
delete). A version may carry a tag; `.../tags/{tag}` answers the newest live version created with it, so
creating a version with a tag moves the tag there, and deleting that version moves it back to the
previous one that carries it. The template language and its limits are in `_prompt_render`.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, StringConstraints, field_validator

from ..store import PromptRecord
from ._errors import ApiError, InvalidRequest
from ._models import ErrorBody, _Request, _Response
from ._prompt_render import (
    MAX_DEPTH,
    MAX_OUTPUT_CHARS,
    MAX_STEPS,
    MAX_TEMPLATE_CHARS,
    RenderLimitExceeded,
    TemplateError,
    parse,
)

MAX_PROMPT_VERSIONS_PER_PROJECT = 10_000
"""Live versions, of all the project's prompts together."""
MAX_VARIABLES = 256
MAX_METADATA_BYTES = 64 * 1024
MAX_RENDER_VARIABLES_BYTES = 1024**2
"""Of a render's `variables`, as JSON."""

Slug = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"),
    Field(description="Letters, digits, `.`, `_`, `-`; it names the prompt in URLs."),
]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
VariableName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class RenderTooLarge(ApiError):
    status_code, code = 422, "render_too_large"


RENDER_TOO_LARGE_RESPONSE: dict[int | str, dict[str, Any]] = {
    422: {
        "model": ErrorBody,
        "description": f"The rendered prompt would pass {MAX_OUTPUT_CHARS} characters, or rendering "
        f"would take more than {MAX_STEPS} steps",
    }
}


def _json_at_most(value: dict[str, Any], limit: int, what: str) -> dict[str, Any]:
    """`value`, unless its JSON passes `limit` bytes (ValueError: a 400 naming the field)."""
    if len(json.dumps(value, ensure_ascii=False).encode()) > limit:
        raise ValueError(f"{what} may be at most {limit} bytes of JSON")
    return value


class PromptCreate(_Request):
    slug: Slug
    template: str = Field(
        min_length=1,
        max_length=MAX_TEMPLATE_CHARS,
        description="`{name}` or `{{name}}` (dotted paths), sections `{#list}...{/list}` "
        f"(at most {MAX_DEPTH} deep); unknown variables render as written.",
    )
    tag: Tag | None = Field(
        default=None, description="`GET .../tags/{tag}` answers the newest version created with it."
    )
    variables: list[VariableName] | None = Field(
        default=None,
        max_length=MAX_VARIABLES,
        description="The names the template takes; default: those it uses outside sections, and its "
        "sections'.",
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description=f"At most {MAX_METADATA_BYTES} bytes.")

    @field_validator("metadata")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _json_at_most(value, MAX_METADATA_BYTES, "metadata")


class PromptOut(_Response):
    id: str = Field(description="This version's id (`prm_...`): what `POST /v1/prompts/{id}/render` takes.")
    slug: str
    version: int
    template: str
    tag: str | None = None
    variables: list[str]
    metadata: dict[str, Any]
    created_at: datetime


class PromptRenderRequest(_Request):
    variables: dict[str, Any] = Field(
        default_factory=dict, description=f"At most {MAX_RENDER_VARIABLES_BYTES} bytes of JSON."
    )

    @field_validator("variables")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _json_at_most(value, MAX_RENDER_VARIABLES_BYTES, "variables")


class PromptRendered(_Response):
    rendered: str


def new_prompt_id() -> str:
    return f"prm_{secrets.token_hex(12)}"


def template_variables(body: PromptCreate) -> list[str]:
    """The variables to store with the template: those given, else those it uses. InvalidRequest for a
    template that does not parse."""
    try:
        template = parse(body.template)
    except TemplateError as exc:
        raise InvalidRequest(f"the template is invalid: {exc}") from None
    return list(dict.fromkeys(body.variables)) if body.variables is not None else template.variables()


def render_prompt(record: PromptRecord, variables: dict[str, Any]) -> PromptRendered:
    """RenderTooLarge past the renderer's output or work limit."""
    try:
        return PromptRendered(rendered=parse(record.template).render(variables))
    except RenderLimitExceeded as exc:
        raise RenderTooLarge(str(exc)) from None


def prompt_out(record: PromptRecord) -> PromptOut:
    return PromptOut(
        id=record.id,
        slug=record.slug,
        version=record.version,
        template=record.template,
        tag=record.tag,
        variables=record.variables,
        metadata=record.metadata,
        created_at=record.created_at,
    )
