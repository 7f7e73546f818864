"""Events: persisted first (`store.append_event`), then pushed to the SSE streams waiting on them.

Every event has a store-wide increasing id, sent as the SSE `id:`; a client that reconnects with
`Last-Event-ID` is replayed everything after it from the store, so it misses nothing. Waiting streams
are woken at once by `publish` in this process and poll the store every second for events written by
another process sharing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from ..store import EventRecord, Store

POLL_S = 1.0
KEEPALIVE_S = 15.0
PAGE = 500


def experiment_stream(experiment_id: str) -> str:
    return f"experiment:{experiment_id}"


def sandbox_stream(sandbox_id: str) -> str:
    return f"sandbox:{sandbox_id}"


def experiment_event_ends(event: EventRecord) -> bool:
    return event.type in ("done", "error")


def sandbox_event_ends(event: EventRecord) -> bool:
    return event.type == "status" and event.data.get("state") in ("destroyed", "error")


class EventBus:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._lock = threading.Lock()

    def publish(self, stream: str, type: str, data: dict[str, Any]) -> EventRecord:
        """Persist the event and wake the streams following `stream`; safe from any thread."""
        record = self._store.append_event(stream, type, data)
        with self._lock:
            waiters = list(self._waiters.get(stream, ()))
        for loop, wake in waiters:
            with contextlib.suppress(RuntimeError):  # that stream's loop already closed
                loop.call_soon_threadsafe(wake.set)
        return record

    async def follow(
        self, stream: str, after_id: int, ends: Callable[[EventRecord], bool], timeout_s: float
    ) -> AsyncIterator[EventRecord | None]:
        """Events after `after_id` until one that `ends` the stream (or the timeout); None now and then
        while idle, so the caller can send a keep-alive."""
        wake = asyncio.Event()
        waiter = (asyncio.get_running_loop(), wake)
        with self._lock:
            self._waiters.setdefault(stream, set()).add(waiter)
        deadline = time.monotonic() + timeout_s
        idle_since = time.monotonic()
        try:
            while time.monotonic() < deadline:
                wake.clear()
                records = await run_in_threadpool(self._store.events_after, stream, after_id, PAGE)
                for record in records:
                    yield record
                    after_id = record.id
                    if ends(record):
                        return
                if records:
                    idle_since = time.monotonic()
                    if len(records) == PAGE:
                        continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), min(POLL_S, max(0.0, deadline - time.monotonic())))
                if time.monotonic() - idle_since >= KEEPALIVE_S:
                    idle_since = time.monotonic()
                    yield None
        finally:
            with self._lock:
                waiters = self._waiters.get(stream, set())
                waiters.discard(waiter)
                if not waiters:
                    self._waiters.pop(stream, None)


Render = Callable[[EventRecord], tuple[str, dict[str, Any]]]
"""A stored event as the stream shows it: its SSE `event:` name and its `data:` object."""


def sse_response(events: AsyncIterator[EventRecord | None], render: Render) -> StreamingResponse:
    """`id:`, `event:` and `data: {json}` lines per event; a comment line as keep-alive."""

    async def body() -> AsyncIterator[str]:
        yield ": stream open\n\n"
        async for event in events:
            if event is None:
                yield ": keep-alive\n\n"
            else:
                name, payload = render(event)
                data = json.dumps(payload, separators=(",", ":"))
                yield f"id: {event.id}\nevent: {name}\ndata: {data}\n\n"

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def last_event_id(header: str | None, query: int | None) -> int:
    """Where a stream resumes: the `Last-Event-ID` header (what EventSource sends), else `?last_event_id=`."""
    if header and header.strip().isdigit():
        return int(header.strip())
    return query or 0
