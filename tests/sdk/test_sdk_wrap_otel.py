"""The OpenTelemetry bridge: with `init_tracing(otel_tracer=...)`, `traced` spans and recorded LLM calls
are OTel spans too (the real `opentelemetry-sdk`, an in-memory exporter), with GenAI attributes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from polarity_keystone import flush_otel, register_otel_flush
from polarity_keystone.sdk import Keystone, _otel, traced
from polarity_keystone.sdk._otel import set_otel_tracer
from polarity_keystone.sdk._tracing import reset_tracing
from tests.fakes.llm_providers import (
    BAD_MODEL,
    CACHED_TOKENS,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    REASONING_TOKENS,
    TOOL,
    fake_providers,
)

MESSAGES: Any = [{"role": "user", "content": "Where is order A-17?"}]


@pytest.fixture
def exporter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    for name in ("KEYSTONE_API_KEY", "KEYSTONE_SANDBOX_ID", "POLARITY_SANDBOX_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KEYSTONE_TRACE_FILE", str(tmp_path / "trace.jsonl"))
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    with Keystone(base_url="http://127.0.0.1:9") as ks:
        ks.init_tracing(otel_tracer=provider.get_tracer("agent"))
        yield spans
    set_otel_tracer(None)
    reset_tracing()
    provider.shutdown()


def test_llm_calls_and_traced_spans_become_otel_spans_with_gen_ai_attributes(
    exporter: InMemorySpanExporter,
) -> None:
    with fake_providers() as providers, Keystone(base_url="http://127.0.0.1:9") as ks:
        client = ks.wrap(
            openai.OpenAI(api_key="sk-fake", base_url=providers.openai_url, max_retries=0),
            tracing=False,
            auto_instrument=False,
        )
        with traced(name="plan"):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model=BAD_MODEL, messages=MESSAGES)
        client.close()

    chat, plan, failed = exporter.get_finished_spans()
    assert (chat.name, plan.name) == ("chat gpt-4o-mini", "plan")
    assert chat.parent is not None and chat.parent.span_id == plan.context.span_id
    assert dict(chat.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": INPUT_TOKENS,
        "gen_ai.usage.output_tokens": OUTPUT_TOKENS,
        "gen_ai.usage.cache_read_input_tokens": CACHED_TOKENS,
        "gen_ai.usage.reasoning_tokens": REASONING_TOKENS,
        "keystone.tool_calls": (TOOL,),
    }
    assert dict(plan.attributes or {}) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "plan",
    }
    assert failed.status.is_ok is False
    assert (failed.attributes or {})["error.type"] == "BadRequestError"


def test_flush_otel_calls_every_registered_flush_even_after_one_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_otel, "_flushes", [])  # none registered by other tests, none left behind
    calls: list[str] = []

    def broken() -> None:
        raise RuntimeError("exporter gone")

    register_otel_flush(broken)
    register_otel_flush(lambda: calls.append("flushed"))
    flush_otel()
    assert calls == ["flushed"]
