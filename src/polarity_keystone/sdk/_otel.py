"""The OpenTelemetry bridge: with `Keystone.init_tracing(otel_tracer=...)`, every `traced` span and every
recorded LLM call is also an OTel span carrying the GenAI semantic-convention attributes (`gen_ai.*`).

Only the tracer the caller passes is used, with `opentelemetry-api` for parenting (installed with the
tracer; the `otel` extra). A failing OTel call is logged and dropped, like a failed trace report.
`register_otel_flush` / `flush_otel` let an agent flush its exporter at exit (e.g. the provider's
`shutdown`), before a sandbox is torn down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("polarity_keystone.sdk")

_otel_tracer: list[Any] = []
_flushes: list[Callable[[], Any]] = []


def set_otel_tracer(tracer: Any) -> None:
    """Bridge to `tracer` (an `opentelemetry.trace.Tracer`); None stops bridging."""
    _otel_tracer[:] = [tracer] if tracer is not None else []


def start_span(name: str, attributes: dict[str, Any], parent: Any = None, start_ns: int | None = None) -> Any:
    """An OTel span, child of the OTel span `parent`; None when not bridging or the tracer fails."""
    if not _otel_tracer:
        return None
    try:
        from opentelemetry import trace

        context = trace.set_span_in_context(parent) if parent is not None else None
        return _otel_tracer[0].start_span(name, context=context, attributes=attributes, start_time=start_ns)
    except Exception:
        log.warning("could not start an OpenTelemetry span %s", name, exc_info=True)
        return None


def end_span(span: Any, attributes: dict[str, Any], error: BaseException | None) -> None:
    if span is None:
        return
    try:
        from opentelemetry.trace import Status, StatusCode

        span.set_attributes({key: value for key, value in attributes.items() if value is not None})
        if error is not None:
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, str(error)[:512]))
        span.end()
    except Exception:
        log.warning("could not end an OpenTelemetry span", exc_info=True)


def register_otel_flush(flush: Callable[[], Any]) -> None:
    """Have `flush_otel()` call `flush` (e.g. `lambda: tracer_provider.shutdown()`)."""
    _flushes.append(flush)


def flush_otel() -> None:
    """Call every registered flush, in order; one that fails is logged and the others still run."""
    for flush in list(_flushes):
        try:
            flush()
        except Exception:
            log.warning("an OpenTelemetry flush failed", exc_info=True)
