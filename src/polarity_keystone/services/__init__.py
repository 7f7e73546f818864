"""Backing services: one module per kind, chosen by `type` or by the image name."""

from ..spec._models import Service
from ._base import ExecProbe, LogLine, Readiness, ServiceKind, ServicePlan
from .http_mock import HttpMock
from .postgres import Postgres, SqlError
from .redis import Redis
from .s3 import S3, S3Error

KINDS: list[ServiceKind] = [Postgres(), Redis(), HttpMock(), S3()]
GENERIC = ServiceKind()


def kind_of(service: Service) -> ServiceKind:
    """The service's kind; any image that is neither Postgres nor Redis runs as a generic container."""
    return next((kind for kind in KINDS if kind.matches(service)), GENERIC)


__all__ = [
    "GENERIC",
    "KINDS",
    "S3",
    "ExecProbe",
    "HttpMock",
    "LogLine",
    "Postgres",
    "Readiness",
    "Redis",
    "S3Error",
    "ServiceKind",
    "ServicePlan",
    "SqlError",
    "kind_of",
]
