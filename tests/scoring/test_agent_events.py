"""Every shape an agent reports in becomes one event shape; bounds on what a client may send; merging
two sources keeps each event once."""

from __future__ import annotations

from typing import Any

from polarity_keystone.scoring import event_problem, is_tool_call, merge_events, normalise_event

TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


def test_the_sdk_shape_keeps_its_fields() -> None:
    event = normalise_event(
        {
            "ts": "2026-01-01T00:00:00Z",
            "event_type": "tool_call",
            "tool": "refund",
            "phase": "end",
            "status": "error",
            "error_type": "Timeout",
            "duration_ms": 12,
            "span_id": "s1",
            "input": {"order": 7},
        }
    )
    assert event["event_type"] == "tool_call"
    assert (event["tool"], event["phase"], event["status"], event["error_type"]) == (
        "refund",
        "end",
        "error",
        "Timeout",
    )
    assert event["duration_ms"] == 12.0
    assert event["input"] == {"order": 7}
    assert event["event_id"] == "s1:end"
    assert is_tool_call(event)


def test_the_audit_shape_with_ok_or_error() -> None:
    good = normalise_event({"type": "tool_call", "tool": "lookup", "ok": True})
    bad = normalise_event({"type": "tool_call", "tool": "lookup", "error": "NotFound"})
    assert (good["event_type"], good["status"]) == ("tool_call", "ok")
    assert (bad["status"], bad["error_type"]) == ("error", "NotFound")


def test_a_tool_use_block_is_a_tool_call_with_its_id() -> None:
    event = normalise_event({"type": "tool_use", "id": "toolu_1", "name": "deploy", "input": {"env": "prod"}})
    assert (event["event_type"], event["tool"], event["event_id"]) == ("tool_call", "deploy", "toolu_1")
    assert is_tool_call(event)


def test_a_span_start_is_not_a_call() -> None:
    assert not is_tool_call(normalise_event({"event_type": "tool_use", "tool": "x", "phase": "start"}))


def test_token_usage_from_a_cost_block() -> None:
    event = normalise_event(
        {
            "event_type": "llm_call",
            "tool": "anthropic.create",
            "cost": {
                "input_tokens": 120,
                "output_tokens": 30,
                "cache_read_input_tokens": 50,
                "cache_creation_input_tokens": 5,
                "reasoning_tokens": 9,
                "model": "claude-sonnet-4",
            },
        }
    )
    assert event["event_type"] == "llm_call"
    assert event["model"] == "claude-sonnet-4"
    assert {key: event[key] for key in TOKENS} == {
        "input_tokens": 120,
        "output_tokens": 30,
        "cache_read_tokens": 50,
        "cache_write_tokens": 5,
        "reasoning_tokens": 9,
    }
    assert not is_tool_call(event)


def test_gen_ai_attributes_make_an_llm_call_or_a_tool_call() -> None:
    llm = normalise_event(
        {
            "attributes": {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.output_tokens": 4,
            }
        }
    )
    assert (llm["event_type"], llm["model"]) == ("llm_call", "gpt-4o")
    assert {key: llm[key] for key in TOKENS if key in llm} == {"input_tokens": 10, "output_tokens": 4}
    tool = normalise_event({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"})
    assert (tool["event_type"], tool["tool"]) == ("tool_call", "search")
    assert tool["metadata"]["gen_ai.tool.name"] == "search"


def test_an_event_without_a_type_or_tool_is_no_call() -> None:
    assert normalise_event({"message": "thinking"})["event_type"] == "event"
    assert normalise_event({"tool": "lookup"})["event_type"] == "tool_call"


def test_bounds_on_size_depth_and_keys() -> None:
    assert event_problem({"tool": "x"}) is None
    assert "bytes" in str(event_problem({"input": "x" * 70_000}))
    deep: dict[str, Any] = {}
    inner = deep
    for _ in range(10):
        inner["a"] = {}
        inner = inner["a"]
    assert "nests" in str(event_problem(deep))
    assert "keys" in str(event_problem({"metadata": {f"k{i}": i for i in range(300)}}))
    assert event_problem(["not", "an", "object"]) == "an event is a JSON object"


def test_merge_drops_the_same_id_or_the_same_content_and_time() -> None:
    file_events = [
        normalise_event({"type": "tool_use", "id": "t1", "name": "a"}),
        normalise_event({"tool": "b", "ts": "2026-01-01T00:00:01Z"}),
        normalise_event({"tool": "c"}),
    ]
    api_events = [
        normalise_event({"type": "tool_use", "id": "t1", "name": "a"}),
        normalise_event({"tool": "b", "ts": "2026-01-01T00:00:01Z"}),
        normalise_event({"tool": "b", "ts": "2026-01-01T00:00:02Z"}),
        normalise_event({"tool": "c"}),
    ]
    merged = merge_events(file_events, api_events)
    assert [(e["tool"], e["ts"]) for e in merged] == [
        ("a", None),
        ("b", "2026-01-01T00:00:01Z"),
        ("c", None),
        ("b", "2026-01-01T00:00:02Z"),
        ("c", None),
    ]
