"""`/v1/blobs`: the files of spec bundles, uploaded by content before the spec that names them.

A client asks which of its files' digests the server lacks and sends only those, so uploading a spec
again after changing one file sends about one file. Both answer for the caller's project: a blob only
another project uploaded is missing to it, and sending its bytes makes it the caller's too. A blob's
size is bounded by the server's request body limit, a project's blobs by its quota (413 above either).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor

from ..spec import SHA256_PATTERN
from ._deps import Context, LiveKey
from ._models import BlobDigests, BlobStored, MissingBlobs, error_responses

router = APIRouter(prefix="/v1/blobs", tags=["Specs"])


class _Sha256(Convertor[str]):
    """Matches only a digest, so `/v1/blobs/missing` is never taken for a blob (a PUT there is 405)."""

    regex = "[0-9a-f]{64}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("sha256", _Sha256())

_BLOB_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The file's bytes, whose sha256 must be the one in the path.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.post(
    "/missing",
    response_model=MissingBlobs,
    summary="Which of these blobs the caller's project does not hold",
    responses=error_responses(403),
)
def missing_blobs(body: BlobDigests, context: Context, principal: LiveKey) -> MissingBlobs:
    # Held: the upload asking is about to name them, so garbage collection must not release them now.
    return MissingBlobs(missing=context.blobs.hold(principal.project_id, body.digests))


@router.put(
    "/{sha256:sha256}",
    status_code=201,
    response_model=BlobStored,
    summary="Upload one blob (a file of a spec bundle)",
    openapi_extra=_BLOB_BODY,
    responses=error_responses(403, 404, 413),
)
async def put_blob(
    sha256: Annotated[str, Path(pattern=SHA256_PATTERN)],
    request: Request,
    context: Context,
    principal: LiveKey,
) -> BlobStored:
    data = await request.body()
    await run_in_threadpool(context.blobs.put, principal.project_id, sha256, data)
    return BlobStored(sha256=sha256, size=len(data))
