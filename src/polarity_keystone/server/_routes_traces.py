"""Trace ingest: `POST /v1/traces` (agent mode: events grouped by trace id, with or without a sandbox), and
the bounds every event reported over the API passes before it is stored. Listing is export's
(`_routes_export`)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

from ..scoring import MAX_EVENTS_PER_SANDBOX, event_problem, normalise_event
from ..secrets import redact_all
from ..store import Store, TraceEventIndex
from ._deps import Authenticated, Context, Principal
from ._errors import Forbidden, PayloadTooLarge
from ._events import experiment_stream
from ._models import TracesAccepted, TracesIngest, error_responses

router = APIRouter(prefix="/v1/traces", tags=["traces"])

LIVE_EVENTS_PER_BATCH = 100
"""How many events of one batch go out live on their experiment's stream (all of them are stored)."""
_LIVE_KEYS = ("event_type", "tool", "phase", "status", "duration_ms", "model")


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


def trace_index(trace_id: str | None) -> Callable[[dict[str, Any]], TraceEventIndex]:
    """What listings filter an event by: its trace (its own `trace_id`, else the batch's), normalised
    type and tool."""

    def index(event: dict[str, Any]) -> TraceEventIndex:
        normal = normalise_event(event)
        return TraceEventIndex(normal.get("trace_id") or trace_id, normal["event_type"], normal["tool"])

    return index


def store_events(
    context: Context,
    caller: Principal,
    sandbox_id: str | None,
    events: list[dict[str, Any]],
    trace_id: str | None = None,
) -> int:
    """Bound, redact (a sandbox's secrets never reach the store) and store events for the caller's
    project; the sandbox, when named, is the caller's to write to."""
    admit_events(context.store, sandbox_id, events)
    if sandbox_id is None:
        return context.store.add_trace_events(
            None, caller.id, events, project_id=caller.project_id, index=trace_index(trace_id)
        )
    events = redact_all(events, context.sandboxes.redactor(sandbox_id))
    stored = context.store.add_trace_events(
        sandbox_id, caller.id, events, project_id=caller.project_id, index=trace_index(trace_id)
    )
    _publish_live(context, sandbox_id, events[:LIVE_EVENTS_PER_BATCH], trace_id)
    return stored


def _publish_live(
    context: Context, sandbox_id: str, events: list[dict[str, Any]], trace_id: str | None
) -> None:
    """Events of an experiment's replica on the experiment's stream as they arrive (the run and replica
    streams follow it too): a tool call as `tool_call`, anything else as `step`."""
    experiment_id = context.store.get_sandbox(sandbox_id).metadata.get("experiment_id")
    if not experiment_id:
        return
    for event in map(normalise_event, events):
        kind = "tool_call" if event["event_type"] == "tool_call" else "step"
        data = {key: event.get(key) for key in _LIVE_KEYS}
        data |= {"sandbox_id": sandbox_id, "trace_id": event.get("trace_id") or trace_id}
        context.bus.publish(experiment_stream(str(experiment_id)), kind, data)


def filing_sandbox(context: Context, caller: Principal, sandbox_id: str | None) -> str | None:
    """The sandbox events are filed under: a sandbox token's own (it may name no other), or the one a
    key names in its project."""
    if caller.kind == "sandbox":
        if sandbox_id not in (None, caller.sandbox_id):
            raise Forbidden(f"this sandbox token belongs to sandbox {caller.sandbox_id}, not {sandbox_id}")
        return caller.sandbox_id
    if sandbox_id is not None:
        context.sandbox(caller.project_id, sandbox_id)
    return sandbox_id


@router.post(
    "",
    response_model=TracesAccepted,
    summary="Ingest trace events (agent mode: with or without a sandbox, grouped by trace id)",
    responses=error_responses(403, 404),
)
def ingest(body: TracesIngest, context: Context, caller: Authenticated) -> TracesAccepted:
    sandbox_id = filing_sandbox(context, caller, body.sandbox_id)
    trace_id = body.trace_id or f"tr_{secrets.token_hex(8)}"
    accepted = store_events(context, caller, sandbox_id, body.events, trace_id)
    index = trace_index(trace_id)
    return TracesAccepted(accepted=accepted, trace_ids=sorted({str(index(e).trace_id) for e in body.events}))
