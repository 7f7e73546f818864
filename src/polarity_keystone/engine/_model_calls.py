"""The model calls a replica's `type: llm` services answered: its recordings, and what they add to the
agent's trace for scoring.

One rule decides which report of the model calls counts. The proxy saw every call that went through
it, so when it answered any, its calls are the replica's `llm_call` events (tokens and cost come from
them) and the agent's own reports of LLM calls are left out, as they would count the same calls twice.
Tool calls are what the agent reports running; an agent that reports none is judged by the tool calls
its model asked for through the proxy (so `forbidden.tool_calls` sees an uninstrumented agent too).
"""

from __future__ import annotations

from typing import Any

from ..sandbox import Sandbox
from ..scoring import AgentEvent, is_tool_call, normalise_event
from ..services import kind_of, llm
from ..spec import Service

Recordings = dict[str, list[llm.Exchange]]
"""Per `type: llm` service name, the exchanges it logged, in call order."""


def model_services(services: dict[str, Service]) -> list[Service]:
    return [service for service in services.values() if kind_of(service).name == llm.LlmProxy.name]


def read_recordings(sandbox: Sandbox, services: dict[str, Service]) -> Recordings:
    return {service.name: llm.logged_exchanges(sandbox, service) for service in model_services(services)}


def put_recordings(sandbox: Sandbox, services: dict[str, Service], recordings: Recordings) -> None:
    """Give each replaying service the calls it answers (before the agent starts)."""
    for service in model_services(services):
        llm.put_recording(sandbox, service, recordings.get(service.name, []))


def with_model_calls(events: list[AgentEvent], recordings: Recordings) -> list[AgentEvent]:
    """The agent's events with the proxy's calls counted by the module's rule."""
    calls = [
        _llm_event(name, exchange)
        for name, exchanges in recordings.items()
        for exchange in exchanges
        if exchange.get("method") == "POST"
        and exchange.get("model")  # not a model listing, not refused unread
    ]
    if not calls:
        return events
    kept = [event for event in events if event["event_type"] != "llm_call"]
    if not any(is_tool_call(event) for event in kept):
        kept += [
            _requested_tool_event(name, exchange, index, call)
            for name, exchanges in recordings.items()
            for exchange in exchanges
            for index, call in enumerate(exchange.get("tool_calls") or [])
        ]
    return [*kept, *calls]


def divergence_events(recordings: Recordings) -> list[dict[str, Any]]:
    """One `llm_divergence` audit event per call of a replay whose request differed from the recording."""
    return [
        {"type": "llm_divergence", "service": name, **exchange["divergence"]}
        for name, exchanges in recordings.items()
        for exchange in exchanges
        if isinstance(exchange.get("divergence"), dict)
    ]


def _llm_event(service: str, exchange: llm.Exchange) -> AgentEvent:
    usage = exchange.get("usage") if isinstance(exchange.get("usage"), dict) else {}
    status = exchange.get("status")
    failed = not isinstance(status, int) or status >= 400
    return normalise_event(
        {
            "event_type": "llm_call",
            "event_id": f"{service}:{exchange.get('call')}",
            "ts": exchange.get("ts"),
            "model": exchange.get("model"),
            "usage": usage,
            "duration_ms": exchange.get("latency_ms"),
            **({"status": "error", "error": f"HTTP {status}"} if failed else {}),
            "metadata": {
                "source": "llm_proxy",
                "service": service,
                "provider": exchange.get("provider"),
                "tools_requested": [call.get("name") for call in exchange.get("tool_calls") or []],
            },
        }
    )


def _requested_tool_event(
    service: str, exchange: llm.Exchange, index: int, call: dict[str, Any]
) -> AgentEvent:
    return normalise_event(
        {
            "event_type": "tool_call",
            "event_id": f"{service}:{exchange.get('call')}:tool:{index}",
            "ts": exchange.get("ts"),
            "tool": call.get("name"),
            "input": call.get("arguments"),
            "metadata": {"source": "llm_proxy", "requested_by_model": True},
        }
    )
