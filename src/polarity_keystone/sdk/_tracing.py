"""`traced`: report an agent's tool calls to its sandbox's trace (the Keystone SDK's `@traced`).

Each span is reported when it ends as two `tool_call` events, `phase: start` and `phase: end`, sharing a
`span_id` (with `parent_span_id` / `root_span_id` for nested spans), the end one carrying the duration,
`status` ok|error and the error type. Input and output are short summaries (reprs cut at 2 KB). The
report is one request, sent when the span ends, from the thread that ran it.

Where the events go: the sandbox of `Keystone.init_tracing()`, else the one in KEYSTONE_SANDBOX_ID with
KEYSTONE_API_KEY / KEYSTONE_BASE_URL, else the trace file the engine reads (KEYSTONE_TRACE_FILE). Without
any of them, `traced` runs the code and reports nothing. Reporting never changes what the traced code
does: a failed report is logged and dropped.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast, overload

from . import _config
from ._errors import KeystoneError
from ._http import HttpClient
from ._models import TraceEvent
from ._otel import end_span, start_span
from ._retry import RetryPolicy
from ._sandboxes import SandboxService

log = logging.getLogger("polarity_keystone.sdk")

P = ParamSpec("P")
R = TypeVar("R")

SUMMARY_LIMIT = 2048


@dataclass
class Tracer:
    """Sends finished spans to one sandbox's trace."""

    sandboxes: SandboxService
    sandbox_id: str
    owned: HttpClient | None = None
    """The connection pool this tracer built for itself (from the environment), closed with it."""

    def close(self) -> None:
        if self.owned is not None:
            self.owned.close()

    def report(self, events: list[TraceEvent]) -> None:
        try:
            self.sandboxes.ingest_trace(self.sandbox_id, events)
        except KeystoneError as exc:
            log.warning("could not report %d trace event(s): %s", len(events), exc)


@dataclass
class TraceFile:
    """Appends events to the JSON-lines trace file the engine scores, one line per event."""

    path: str

    def close(self) -> None:
        pass

    def report(self, events: list[TraceEvent]) -> None:
        lines = "".join(
            json.dumps(event.model_dump(mode="json", exclude_none=True)) + "\n" for event in events
        )
        try:
            with open(self.path, "a", encoding="utf-8") as trace:
                trace.write(lines)
        except OSError as exc:
            log.warning("could not write %d trace event(s) to %s: %s", len(events), self.path, exc)


@dataclass
class _TracingState:
    tracer: Tracer | TraceFile | None = None
    settled: bool = False
    """Whether `tracer` was set or read from the environment; until then the first span reads it."""


_state = _TracingState()
_lock = threading.Lock()
_current: contextvars.ContextVar[Span | None] = contextvars.ContextVar("keystone_span", default=None)


def set_tracer(tracer: Tracer | TraceFile | None) -> None:
    with _lock:
        _replace(tracer)


def reset_tracing() -> None:
    """Forget the tracer, so the next span reads the environment again (e.g. after it changed)."""
    with _lock:
        _replace(None)
        _state.settled = False


def _replace(tracer: Tracer | TraceFile | None) -> None:
    previous = _state.tracer
    if previous is not None and previous is not tracer:
        previous.close()
    _state.tracer, _state.settled = tracer, True


def active_tracer() -> Tracer | TraceFile | None:
    """The configured tracer, or one built from the environment the first time it is needed."""
    with _lock:
        if not _state.settled:
            _replace(tracer_from_env())
        return _state.tracer


def current_span() -> Span | None:
    return _current.get()


def tracer_from_env(sandbox_id: str | None = None) -> Tracer | TraceFile | None:
    """The server's trace of `sandbox_id` (default KEYSTONE_SANDBOX_ID) when there is a key, else the
    trace file in KEYSTONE_TRACE_FILE, else None."""
    sandbox_id, key = sandbox_id or _config.sandbox_id(), _config.api_key()
    if not (sandbox_id and key):
        trace_file = os.environ.get("KEYSTONE_TRACE_FILE")
        return TraceFile(trace_file) if trace_file else None
    # Short timeout, one retry: an unreachable server must not stall the agent.
    http = HttpClient(
        base_url=_config.base_url(),
        api_key=key,
        timeout=10.0,
        retry=RetryPolicy(max_retries=1),
        transport=None,
    )
    return Tracer(SandboxService(http), sandbox_id, owned=http)


