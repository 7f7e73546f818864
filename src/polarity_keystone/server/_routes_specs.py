"""`/v1/specs`: upload (raw YAML, auto-versioned by the spec's `id`), list, get, delete."""

from __future__ import annotations

import functools
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ..spec import MAX_SPEC_BYTES, BundleFile, Manifest, SpecError, read_yaml
from ..store import SpecRecord
from ._deps import Context, LiveKey
from ._errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from ._models import MAX_VERSION, SpecOut, SpecUpload, error_responses
from ._paging import LIST_RESPONSES, Paging

router = APIRouter(prefix="/v1/specs", tags=["Specs"])

YAML_TYPES = ("application/x-yaml", "application/yaml", "text/yaml", "text/x-yaml", "text/plain")
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The spec YAML as the raw body (or, as Keystone's OpenAPI document has it, "
        "JSON `{yaml, name?}`, which may add `bundle`: the spec's local files, uploaded as blobs).",
        "content": {
            **{media: {"schema": {"type": "string"}} for media in YAML_TYPES[:3]},
            "application/json": {"schema": SpecUpload.model_json_schema()},
        },
    }
}


@functools.lru_cache(maxsize=1024)
def _description(yaml_text: str) -> str:
    """The stored spec's description, read with the spec loader's limits (a stored text is not trusted
    more than an uploaded one)."""
    try:
        document, _ = read_yaml(yaml_text, "spec")
    except SpecError:
        return ""
    value = document.get("description")
    return str(value) if value is not None else ""


def spec_out(record: SpecRecord) -> SpecOut:
    return SpecOut(
        id=record.id,
        version=record.version,
        name=record.id,
        description=_description(record.yaml),
        yaml=record.yaml,
        sha256=record.sha256,
        created_at=record.created_at,
    )


def _too_large(size: int) -> None:
    if size > MAX_SPEC_BYTES:
        raise PayloadTooLarge(f"a spec may be at most {MAX_SPEC_BYTES} bytes")


def _spec_upload(content_type: str, body: bytes) -> tuple[str, Manifest | None]:
    """The spec text and, from a JSON upload, its bundle's manifest. A JSON body may be larger than a
    spec (its manifest can name thousands of files); its `yaml` is held to the spec's limit."""
    media = content_type.split(";")[0].strip().lower()
    if media != "application/json":
        _too_large(len(body))
        return _spec_text(media, body), None
    try:
        upload = SpecUpload.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        shape = '{"yaml": "<spec text>", "bundle"?: {path: {sha256, size, mode}}}'
        raise InvalidRequest(f"a JSON upload is {shape}: {exc}") from None
    _too_large(len(upload.yaml.encode("utf-8", "surrogatepass")))
    if upload.bundle is None:
        return upload.yaml, None
    files = upload.bundle.items()
    return upload.yaml, {path: BundleFile(entry.sha256, entry.size, entry.mode) for path, entry in files}


def _spec_text(media: str, body: bytes) -> str:
    if media and media not in YAML_TYPES:
        raise UnsupportedMediaType(f"send the spec as application/x-yaml or text/yaml, not {media}")
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"the spec is not UTF-8 text (byte {exc.start} cannot be decoded)") from None


@router.post(
    "",
    status_code=201,
    response_model=SpecOut,
    summary="Upload a YAML spec",
    openapi_extra=_UPLOAD_BODY,
    responses=error_responses(403, 409, 413, 415),
)
async def upload_spec(
    request: Request,
    context: Context,
    caller: LiveKey,
    filename: Annotated[
        str, Query(max_length=500, description="Names the file in error messages.")
    ] = "spec.yaml",
) -> SpecOut:
    text, manifest = _spec_upload(request.headers.get("content-type", ""), await request.body())
    record, _loaded = await run_in_threadpool(
        context.specs.upload, caller.project_id, text, filename, manifest
    )
    return spec_out(record)


@router.get(
    "",
    response_model=list[SpecOut],
    summary="List specs (latest version of each)",
    responses={**LIST_RESPONSES, **error_responses(403)},
)
def list_specs(context: Context, caller: LiveKey, pager: Paging) -> list[SpecOut]:
    page = context.store.list_specs(caller.project_id, cursor=pager.cursor, limit=pager.limit)
    return pager.answer(page, spec_out)


@router.get("/{spec_id}", response_model=SpecOut, summary="Get a spec", responses=error_responses(403, 404))
def get_spec(
    spec_id: str,
    context: Context,
    caller: LiveKey,
    version: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
) -> SpecOut:
    return spec_out(context.store.get_spec(caller.project_id, spec_id, version))


@router.delete(
    "/{spec_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a spec",
    responses=error_responses(403, 404),
)
def delete_spec(spec_id: str, context: Context, caller: LiveKey) -> Response:
    context.store.delete_spec(caller.project_id, spec_id)
    return Response(status_code=204)
