"""Backing services: one module per kind, each registered under the name the spec gives it (its
`type`, or the kind its image runs). A kind builds the container the sandbox runs for a service."""

from . import llm
from ._base import GENERIC, KINDS, ServiceKind, kind_of, register_kind
from ._snapshots import ServiceSnapshot, snapshot_diff
from .http_mock import HttpMock
from .postgres import Postgres, SqlError
from .postgres_audit import TableWrite
from .redis import Redis
from .s3 import S3, S3Error

__all__ = [
    "GENERIC",
    "KINDS",
    "S3",
    "HttpMock",
    "Postgres",
    "Redis",
    "S3Error",
    "ServiceKind",
    "ServiceSnapshot",
    "SqlError",
    "TableWrite",
    "kind_of",
    "llm",
    "register_kind",
    "snapshot_diff",
]
