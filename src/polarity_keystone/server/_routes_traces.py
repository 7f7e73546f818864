"""Trace ingest: the bounds every event reported over the API passes before it is stored."""

from __future__ import annotations

from typing import Any

from ..scoring import MAX_EVENTS_PER_SANDBOX, event_problem
from ..store import Store
from ._errors import PayloadTooLarge


def admit_events(store: Store, sandbox_id: str | None, events: list[dict[str, Any]]) -> None:
    """Refuse (413) a batch holding an event too large, too deep or with too many keys, or one that
    would take a sandbox's trace past its cap: scoring reads every stored event of a replica."""
    for index, event in enumerate(events):
        problem = event_problem(event)
        if problem is not None:
            raise PayloadTooLarge(f"events[{index}]: {problem}")
    if sandbox_id is None:
        return
    held = store.trace_event_count(sandbox_id)
    if held + len(events) > MAX_EVENTS_PER_SANDBOX:
        raise PayloadTooLarge(
            f"the sandbox's trace holds {held} events; {len(events)} more would pass its cap of "
            f"{MAX_EVENTS_PER_SANDBOX}"
        )
