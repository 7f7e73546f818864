"""Which report of a replica's model calls counts: the proxy's calls replace the agent's own `llm_call`
reports (the same calls, counted once); the agent's tool calls count, and the tool calls its model asked
for through the proxy stand in only for an agent that reports none. A replay's divergences become
audit events."""

from __future__ import annotations

from typing import Any

from polarity_keystone.analysis import shipped_pricing
from polarity_keystone.engine._model_calls import divergence_events, with_model_calls
from polarity_keystone.engine._usage import run_cost
from polarity_keystone.scoring import normalise_event


def exchange(call: int, *, tools: tuple[str, ...] = (), status: int = 200, **extra: Any) -> dict[str, Any]:
    return {
        "call": call,
        "ts": 1_700_000_000.0 + call,
        "provider": "openai",
        "method": "POST",
        "status": status,
        "model": "gpt-4o-mini",
        "usage": {"input_tokens": 100, "output_tokens": 10, "cache_read_tokens": 0, "reasoning_tokens": 0},
        "tool_calls": [
            {"id": f"call_{call}_{i}", "name": name, "arguments": "{}"} for i, name in enumerate(tools)
        ],
        "latency_ms": 7,
        **extra,
    }


AGENT_LLM = normalise_event(
    {"event_type": "llm_call", "model": "gpt-4o-mini", "input_tokens": 100, "output_tokens": 10}
)
AGENT_TOOL = normalise_event(
    {"event_type": "tool_call", "tool": "lookup_order", "phase": "end", "status": "ok"}
)


def test_the_proxy_calls_replace_the_agents_own_llm_reports_so_tokens_count_once() -> None:
    recordings = {"llm": [exchange(0, tools=("lookup_order",)), exchange(1)]}
    events = with_model_calls([AGENT_LLM, AGENT_LLM, AGENT_TOOL], recordings)
    llm_calls = [event for event in events if event["event_type"] == "llm_call"]
    assert [event["event_id"] for event in llm_calls] == ["llm:0", "llm:1"]
    assert [event["tool"] for event in events if event["event_type"] == "tool_call"] == ["lookup_order"]
    cost = run_cost(events, shipped_pricing())
    assert cost is not None and (cost.llm_calls, cost.input_tokens, cost.output_tokens) == (2, 200, 20)
    assert cost.estimated_usd is not None and cost.estimated_usd > 0
    assert llm_calls[0]["metadata"]["tools_requested"] == ["lookup_order"]


def test_an_agent_that_reports_no_tool_calls_is_judged_by_what_its_model_asked_for() -> None:
    recordings = {"llm": [exchange(0, tools=("lookup_order", "drop_table")), exchange(1)]}
    events = with_model_calls([], recordings)
    tools = [event for event in events if event["event_type"] == "tool_call"]
    assert [event["tool"] for event in tools] == ["lookup_order", "drop_table"]
    assert all(event["metadata"]["requested_by_model"] for event in tools)


def test_without_proxy_calls_the_agents_events_stand_as_they_are() -> None:
    assert with_model_calls([AGENT_LLM, AGENT_TOOL], {"llm": []}) == [AGENT_LLM, AGENT_TOOL]


def test_a_model_listing_is_no_llm_call() -> None:
    listing = {"call": 0, "method": "GET", "path": "/v1/models", "status": 200, "model": None}
    events = with_model_calls([AGENT_TOOL], {"llm": [listing, exchange(1)]})
    assert [event["event_id"] for event in events if event["event_type"] == "llm_call"] == ["llm:1"]


def test_a_refused_call_is_an_error_event() -> None:
    (event,) = with_model_calls([AGENT_TOOL], {"llm": [exchange(0, status=429)]})[1:]
    assert (event["status"], event["error_type"]) == ("error", "HTTP 429")


def test_each_diverged_call_of_a_replay_is_one_audit_event() -> None:
    divergence = {"call": 1, "path": "messages[2].content", "expected": "42", "got": "43"}
    recordings = {"llm": [exchange(0, divergence=None), exchange(1, divergence=divergence)]}
    assert divergence_events(recordings) == [{"type": "llm_divergence", "service": "llm", **divergence}]
