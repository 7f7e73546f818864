"""`ks.wrap`, `observe` and `auto_instrument` with the real `openai` and `anthropic` clients, against a
local server speaking their HTTP APIs: each call is one `llm_call` event in the trace file, with the model,
tokens and requested tool calls, for plain, streamed, sync and async calls alike (chat completions and the
Responses API, Anthropic's messages through `create` and through the `messages.stream()` manager)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from polarity_keystone import auto_instrument
from polarity_keystone.sdk import Keystone, traced, uninstrument
from polarity_keystone.sdk._tracing import reset_tracing
from tests.fakes.llm_providers import (
    ANTHROPIC_TOOL_USE_ID,
    BAD_MODEL,
    CACHE_CREATION_TOKENS,
    CACHED_TOKENS,
    INPUT_TOKENS,
    OPENAI_TOOL_CALL_ID,
    OUTPUT_TOKENS,
    REASONING_TOKENS,
    TOOL,
    FakeProviders,
)

MESSAGES = [{"role": "user", "content": "Where is order A-17?"}]
TOOLS = [{"type": "function", "function": {"name": TOOL, "parameters": {"type": "object"}}}]
ANTHROPIC_TOOLS = [{"name": TOOL, "input_schema": {"type": "object"}}]


@pytest.fixture
def ks() -> Iterator[Keystone]:
    with Keystone(base_url="http://127.0.0.1:9") as client:
        yield client


_sync_clients: list[Any] = []
"""The sync clients a test made, closed after it (an async one is closed by the loop that used it)."""


@pytest.fixture(autouse=True)
def close_clients() -> Iterator[None]:
    yield
    while _sync_clients:
        _sync_clients.pop().close()


def openai_client(providers: FakeProviders, *, is_async: bool = False) -> Any:
    if is_async:
        return openai.AsyncOpenAI(api_key="sk-fake", base_url=providers.openai_url, max_retries=0)
    _sync_clients.append(openai.OpenAI(api_key="sk-fake", base_url=providers.openai_url, max_retries=0))
    return _sync_clients[-1]


def anthropic_client(providers: FakeProviders, *, is_async: bool = False) -> Any:
    if is_async:
        return anthropic.AsyncAnthropic(
            api_key="sk-ant-fake", base_url=providers.anthropic_url, max_retries=0
        )
    _sync_clients.append(
        anthropic.Anthropic(api_key="sk-ant-fake", base_url=providers.anthropic_url, max_retries=0)
    )
    return _sync_clients[-1]


def call_openai(client: Any, *, stream: bool, model: str = "gpt-4o-mini") -> Any:
    extra = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
    return client.chat.completions.create(model=model, messages=MESSAGES, tools=TOOLS, **extra)


def call_openai_responses(client: Any, *, stream: bool, model: str = "gpt-4o-mini") -> Any:
    extra = {"stream": True} if stream else {}
    tools = [{"type": "function", "name": TOOL, "parameters": {"type": "object"}}]
    return client.responses.create(model=model, input=MESSAGES[0]["content"], tools=tools, **extra)


def call_anthropic(client: Any, *, stream: bool, model: str = "claude-sonnet-4-5") -> Any:
    extra = {"stream": True} if stream else {}
    return client.messages.create(
        model=model, max_tokens=256, messages=MESSAGES, tools=ANTHROPIC_TOOLS, **extra
    )


def consume(client: Any, result: Any, *, stream: bool, is_async: bool) -> Any:
    """What the caller gets: the response, or the items of the stream, iterated as a caller would."""

    async def drain_async() -> Any:
        async with client:
            value = await result
            return [item async for item in value] if stream else value

    if is_async:
        return asyncio.run(drain_async())
    return list(result) if stream else result


OPENAI_COST = {
    "model": "gpt-4o-mini",
    "input_tokens": INPUT_TOKENS,
    "output_tokens": OUTPUT_TOKENS,
    "cache_read_tokens": CACHED_TOKENS,
    "reasoning_tokens": REASONING_TOKENS,
}
EXPECTED = {
    "openai": {
        "provider": "openai",
        "tool": "openai.chat.completions.create",
        "model": "gpt-4o-mini",
        "tool_call": {"id": OPENAI_TOOL_CALL_ID, "name": TOOL},
        "cost": OPENAI_COST,
    },
    "openai-responses": {
        "provider": "openai",
        "tool": "openai.responses.create",
        "model": "gpt-4o-mini",
        "tool_call": {"id": OPENAI_TOOL_CALL_ID, "name": TOOL},
        "cost": OPENAI_COST,
    },
    "anthropic": {
        "provider": "anthropic",
        "tool": "anthropic.messages.create",
        "model": "claude-sonnet-4-5",
        "tool_call": {"id": ANTHROPIC_TOOL_USE_ID, "name": TOOL},
        "cost": {
            "model": "claude-sonnet-4-5",
            # Anthropic counts cache reads and writes apart from its input_tokens; the event adds them up.
            "input_tokens": INPUT_TOKENS + CACHED_TOKENS + CACHE_CREATION_TOKENS,
            "output_tokens": OUTPUT_TOKENS,
            "cache_read_tokens": CACHED_TOKENS,
            "cache_write_tokens": CACHE_CREATION_TOKENS,
        },
    },
}
CLIENTS = {
    "openai": (openai_client, call_openai),
    "openai-responses": (openai_client, call_openai_responses),
    "anthropic": (anthropic_client, call_anthropic),
}
"""Each API `wrap` covers: how to make a client of its provider, and how to call it."""
STREAM_TYPES: dict[str, type[Any]] = {
    "openai": openai.Stream,
    "openai-responses": openai.Stream,
    "anthropic": anthropic.Stream,
}
REQUESTED_TOOL: dict[str, Callable[[Any], str]] = {
    "openai": lambda completion: completion.choices[0].message.tool_calls[0].function.name,
    "openai-responses": lambda response: response.output[1].name,
    "anthropic": lambda message: message.content[1].name,
}
"""The name of the tool a whole answer asks for, as the caller reads it."""


def patched() -> list[str]:
    """What auto_instrument patches here: litellm only once imported (tests/sdk/test_sdk_frameworks.py)."""
    return ["anthropic", *(["litellm"] if "litellm" in sys.modules else []), "openai"]


@pytest.mark.parametrize("api", list(CLIENTS))
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_each_call_records_model_tokens_latency_and_tool_calls(
    providers: FakeProviders, trace: Any, ks: Keystone, api: str, stream: bool, is_async: bool
) -> None:
    make, call = CLIENTS[api]
    client = ks.wrap(make(providers, is_async=is_async), auto_instrument=False)
    assert trace() == []

    outcome = consume(client, call(client, stream=stream), stream=stream, is_async=is_async)

    if stream:
        assert len(outcome) >= 4  # the items still stream through, one by one
    else:
        assert REQUESTED_TOOL[api](outcome) == TOOL
    expected = EXPECTED[api]
    [event] = trace()
    assert event["tool"] == expected["tool"]
    assert event["phase"] == "complete" and event["status"] == "ok"
    assert event["duration_ms"] > 0
    assert event["cost"] == expected["cost"]
    assert event["metadata"] == {
        "provider": expected["provider"],
        "model": expected["model"],
        "stream": stream,
        "tool_calls": [expected["tool_call"]],
    }


def wrapped_sync_client(api: str, providers: FakeProviders, ks: Keystone) -> tuple[Any, Any]:
    """A wrapped sync client for `api` and the function calling it."""
    make, call = CLIENTS[api]
    return ks.wrap(make(providers), auto_instrument=False), call


@pytest.mark.parametrize("api", list(CLIENTS))
def test_a_stream_stays_the_providers_stream_and_records_when_closed_early(
    providers: FakeProviders, trace: Any, ks: Keystone, api: str
) -> None:
    client, call = wrapped_sync_client(api, providers, ks)
    with call(client, stream=True) as stream:
        assert isinstance(stream, STREAM_TYPES[api])
        next(iter(stream))
        assert trace() == []  # not finished yet
    [event] = trace()
    assert event["status"] == "ok" and event["metadata"]["stream"] is True


@pytest.mark.parametrize("api", list(CLIENTS))
def test_a_failed_call_raises_the_providers_error_and_records_it(
    providers: FakeProviders, trace: Any, ks: Keystone, api: str
) -> None:
    client, call = wrapped_sync_client(api, providers, ks)
    errors = {
        "openai": openai.BadRequestError,
        "openai-responses": openai.BadRequestError,
        "anthropic": anthropic.BadRequestError,
    }
    with pytest.raises(errors[api]):
        call(client, stream=False, model=BAD_MODEL)
    [event] = trace()
    assert event["status"] == "error" and event["error_type"] == "BadRequestError"
    assert event["cost"] == {"model": BAD_MODEL}


def read_message_stream(client: Any, how: str, trace: Any, *, is_async: bool) -> tuple[Any, list[Any]]:
    """Enter `client.messages.stream(...)` and read it `how` a caller might (`text_stream`,
    `get_final_message`, or nothing before leaving the block); what was read, and the events recorded
    before the block ended."""
    request = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "messages": MESSAGES,
        "tools": ANTHROPIC_TOOLS,
    }

    async def read_async() -> tuple[Any, list[Any]]:
        async with client, client.messages.stream(**request) as stream:
            if how == "text_stream":
                return [text async for text in stream.text_stream], trace()
            if how == "get_final_message":
                return await stream.get_final_message(), trace()
            return None, trace()

    if is_async:
        return asyncio.run(read_async())
    with client.messages.stream(**request) as stream:
        if how == "text_stream":
            return list(stream.text_stream), trace()
        if how == "get_final_message":
            return stream.get_final_message(), trace()
        return None, trace()


@pytest.mark.parametrize("how", ["text_stream", "get_final_message", "leave"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_the_anthropic_messages_stream_manager_records_one_call_however_it_is_read(
    providers: FakeProviders, trace: Any, ks: Keystone, how: str, is_async: bool
) -> None:
    client = ks.wrap(anthropic_client(providers, is_async=is_async), auto_instrument=False)

    outcome, inside = read_message_stream(client, how, trace, is_async=is_async)

    [event] = trace()
    assert event["tool"] == "anthropic.messages.stream"
    assert event["status"] == "ok" and event["duration_ms"] > 0
    expected = EXPECTED["anthropic"]
    if how == "leave":  # closed unread: the call happened, its answer was never read
        assert inside == []
        assert event["cost"] == {"model": expected["model"]}
        assert event["metadata"]["tool_calls"] == []
        return
    assert inside == [event]  # recorded as the stream ended, inside the block
    if how == "text_stream":
        assert outcome == ["Looking it up."]
    else:
        assert outcome.content[1].name == TOOL
    assert event["cost"] == expected["cost"]
    assert event["metadata"] == {
        "provider": "anthropic",
        "model": expected["model"],
        "stream": True,
        "tool_calls": [expected["tool_call"]],
    }


def test_a_messages_stream_the_provider_refuses_raises_on_entering_and_records_it(
    providers: FakeProviders, trace: Any, ks: Keystone
) -> None:
    client = ks.wrap(anthropic_client(providers), auto_instrument=False)
    manager = client.messages.stream(model=BAD_MODEL, max_tokens=256, messages=MESSAGES)
    assert trace() == []  # the request is made on entering
    with pytest.raises(anthropic.BadRequestError), manager:
        pass
    [event] = trace()
    assert event["status"] == "error" and event["error_type"] == "BadRequestError"


def test_the_openai_responses_stream_helper_is_recorded_through_create(
    providers: FakeProviders, trace: Any, ks: Keystone
) -> None:
    client = ks.wrap(openai_client(providers), auto_instrument=False)
    with client.responses.stream(model="gpt-4o-mini", input=MESSAGES[0]["content"]) as stream:
        assert stream.get_final_response().output[1].name == TOOL
    [event] = trace()
    assert event["tool"] == "openai.responses.create" and event["metadata"]["stream"] is True
    assert event["cost"] == OPENAI_COST


def test_auto_instrument_records_the_responses_api_and_messages_stream_once_each(
    providers: FakeProviders, trace: Any, ks: Keystone
) -> None:
    auto_instrument()
    call_openai_responses(ks.wrap(openai_client(providers)), stream=False)
    with anthropic_client(providers).messages.stream(
        model="claude-sonnet-4-5", max_tokens=256, messages=MESSAGES
    ) as stream:
        stream.until_done()
    assert [event["tool"] for event in trace()] == ["openai.responses.create", "anthropic.messages.stream"]


def test_wrapping_twice_and_auto_instrumenting_still_records_each_call_once(
    providers: FakeProviders, trace: Any, ks: Keystone
) -> None:
    client = ks.wrap(ks.wrap(openai_client(providers)))
    assert auto_instrument() == patched()
    call_openai(client, stream=False)
    call_openai(openai_client(providers), stream=False)  # a client made later, patched by auto_instrument
    assert len(trace()) == 2


def test_uninstrument_undoes_auto_instrument(providers: FakeProviders, trace: Any) -> None:
    auto_instrument()
    uninstrument()
    call_anthropic(anthropic_client(providers), stream=False)
    assert trace() == []


def test_auto_instrument_without_anywhere_to_report_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KEYSTONE_API_KEY", "KEYSTONE_SANDBOX_ID", "POLARITY_SANDBOX_ID", "KEYSTONE_TRACE_FILE"):
        monkeypatch.delenv(name, raising=False)
    reset_tracing()
    with pytest.raises(RuntimeError, match="sandbox id"):
        auto_instrument()


def test_observe_wraps_the_clients_and_names_what_it_applied(
    providers: FakeProviders, trace: Any, ks: Keystone
) -> None:
    clients = [anthropic_client(providers), openai_client(providers)]
    applied = ks.observe(clients=clients, tracing=False)
    assert applied == ["anthropic-client", "openai-client", *patched()]
    call_anthropic(clients[0], stream=False)
    assert len(trace()) == 1


def test_a_call_inside_a_traced_span_is_its_child(providers: FakeProviders, trace: Any, ks: Keystone) -> None:
    client = ks.wrap(openai_client(providers), auto_instrument=False)
    with traced(name="plan") as span:
        call_openai(client, stream=False)
    [event] = trace()
    assert event["parent_span_id"] == span.span_id == event["root_span_id"]


def test_a_failed_report_never_reaches_the_caller(
    providers: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ks: Keystone
) -> None:
    monkeypatch.setenv("KEYSTONE_TRACE_FILE", str(tmp_path))  # a directory: every write fails
    reset_tracing()
    client = ks.wrap(anthropic_client(providers), auto_instrument=False)
    try:
        assert [item.type for item in call_anthropic(client, stream=True)][-1] == "message_stop"
    finally:
        reset_tracing()
