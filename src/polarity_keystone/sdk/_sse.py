"""Server-Sent Events: parsing the `text/event-stream` format (WHATWG HTML, "event stream interpretation").

Only what the format defines: `id`, `event`, `data` (several lines joined by newlines), `retry`, and
comment lines starting with `:` (keep-alives). An event is dispatched at a blank line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True)
class RawEvent:
    id: str | None
    event: str
    data: str
    retry_ms: int | None


class StreamEvent(BaseModel):
    """One event of a Keystone stream: `event` is its type (`progress`, `replica_done`, `done`, ...)."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    """The id a reconnecting client sends back as Last-Event-ID."""
    event: str = "message"
    data: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_raw(cls, raw: RawEvent) -> StreamEvent:
        try:
            data = json.loads(raw.data) if raw.data else {}
        except ValueError:
            data = {"text": raw.data}
        if not isinstance(data, dict):
            data = {"value": data}
        # Streams that send no `event:` line name the type inside the data (`{"event_type": ...}`).
        event = raw.event if raw.event != "message" else str(data.get("event_type", "message"))
        return cls(id=raw.id, event=event, data=data)


def parse_events(lines: Iterable[str]) -> Iterator[RawEvent]:
    """Events from the stream's lines (without their line terminators)."""
    event_id: str | None = None
    event_type = ""
    data: list[str] = []
    retry_ms: int | None = None
    for line in lines:
        if not line:
            if data or event_type:
                yield RawEvent(event_id, event_type or "message", "\n".join(data), retry_ms)
            event_type, data, retry_ms = "", [], None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            event_type = value
        elif field == "id" and "\0" not in value:
            event_id = value  # the last event id persists until the server sends another one
        elif field == "retry" and value.isdigit():
            retry_ms = int(value)
