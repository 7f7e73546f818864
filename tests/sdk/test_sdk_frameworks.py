"""`auto_instrument` with the real LangChain (`langchain-openai`, `langchain-anthropic`) and `litellm`
packages against the local fake providers: each call through a framework is one `llm_call` event with
the model, tokens and requested tool calls, plain, streamed, sync and async.

LangChain calls the official clients (through `with_raw_response`), whose patches record it; litellm is
patched itself, and where it calls the official `openai` client underneath (Azure) that client's patch
records nothing more."""

from __future__ import annotations

import asyncio
import functools
import operator
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import litellm
import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from polarity_keystone import auto_instrument
from polarity_keystone.sdk import uninstrument
from tests.fakes.llm_providers import FakeProviders
from tests.sdk.test_sdk_wrap import EXPECTED as EXPECTED_BY_API
from tests.sdk.test_sdk_wrap import MESSAGES, TOOLS

Trace = Callable[[], list[dict[str, Any]]]
EXPECTED: dict[str, dict[str, Any]] = EXPECTED_BY_API
"""What the official clients' calls record, by API."""

pytestmark = [
    # pydantic's warnings about litellm's own code, which warnings-as-errors would raise inside its calls
    pytest.mark.filterwarnings("ignore:Items? .* using the `ReadOnly` qualifier:UserWarning"),
    pytest.mark.filterwarnings("ignore:Accessing the 'model_.*' attribute on the instance is deprecated"),
]


@pytest.fixture(autouse=True)
def thread_loop() -> Iterator[None]:
    """litellm's sync calls take the thread's event loop (`asyncio.get_event_loop()`, which makes one
    and leaves it open): the test's is closed after it."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(None)
    loop.close()


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for every async LangChain call: LangChain's models share one async HTTP client per
    provider URL across the process, which can only be used from the loop that opened its connections.
    Closed with the clients the calls opened."""
    running = asyncio.new_event_loop()
    yield running
    running.run_until_complete(close_async_clients())
    running.close()


_async_clients: list[Any] = []


async def close_async_clients() -> None:
    while _async_clients:
        await _async_clients.pop().close()


def chat_model(api: str, providers: FakeProviders) -> Any:
    """A LangChain chat model of `api` bound to the tool; OpenAI's asked for usage in streams too (by
    default it asks only of api.openai.com)."""
    model: BaseChatModel
    if api == "openai":
        model = ChatOpenAI(
            model="gpt-4o-mini",
            api_key=SecretStr("sk-fake"),
            base_url=providers.openai_url,
            max_retries=0,
            stream_usage=True,
        )
    else:
        model = ChatAnthropic(  # type: ignore[call-arg]
            model="claude-sonnet-4-5",
            api_key=SecretStr("sk-ant-fake"),
            base_url=providers.anthropic_url,
            max_retries=0,
        )
    return model.bind_tools(TOOLS)


async def call_async(model: Any, mode: str) -> Any:
    bound = model.bound
    _async_clients.append(bound.root_async_client if isinstance(bound, ChatOpenAI) else bound._async_client)
    if mode == "stream":
        return [chunk async for chunk in model.astream(MESSAGES)]
    return await model.ainvoke(MESSAGES)


def call_langchain(model: Any, mode: str, loop: asyncio.AbstractEventLoop | None) -> Any:
    """The answer as one message (a stream's chunks added up, as LangChain adds them); asynchronously when
    given a loop."""
    if loop:
        answer = loop.run_until_complete(call_async(model, mode))
    else:
        answer = list(model.stream(MESSAGES)) if mode == "stream" else model.invoke(MESSAGES)
    return functools.reduce(operator.add, answer) if mode == "stream" else answer


def assert_one_call(trace: Trace, *, tool: str, provider: str, api: str, stream: bool, **cost: int) -> None:
    expected = EXPECTED[api]
    [event] = trace()
    assert event["tool"] == tool
    assert event["status"] == "ok" and event["duration_ms"] > 0
    assert event["cost"] == {**expected["cost"], **cost}
    assert event["metadata"] == {
        "provider": provider,
        "model": expected["model"],
        "stream": stream,
        "tool_calls": [expected["tool_call"]],
    }


