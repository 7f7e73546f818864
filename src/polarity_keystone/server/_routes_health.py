"""`GET /health`: liveness, without auth, for load balancers and agents probing before real calls."""

from __future__ import annotations

from fastapi import APIRouter

from .._version import __version__
from ._models import Health

router = APIRouter(tags=["Health"])


@router.get("/health", response_model=Health, summary="Health probe")
def health() -> Health:
    return Health(status="ok", version=__version__)
