"""One shape for what agents report about themselves, whatever shape they sent it in.

Agents report through the trace file, `POST /v1/sandboxes/{id}/trace` and `POST /v1/traces`, in the
shapes their tooling writes:

- the SDK's trace event: `{"ts", "event_type": "tool_call", "tool", "phase", "status", "duration_ms", ...}`;
- the audit log's: `{"type": "tool_call", "tool", "ok": true}` or `{"type": "tool_call", "error": "..."}`;
- a model's tool-use block: `{"type": "tool_use", "id": "toolu_1", "name": "refund", "input": {...}}`;
- token usage in a `cost` or `usage` block (`input_tokens`, `output_tokens`, cache and reasoning tokens,
  `model`), or as OpenTelemetry GenAI attributes (`gen_ai.usage.input_tokens`, `gen_ai.request.model`,
  `gen_ai.tool.name`, ...) at the top level or under `attributes` / `metadata`.

`normalise_event` turns each into one `AgentEvent` dict with the keys every scoring input reads:
`event_type` (`tool_call`, `llm_call`, or what the agent named), `tool`, `phase`, `status` (`ok` or
`error`), `error_type`, `duration_ms`, `ts`, `model`, the token counts reported (`input_tokens`,
`output_tokens`, `cache_read_tokens`, `cache_write_tokens`, `reasoning_tokens`), `input`, span ids,
`metadata`, and an `event_id` for deduplication. `event_problem` bounds what a client may send (size,
nesting, keys).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

AgentEvent = dict[str, Any]

MAX_EVENT_BYTES = 64 * 1024
"""The largest event, as compact JSON, a client may send."""
MAX_EVENT_DEPTH = 8
"""How deeply objects and lists may nest inside an event."""
MAX_EVENT_KEYS = 256
"""How many keys an event may hold, counted over every object inside it."""
MAX_EVENTS_PER_SANDBOX = 10_000
"""How many events one sandbox's trace may hold; further ones are refused."""

_TOKEN_ALIASES = {
    "input_tokens": (
        "input_tokens",
        "prompt_tokens",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
    ),
    "output_tokens": (
        "output_tokens",
        "completion_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
    ),
    "cache_read_tokens": (
        "cache_read_tokens",
        "cache_read_input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
        "gen_ai.usage.cache_read_tokens",
    ),
    "cache_write_tokens": (
        "cache_write_tokens",
        "cache_creation_input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
        "gen_ai.usage.cache_write_tokens",
    ),
    "reasoning_tokens": ("reasoning_tokens", "gen_ai.usage.reasoning_tokens"),
}
_MODEL_KEYS = ("model", "gen_ai.response.model", "gen_ai.request.model")
_TOOL_KEYS = ("tool", "name", "tool_name", "gen_ai.tool.name")
_TOOL_TYPES = {"tool_call", "tool_use", "execute_tool"}
_LLM_TYPES = {"llm_call", "chat", "text_completion", "generate_content", "completion"}
_SPAN_KEYS = ("span_id", "parent_span_id", "root_span_id", "trace_id")


def event_problem(raw: Any) -> str | None:
    """Why a client's event is refused (too large, too deep, too many keys), or None."""
    if not isinstance(raw, dict):
        return "an event is a JSON object"
    size = len(json.dumps(raw, separators=(",", ":"), default=str).encode())
    if size > MAX_EVENT_BYTES:
        return f"an event is {size} bytes, over the limit of {MAX_EVENT_BYTES}"
    depth, keys = _shape(raw)
    if depth > MAX_EVENT_DEPTH:
        return f"an event nests {depth} levels deep, over the limit of {MAX_EVENT_DEPTH}"
    if keys > MAX_EVENT_KEYS:
        return f"an event holds {keys} keys, over the limit of {MAX_EVENT_KEYS}"
    return None


def _shape(value: Any) -> tuple[int, int]:
    """(nesting depth, keys over every object) of a JSON value."""
    if isinstance(value, dict):
        inner = [_shape(item) for item in value.values()]
        return 1 + max((d for d, _ in inner), default=0), len(value) + sum(k for _, k in inner)
    if isinstance(value, list):
        inner = [_shape(item) for item in value]
        return 1 + max((d for d, _ in inner), default=0), sum(k for _, k in inner)
    return 0, 0


