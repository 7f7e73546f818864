"""`/v1/bundles`: the manifest of a spec bundle, so a client can tell which of a spec's files changed since
a run (a replay refused for a changed bundle names them).

A bundle is its manifest stored as a blob, so it is the caller's when the caller's project owns that
blob; another project's bundle, a blob that is not a manifest and an unknown digest all answer 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import TypeAdapter, ValidationError

from ..spec import SHA256_PATTERN
from ._deps import Context, LiveKey
from ._errors import NotFoundError
from ._models import BundleEntry, SpecBundleFileOut, SpecBundleOut, error_responses

router = APIRouter(prefix="/v1/bundles", tags=["Specs"])

_MANIFEST = TypeAdapter(dict[str, BundleEntry])


@router.get(
    "/{sha256}",
    response_model=SpecBundleOut,
    summary="A spec bundle's manifest: its files' paths, digests, sizes and modes",
    responses=error_responses(403, 404),
)
def get_bundle(
    sha256: Annotated[str, Path(pattern=SHA256_PATTERN)], context: Context, principal: LiveKey
) -> SpecBundleOut:
    unknown = NotFoundError(f"no bundle {sha256}")
    if context.blobs.missing(principal.project_id, [sha256]):
        raise unknown
    try:
        manifest = _MANIFEST.validate_json(context.blobs.backend.get(sha256))
    except (FileNotFoundError, ValidationError) as exc:
        raise unknown from exc  # gone from the backend, or the blob of a file rather than of a manifest
    files = {path: SpecBundleFileOut(**entry.model_dump()) for path, entry in sorted(manifest.items())}
    return SpecBundleOut(digest=sha256, files=files)
