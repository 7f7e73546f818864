"""`ks.datasets.from_traces` against a real server (both stores): stored trace events become a dataset's
records (an LLM or tool call's input its input, its output the expected answer; a span's start and end
events one record), filtered as `ks.export.traces` filters, bounded by `limit`; another project's events
are never read, and a refused record leaves no dataset behind."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from polarity_keystone import APIStatusError
from polarity_keystone.server import create_api_key
from polarity_keystone.store import ProjectRecord, SandboxRecord, TraceEventIndex
from tests.sdk.sdk_servers import KeystoneServer

EVENTS: list[dict[str, Any]] = [
    {"event_type": "llm_call", "tool": "openai.create", "input": "2+2?", "output": "4"},
    {
        "event_type": "tool_call",
        "tool": "search",
        "phase": "start",
        "span_id": "s1",
        "input": "refund policy",
    },
    {"event_type": "log", "tool": "print", "input": "noise", "output": "noise"},
    {"event_type": "tool_call", "tool": "search", "phase": "end", "span_id": "s1", "output": "30 days"},
    {"event_type": "tool_call", "tool": "plan", "output": "no input: no record"},
    {"event_type": "llm_call", "tool": "anthropic.create", "input": {"q": "hi"}},
]


def _store_events(server: KeystoneServer, sandbox_id: str, project_id: str = "default") -> None:
    now = datetime.now(UTC)
    server.store.put_sandbox(
        SandboxRecord(sandbox_id, "spec", "destroyed", "key", now, None, {}, project_id=project_id)
    )
    server.store.add_trace_events(
        sandbox_id,
        "key",
        EVENTS,
        project_id=project_id,
        index=lambda e: TraceEventIndex(f"tr-{sandbox_id}", e["event_type"], e["tool"]),
    )


def test_each_call_with_an_input_becomes_a_record(server: KeystoneServer) -> None:
    _store_events(server, "sb-one")
    ks = server.client()
    dataset = ks.datasets.from_traces("from-prod", {"sandbox_id": "sb-one"}, description="calls")
    assert (dataset.version, dataset.record_count, dataset.description) == (2, 3, "calls")

    records = ks.datasets.get_records(dataset.id)
    assert [(r.input, r.expected) for r in records] == [
        ("2+2?", "4"),
        ("refund policy", "30 days"),
        ({"q": "hi"}, None),
    ]
    assert records[1].metadata == {
        "trace_id": "tr-sb-one",
        "span_id": "s1",
        "sandbox_id": "sb-one",
        "event_type": "tool_call",
        "tool": "search",
    }


def test_the_filter_and_the_limit_bound_the_records(server: KeystoneServer) -> None:
    _store_events(server, "sb-one")
    _store_events(server, "sb-two")
    ks = server.client()
    llm = ks.datasets.from_traces("llm", {"event_type": "llm_call"})
    assert [r.metadata["sandbox_id"] for r in ks.datasets.get_records(llm.id)] == [
        "sb-one",
        "sb-one",
        "sb-two",
        "sb-two",
    ]

    two = ks.datasets.from_traces("two", {"trace_id": "tr-sb-two"}, limit=2)
    assert [(r.input, r.expected) for r in ks.datasets.get_records(two.id)] == [
        ("2+2?", "4"),
        ("refund policy", "30 days"),
    ]
    with pytest.raises(TypeError):
        ks.datasets.from_traces("bad", {"colour": "red"})
    with pytest.raises(ValueError, match="limit"):
        ks.datasets.from_traces("bad", limit=0)
    assert ks.datasets.from_traces("none", {"tool": "nothing"}).record_count == 0


def test_another_projects_events_and_a_refused_record(server: KeystoneServer) -> None:
    server.store.add_project(ProjectRecord("proj_b", "b", datetime.now(UTC)))
    _store_events(server, "sb-b", project_id="proj_b")
    ks = server.client()
    assert ks.datasets.from_traces("mine").record_count == 0

    other = server.client(create_api_key(server.store, "b", "proj_b")[0])
    server.store.add_trace_events(
        "sb-b", "key", [{"event_type": "llm_call", "tool": "t", "input": "x" * 300_000}], project_id="proj_b"
    )
    with pytest.raises(APIStatusError) as refused:
        other.datasets.from_traces("too-big")
    assert refused.value.status_code == 413
    assert [d.name for d in other.datasets.list()] == []