def normalise_event(raw: dict[str, Any]) -> AgentEvent:
    attributes = _attributes(raw)
    tokens = _tokens(raw, attributes)
    event_type = _event_type(raw, attributes, tokens)
    phase = str(raw.get("phase") or "complete")
    status, error_type = _outcome(raw, attributes)
    event: AgentEvent = {
        "event_type": event_type,
        "tool": _first_text(raw, attributes, keys=_TOOL_KEYS) or "",
        "phase": phase,
        "status": status,
        "error_type": error_type,
        "duration_ms": _number(raw.get("duration_ms")),
        "ts": str(raw["ts"]) if raw.get("ts") is not None else None,
        "model": _first_text(*_usage_blocks(raw, attributes), keys=_MODEL_KEYS),
        **tokens,
        "input": raw.get("input"),
        **{key: str(raw[key]) for key in _SPAN_KEYS if raw.get(key) is not None},
        "metadata": attributes,
    }
    event["event_id"] = _event_id(raw, phase)
    return event


def _attributes(raw: dict[str, Any]) -> dict[str, Any]:
    """The event's free-form attributes: its `metadata` and `attributes`, and its dotted top-level keys."""
    found: dict[str, Any] = {}
    for key in ("metadata", "attributes"):
        if isinstance(raw.get(key), dict):
            found.update(raw[key])
    found.update({key: value for key, value in raw.items() if "." in key})
    return found


def _usage_blocks(raw: dict[str, Any], attributes: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = [raw[key] for key in ("cost", "usage") if isinstance(raw.get(key), dict)]
    return [*blocks, raw, attributes]


def _tokens(raw: dict[str, Any], attributes: dict[str, Any]) -> dict[str, int]:
    tokens: dict[str, int] = {}
    for kind, aliases in _TOKEN_ALIASES.items():
        for block in _usage_blocks(raw, attributes):
            value = next((block[alias] for alias in aliases if _count(block.get(alias)) is not None), None)
            if value is not None:
                tokens[kind] = int(value)
                break
    return tokens


def _event_type(raw: dict[str, Any], attributes: dict[str, Any], tokens: dict[str, int]) -> str:
    named = raw.get("event_type") or raw.get("type") or attributes.get("gen_ai.operation.name")
    if named in _TOOL_TYPES or (named is None and attributes.get("gen_ai.tool.name")):
        return "tool_call"
    if named in _LLM_TYPES or (named is None and (tokens or _first_text(raw, attributes, keys=_MODEL_KEYS))):
        return "llm_call"
    if named:
        return str(named)
    return "tool_call" if _first_text(raw, attributes, keys=_TOOL_KEYS) else "event"


def _outcome(raw: dict[str, Any], attributes: dict[str, Any]) -> tuple[str, str | None]:
    error = raw.get("error") or attributes.get("error.type")
    failed = raw.get("status") == "error" or raw.get("ok") is False or raw.get("is_error") is True
    if error or failed:
        error_type = raw.get("error_type") or (error if isinstance(error, str) else None)
        return "error", str(error_type) if error_type else None
    return "ok", None


def _event_id(raw: dict[str, Any], phase: str) -> str | None:
    """The id the agent gave the event; a span's start and end share a span id, so its phase joins it."""
    for key in ("event_id", "id"):
        if raw.get(key) is not None:
            return str(raw[key])
    if raw.get("span_id") is not None:
        return f"{raw['span_id']}:{phase}"
    return None


def _first_text(*blocks: dict[str, Any], keys: Iterable[str]) -> str | None:
    for block in blocks:
        for key in keys:
            if isinstance(block.get(key), str) and block[key]:
                return str(block[key])
    return None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def is_tool_call(event: AgentEvent) -> bool:
    """A finished tool call: a span reports a start and an end; the end is the call."""
    return bool(event["event_type"] == "tool_call" and event["phase"] != "start")


def merge_events(*sources: list[AgentEvent]) -> list[AgentEvent]:
    """The events of every source, in order, each once: a later event is dropped when it has the id of
    one kept, or (without an id) the same content and timestamp. Events with neither id nor timestamp
    are all kept: two identical calls cannot be told from one sent twice."""
    seen: set[str] = set()
    merged = []
    for event in (event for source in sources for event in source):
        key = _dedup_key(event)
        if key is not None and key in seen:
            continue
        if key is not None:
            seen.add(key)
        merged.append(event)
    return merged


def _dedup_key(event: AgentEvent) -> str | None:
    if event.get("event_id") is not None:
        return f"id:{event['event_id']}"
    if event.get("ts") is None:
        return None
    content = json.dumps(event, sort_keys=True, default=str)
    return "content:" + hashlib.sha256(content.encode()).hexdigest()
