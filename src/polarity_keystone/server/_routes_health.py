"""`GET /health` and `GET /v1/health`: liveness, without auth, for load balancers and agents probing before
real calls. Both paths answer, since the REST reference names `/health` and the OpenAPI document's server
base is `/v1`."""

from __future__ import annotations

from fastapi import APIRouter

from .._version import __version__
from ._models import Health

router = APIRouter(tags=["Health"])


@router.get("/health", response_model=Health, summary="Health probe")
@router.get("/v1/health", response_model=Health, summary="Health probe (under the API's /v1 base)")
def health() -> Health:
    return Health(status="ok", version=__version__)
