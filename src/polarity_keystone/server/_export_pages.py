"""Pages of the export listings: the `{items, next_cursor, count}` envelope, and trace-event pages narrowed
by what the store does not index (span ids, agent) at a bounded cost per request."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..store import InvalidCursor, Page, Store, TraceEventRecord, decode_cursor, encode_cursor

TRACE_LISTING = "trace_events"
"""The store's name for trace-event cursors: a cursor is the id of the last event a page showed."""
MAX_ROW_ID = 2**63 - 1
SCAN_ROWS = 5000
"""At most this many stored events are read to answer one page narrowed by an unindexed filter; a page
that reached it ends early with a cursor, so a rare match costs several short pages, never one long read."""


class ExportPage(BaseModel):
    """One page of an export listing; `next_cursor` is the `cursor` of the next page, null on the last."""

    model_config = ConfigDict(extra="allow")

    items: list[dict[str, Any]]
    next_cursor: str | None
    count: int
    """How many items this page holds."""


def envelope(items: list[dict[str, Any]], next_cursor: str | None) -> ExportPage:
    return ExportPage(items=items, next_cursor=next_cursor, count=len(items))


def checked_cursor(cursor: str | None) -> str | None:
    """The cursor, if it is one the store issued for trace events and names a possible row; InvalidCursor
    (400) otherwise, before any query sees it."""
    if cursor is None:
        return None
    (position,) = decode_cursor(cursor, TRACE_LISTING, 1)
    if not isinstance(position, int) or isinstance(position, bool) or not 0 <= position <= MAX_ROW_ID:
        raise InvalidCursor(f"not a cursor of this {TRACE_LISTING} listing: {cursor!r}")
    return cursor


def event_page(
    store: Store,
    project_id: str,
    *,
    cursor: str | None,
    limit: int,
    keep: Callable[[TraceEventRecord], bool] | None,
    sandbox_ids: Sequence[str] | None = None,
    trace_id: str | None = None,
    event_type: str | None = None,
    tool: str | None = None,
    since: datetime | None = None,
) -> Page[TraceEventRecord]:
    """The project's events after `cursor` that the store's filters and `keep` admit, oldest first. With
    `keep`, the store is read in batches until the page is full, the events end or `SCAN_ROWS` were read."""
    filters: dict[str, Any] = {
        "sandbox_ids": sandbox_ids,
        "trace_id": trace_id,
        "event_type": event_type,
        "tool": tool,
        "since": since,
    }
    position = checked_cursor(cursor)
    if keep is None:
        return store.list_trace_events(project_id, cursor=position, limit=limit, **filters)
    kept: list[TraceEventRecord] = []
    read = 0
    while True:
        batch = store.list_trace_events(project_id, cursor=position, limit=limit, **filters)
        for index, record in enumerate(batch.items):
            if keep(record):
                kept.append(record)
            if len(kept) == limit:
                last = index == len(batch.items) - 1 and batch.next_cursor is None
                return Page(kept, None if last else encode_cursor(TRACE_LISTING, [record.id]))
        read += len(batch.items)
        position = batch.next_cursor
        if position is None or read >= SCAN_ROWS:
            return Page(kept, position)


def events_envelope(page: Page[TraceEventRecord]) -> ExportPage:
    return envelope([listed_event(record) for record in page.items], page.next_cursor)


def listed_event(record: TraceEventRecord) -> dict[str, Any]:
    """The event as sent, with where it was filed and when it arrived."""
    return {
        **record.data,
        "sandbox_id": record.sandbox_id,
        "trace_id": record.trace_id,
        "received_at": record.created_at.isoformat(),
    }
