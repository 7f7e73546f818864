"""The sandboxes list (live ones, then the most recently ended) and one sandbox: its facts, the lifecycle
events of its stream (boot steps, commands, files, state changes) and the trace events its agent reported,
newest last. While the sandbox is alive its page polls the events fragment every two seconds; the fragment
of an ended sandbox no longer asks to be polled, so the polling stops by itself."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ...store import EventRecord, SandboxRecord, Store
from .._deps import Context, LiveKey
from .._events import sandbox_stream
from .._sandbox_manager import FINAL_STATES
from ._render import page

router = APIRouter(include_in_schema=False)

RECENTLY_ENDED = 20
"""How many ended sandboxes the list shows below the live ones, newest first."""
SHOWN_EVENTS = 500
"""Lifecycle events on one page; a sandbox that has more shows its first ones and says so."""


@dataclass(frozen=True)
class SandboxEvents:
    """What the events fragment shows of one sandbox."""

    sandbox: SandboxRecord
    lifecycle: list[EventRecord]
    more_lifecycle: bool
    trace: list[dict[str, Any]]

    @property
    def alive(self) -> bool:
        return self.sandbox.state not in FINAL_STATES


def event_text(data: dict[str, Any]) -> str:
    """An event's data as compact JSON, for a table cell (escaped by the template like any text)."""
    return json.dumps(data, sort_keys=True, default=str, separators=(", ", ": "))


def _events(store: Store, sandbox: SandboxRecord) -> SandboxEvents:
    lifecycle = store.events_after(sandbox_stream(sandbox.id), 0, limit=SHOWN_EVENTS + 1)
    return SandboxEvents(
        sandbox=sandbox,
        lifecycle=lifecycle[:SHOWN_EVENTS],
        more_lifecycle=len(lifecycle) > SHOWN_EVENTS,
        trace=store.trace_events(sandbox.id),
    )


def _key_names(store: Store, project_id: str) -> dict[str, str]:
    return {key.id: key.name for key in store.list_api_keys(project_id)}


@router.get("/ui/sandboxes")
def sandboxes(request: Request, context: Context, caller: LiveKey) -> Response:
    every = context.store.list_sandboxes(project_id=caller.project_id, include_destroyed=True)
    live = [sandbox for sandbox in every if sandbox.state not in FINAL_STATES]
    ended = sorted(
        (sandbox for sandbox in every if sandbox.state in FINAL_STATES),
        key=lambda sandbox: (sandbox.created_at, sandbox.id),
        reverse=True,
    )[:RECENTLY_ENDED]
    return page(
        request,
        "sandboxes.html",
        live=live,
        ended=ended,
        recently_ended=RECENTLY_ENDED,
        owners=_key_names(context.store, caller.project_id),
    )


@router.get("/ui/sandboxes/{sandbox_id}")
def sandbox(sandbox_id: str, request: Request, context: Context, caller: LiveKey) -> Response:
    record = context.sandbox(caller.project_id, sandbox_id)
    return page(
        request,
        "sandbox.html",
        sandbox=record,
        owner=_key_names(context.store, caller.project_id).get(record.owner, record.owner),
        events=_events(context.store, record),
        event_text=event_text,
    )


@router.get("/ui/sandboxes/{sandbox_id}/events")
def sandbox_events(sandbox_id: str, request: Request, context: Context, caller: LiveKey) -> Response:
    """The events section alone: what the sandbox page polls while the sandbox is alive."""
    record = context.sandbox(caller.project_id, sandbox_id)
    return page(request, "_sandbox_events.html", events=_events(context.store, record), event_text=event_text)
