"""Records to rows and back, and the opaque cursors of paginated listings.

Columns carry their record field's name. JSON fields are stored as JSON text, datetimes as UTC: an ISO
8601 string of fixed width in SQLite (so text order is time order) and a `timestamptz` in Postgres.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ._base import InvalidCursor

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")

_JSON_FIELDS = frozenset(
    {"metadata", "options", "progress", "results", "result", "info", "data", "entrypoint", "auth", "events"}
)
_TIME_FIELDS = frozenset({"created_at", "started_at", "finished_at", "expires_at", "updated_at"})
_BOOL_FIELDS = frozenset({"revoked", "admin"})


def utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive datetime is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def timestamp(moment: datetime) -> str:
    return utc(moment).isoformat(timespec="microseconds")


def encode(name: str, value: Any) -> Any:
    """A record field's value as a column value."""
    if value is None:
        return None
    if name in _TIME_FIELDS:
        return timestamp(value)
    if name in _JSON_FIELDS:
        return json.dumps(value)
    return value


def decode(name: str, value: Any) -> Any:
    """A column value as a record field's value (SQLite hands back text and integers where Postgres
    hands back datetimes and booleans)."""
    if value is None:
        return None
    if name in _TIME_FIELDS:
        return utc(datetime.fromisoformat(value) if isinstance(value, str) else value)
    if name in _JSON_FIELDS:
        return json.loads(value)
    if name in _BOOL_FIELDS:
        return bool(value)
    return value


def to_row(record: DataclassInstance) -> dict[str, Any]:
    return {field.name: encode(field.name, getattr(record, field.name)) for field in fields(record)}


def from_row(kind: type[R], row: dict[str, Any]) -> R:
    """The record of type `kind` in `row`; columns that are no field of it are ignored."""
    return kind(**{field.name: decode(field.name, row[field.name]) for field in fields(kind)})


def encode_cursor(listing: str, position: list[Any]) -> str:
    """An opaque token naming the listing and the sort key of the last item a page showed."""
    text = json.dumps([listing, *position], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, listing: str, width: int) -> list[Any]:
    """The position `encode_cursor` put in `cursor`; InvalidCursor for anything it did not issue for
    `listing`."""
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        value = None
    valid = isinstance(value, list) and len(value) == width + 1 and value[0] == listing
    if not valid or not all(isinstance(item, str | int) for item in value[1:]):
        raise InvalidCursor(f"not a cursor of this {listing} listing: {cursor!r}")
    position: list[Any] = value[1:]
    return position
