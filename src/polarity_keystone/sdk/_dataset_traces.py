"""The records `ks.datasets.from_traces` makes of stored trace events.

A record is one LLM call or tool call that had an input: the event's `input` is the record's
`input`, its `output` the record's `expected` (what the agent answered then: a regression baseline
to score later runs against). A span reported as two events (`start` with the input, `end` with the
output, as `ks.traced` does) is one record: the output is joined to its input by the span's id in its
sandbox. An event without an input makes no record (a record's input may not be null); one that
never got its output keeps `expected` null. Each record's metadata says where it came from
(`trace_id`, `span_id`, `sandbox_id`, `event_type`, `tool`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

RECORDED_EVENT_TYPES = frozenset({"llm_call", "tool_call"})
_SOURCE_KEYS = ("trace_id", "span_id", "sandbox_id", "event_type", "tool")


def records_from_events(events: Iterable[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """At most `limit` records, in the order their inputs were reported. Once `limit` records are
    made, reading goes on only until each of their spans has its output."""
    records: list[dict[str, Any]] = []
    open_spans: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        if len(records) >= limit and not open_spans:
            break
        if event.get("event_type", "tool_call") not in RECORDED_EVENT_TYPES:
            continue
        key = (str(event.get("sandbox_id")), str(event.get("span_id")))
        if event.get("input") is None:
            record = open_spans.pop(key, None) if event.get("output") is not None else None
            if record is not None:
                record["expected"] = event["output"]
        elif len(records) < limit:
            record = {
                "input": event["input"],
                "expected": event.get("output"),
                "metadata": {name: event[name] for name in _SOURCE_KEYS if event.get(name) is not None},
            }
            records.append(record)
            if event.get("span_id") and event.get("output") is None:
                open_spans[key] = record
    return records