@dataclass
class Span:
    name: str
    input: str | None = None
    output: str | None = None
    span_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    parent: Span | None = None
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    _clock: float = field(default_factory=time.perf_counter)
    otel: Any = None
    """The OpenTelemetry span bridging this one (`init_tracing(otel_tracer=...)`), else None."""

    def set_input(self, value: Any) -> None:
        self.input = summarize(value)

    def set_output(self, value: Any) -> None:
        self.output = summarize(value)

    @property
    def root(self) -> Span:
        return self.parent.root if self.parent else self

    def events(self, error: BaseException | None) -> list[TraceEvent]:
        start = TraceEvent(
            ts=self.started,
            tool=self.name,
            phase="start",
            input=self.input,
            span_id=self.span_id,
            parent_span_id=self.parent.span_id if self.parent else None,
            root_span_id=self.root.span_id,
        )
        end = start.model_copy(
            update={
                "ts": datetime.now(UTC),
                "phase": "end",
                "input": None,
                "duration_ms": round((time.perf_counter() - self._clock) * 1000, 3),
                "status": "error" if error else "ok",
                "error_type": type(error).__name__ if error else None,
                "output": summarize(str(error)) if error else self.output,
            }
        )
        return [start, end]


class SpanScope:
    """What `traced(name=...)` returns: a context manager yielding the `Span`, and a decorator."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tokens: list[contextvars.Token[Span | None]] = []

    def __call__(self, function: Callable[P, R]) -> Callable[P, R]:
        return _wrap(function, self.name)

    def __enter__(self) -> Span:
        span = Span(self.name, parent=_current.get())
        attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": self.name}
        span.otel = start_span(self.name, attributes, span.parent.otel if span.parent else None)
        self._tokens.append(_current.set(span))
        return span

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        span = _current.get()
        _current.reset(self._tokens.pop())
        if span is not None:
            end_span(span.otel, {}, error)
        tracer = active_tracer()
        if span is not None and tracer is not None:
            tracer.report(span.events(error))

    def run(self, call: Callable[[], R]) -> R:
        if inspect.iscoroutinefunction(call):
            return cast(R, _wrap(call, self.name)())
        with self as span:
            result = call()
            span.set_output(result)
            return result


@overload
def traced(target: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def traced(target: str, call: Callable[[], R], /) -> R: ...


@overload
def traced(target: str | None = None, /, *, name: str | None = None) -> SpanScope: ...


def traced(
    target: str | Callable[..., Any] | None = None,
    call: Callable[[], Any] | None = None,
    /,
    *,
    name: str | None = None,
) -> Any:
    """Trace a function (`@traced`, `@traced(name=...)`), a block (`with traced(name=...) as span`) or one
    call (`traced("name", fn)`, awaitable when `fn` is async). Errors propagate; the span records them."""
    if callable(target):
        return _wrap(target, name or _function_name(target))
    scope = SpanScope(name or target or "span")
    return scope.run(call) if call is not None else scope


def _wrap(function: Callable[P, R], name: str) -> Callable[P, R]:
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
            with traced(name=name) as span:
                span.input = _call_summary(args, kwargs)
                result = await function(*args, **kwargs)
                span.set_output(result)
                return result

        return run_async  # type: ignore[return-value]

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with traced(name=name) as span:
            span.input = _call_summary(args, kwargs)
            result = function(*args, **kwargs)
            span.set_output(result)
            return result

    return run


def summarize(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


def _call_summary(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    return summarize(", ".join([*map(repr, args), *(f"{key}={value!r}" for key, value in kwargs.items())]))


def _function_name(function: Callable[..., Any]) -> str:
    return str(getattr(function, "__qualname__", None) or getattr(function, "__name__", "span"))
