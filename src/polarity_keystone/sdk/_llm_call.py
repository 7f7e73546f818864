"""One LLM call as a trace event: `llm_call` with the model, token usage, latency and requested tool calls.

The event keeps to the trace shape the engine scores (`event_type`, `tool`, `phase: complete`, `status`,
`duration_ms`) and carries its usage in a `cost` block (`model`, `input_tokens` — all prompt tokens,
cached ones included —, `output_tokens`, and `cache_read_tokens`, `cache_write_tokens`,
`reasoning_tokens` when the provider reports them: the names the engine's usage reads), with the
tool calls the model asked for (`{"id", "name"}`) in `metadata.tool_calls`. Recording never breaks the
caller: a failure to read a response or to report is logged and dropped.
"""

from __future__ import annotations

import contextvars
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ._models import TraceEvent
from ._otel import end_span, start_span
from ._tracing import active_tracer, current_span

log = logging.getLogger("polarity_keystone.sdk")

_recording: contextvars.ContextVar[bool] = contextvars.ContextVar("keystone_llm_call", default=False)


def recording() -> bool:
    """Whether an instrumented call is already under way in this context: an inner instrumented layer (a
    client wrapped by `wrap` whose class `auto_instrument` patched too) then records nothing."""
    return _recording.get()


def mark_recording() -> contextvars.Token[bool]:
    return _recording.set(True)


def unmark_recording(token: contextvars.Token[bool]) -> None:
    _recording.reset(token)


@dataclass
class LlmCall:
    provider: str
    operation: str
    """The instrumented method, e.g. `openai.chat.completions.create`: the event's `tool`."""
    model: str | None = None
    stream: bool = False
    usage: dict[str, int] = field(default_factory=dict)
    provider_usage: dict[str, int] = field(default_factory=dict)
    """Counts as the provider names them, where `usage` is derived from several (Anthropic's input)."""
    tool_calls: dict[int | str, dict[str, str]] = field(default_factory=dict)
    """Requested tool calls by position (streams send a call's id and name once, then its index)."""
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_ns: int = field(default_factory=time.time_ns)
    _clock: float = field(default_factory=time.perf_counter)
    _finished: bool = False

    def set_usage(self, name: str, value: Any) -> None:
        if isinstance(value, int) and not isinstance(value, bool):
            self.usage[name] = value

    def add_tool_call(self, key: int | str, call_id: Any, name: Any) -> None:
        entry = self.tool_calls.setdefault(key, {})
        if call_id:
            entry["id"] = str(call_id)
        if name:
            entry["name"] = str(name)

    def event(self, error: BaseException | None) -> TraceEvent:
        parent = current_span()
        return TraceEvent.model_validate(
            {
                "ts": self.started,
                "event_type": "llm_call",
                "tool": self.operation,
                "phase": "complete",
                "duration_ms": round((time.perf_counter() - self._clock) * 1000, 3),
                "status": "error" if error else "ok",
                "error_type": type(error).__name__ if error else None,
                "span_id": uuid.uuid4().hex[:16],
                "parent_span_id": parent.span_id if parent else None,
                "root_span_id": parent.root.span_id if parent else None,
                "output": str(error)[:2048] if error else None,
                "metadata": {
                    "provider": self.provider,
                    "model": self.model,
                    "stream": self.stream,
                    "tool_calls": [call for call in self.tool_calls.values() if call],
                },
                "cost": {"model": self.model, **self.usage},
            }
        )

    def finish(self, error: BaseException | None = None) -> None:
        """Report the call once (a stream may end by exhaustion and then be closed)."""
        if self._finished:
            return
        self._finished = True
        self._bridge(error)
        try:
            tracer = active_tracer()
            if tracer is not None:
                tracer.report([self.event(error)])
        except Exception:  # reporting must never reach the caller
            log.warning("could not record an LLM call of %s", self.operation, exc_info=True)

    def _bridge(self, error: BaseException | None) -> None:
        """The call as an OTel span with the GenAI semantic-convention attributes, when bridging."""
        parent = current_span()
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": self.provider,
            "gen_ai.provider.name": self.provider,
            "gen_ai.request.model": self.model,
        }
        span = start_span(
            f"chat {self.model or ''}".strip(), attributes, parent.otel if parent else None, self.started_ns
        )
        end_span(
            span,
            {
                "gen_ai.response.model": self.model,
                "gen_ai.usage.input_tokens": self.usage.get("input_tokens"),
                "gen_ai.usage.output_tokens": self.usage.get("output_tokens"),
                "gen_ai.usage.cache_read_input_tokens": self.usage.get("cache_read_tokens"),
                "gen_ai.usage.cache_creation_input_tokens": self.usage.get("cache_write_tokens"),
                "gen_ai.usage.reasoning_tokens": self.usage.get("reasoning_tokens"),
                "keystone.tool_calls": [call.get("name", "") for call in self.tool_calls.values() if call]
                or None,
            },
            error,
        )


def attribute(value: Any, *path: str) -> Any:
    """`value.a.b...`, None where any step is missing (responses and chunks leave most fields unset)."""
    for name in path:
        value = value.get(name) if isinstance(value, dict) else getattr(value, name, None)
        if value is None:
            return None
    return value