@pytest.mark.parametrize("api", ["openai", "anthropic"])
@pytest.mark.parametrize("mode", ["invoke", "stream"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_langchain_call_is_recorded_once_by_the_client_underneath(
    providers: FakeProviders,
    trace: Trace,
    loop: asyncio.AbstractEventLoop,
    api: str,
    mode: str,
    is_async: bool,
) -> None:
    auto_instrument()
    answer = call_langchain(chat_model(api, providers), mode, loop if is_async else None)

    assert [call["name"] for call in answer.tool_calls] == [EXPECTED[api]["tool_call"]["name"]]
    assert_one_call(trace, tool=EXPECTED[api]["tool"], provider=api, api=api, stream=mode == "stream")


LITELLM_MODELS = {
    "openai": ("openai/gpt-4o-mini", "openai_url", "openai"),
    # Azure OpenAI is the provider litellm reaches through the official openai client.
    "azure": ("azure/gpt-4o-mini", "azure_url", "openai"),
    # litellm's own HTTP code; it reports Anthropic's (absent) reasoning tokens as 0.
    "anthropic": ("anthropic/claude-sonnet-4-5", "anthropic_url", "anthropic"),
}
"""litellm's provider -> (the model as litellm names it, the fake's URL for it, the API it speaks)."""


def call_litellm(providers: FakeProviders, provider: str, *, stream: bool, is_async: bool) -> list[Any]:
    """The answer's choices, as the caller reads them (streamed: every chunk's)."""
    model, url, _ = LITELLM_MODELS[provider]
    request: dict[str, Any] = {
        "model": model,
        "messages": MESSAGES,
        "tools": TOOLS,
        "api_key": "sk-fake",
        "api_base": getattr(providers, url),
        "api_version": "2024-10-21",
    }
    if stream:
        request |= {"stream": True, "stream_options": {"include_usage": True}}

    async def call_async() -> list[Any]:
        answer = await litellm.acompletion(**request)
        return [chunk async for chunk in answer] if stream else [answer]

    def call_sync() -> list[Any]:
        answer = litellm.completion(**request)
        return list(answer) if stream else [answer]

    items = asyncio.run(call_async()) if is_async else call_sync()
    return [choice for item in items for choice in item.choices]


@pytest.mark.parametrize("provider", list(LITELLM_MODELS))
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_litellm_call_is_recorded_once(
    providers: FakeProviders, trace: Trace, provider: str, stream: bool, is_async: bool
) -> None:
    auto_instrument()
    choices = call_litellm(providers, provider, stream=stream, is_async=is_async)

    if stream:
        assert len(choices) >= 2  # the chunks still stream through
    else:
        assert choices[0].message.tool_calls[0].function.name == EXPECTED["openai"]["tool_call"]["name"]
    api = LITELLM_MODELS[provider][2]
    extra = {"reasoning_tokens": 0} if api == "anthropic" else {}
    assert_one_call(trace, tool="litellm.completion", provider="litellm", api=api, stream=stream, **extra)


def test_auto_instrument_twice_records_once_and_uninstrument_restores_litellm(
    providers: FakeProviders, trace: Trace
) -> None:
    completion = litellm.completion
    auto_instrument()
    auto_instrument()
    call_litellm(providers, "openai", stream=False, is_async=False)
    assert len(trace()) == 1, trace()

    uninstrument()
    assert litellm.completion is completion
    call_litellm(providers, "azure", stream=False, is_async=False)
    assert len(trace()) == 1


def test_instrumenting_does_not_import_litellm() -> None:
    """In a fresh interpreter: importing litellm takes seconds (and a network fetch of its price map), so
    it is patched only once the program imports it (as this module does, for the tests above)."""
    program = (
        "import sys\n"
        "from polarity_keystone.sdk._instrument import patch_providers\n"
        "print(patch_providers(), 'litellm' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["['anthropic', 'openai'] False"]
