"""The official `openai` client: chat completions and the Responses API (sync, async, streamed) as
`llm_call` events."""

from __future__ import annotations

from typing import Any

from ._llm_call import LlmCall, attribute
from ._llm_wrappers import CallReader

CHAT_USAGE = {
    "input_tokens": ("prompt_tokens",),
    "output_tokens": ("completion_tokens",),
    "cache_read_tokens": ("prompt_tokens_details", "cached_tokens"),
    "reasoning_tokens": ("completion_tokens_details", "reasoning_tokens"),
}
"""Where a chat completion's usage keeps each count the event names."""
RESPONSES_USAGE = {
    "input_tokens": ("input_tokens",),
    "output_tokens": ("output_tokens",),
    "cache_read_tokens": ("input_tokens_details", "cached_tokens"),
    "reasoning_tokens": ("output_tokens_details", "reasoning_tokens"),
}
"""The same for the Responses API, which names its counts apart from chat completions'."""


def read_usage(call: LlmCall, usage: Any, paths: dict[str, tuple[str, ...]] = CHAT_USAGE) -> None:
    if usage is None:
        return
    for name, path in paths.items():
        call.set_usage(name, attribute(usage, *path))


def read_response(call: LlmCall, response: Any) -> None:
    call.model = attribute(response, "model") or call.model
    read_usage(call, attribute(response, "usage"))
    for choice in attribute(response, "choices") or []:
        for position, tool_call in enumerate(attribute(choice, "message", "tool_calls") or []):
            key = f"{attribute(choice, 'index') or 0}:{position}"
            call.add_tool_call(key, attribute(tool_call, "id"), attribute(tool_call, "function", "name"))


def read_chunk(call: LlmCall, chunk: Any) -> None:
    """A chunk names a tool call's id and function once, then only its index; usage comes in the last
    chunk when the request asked for it (`stream_options={"include_usage": True}`)."""
    call.model = attribute(chunk, "model") or call.model
    read_usage(call, attribute(chunk, "usage"))
    for choice in attribute(chunk, "choices") or []:
        for tool_call in attribute(choice, "delta", "tool_calls") or []:
            key = f"{attribute(choice, 'index') or 0}:{attribute(tool_call, 'index') or 0}"
            call.add_tool_call(key, attribute(tool_call, "id"), attribute(tool_call, "function", "name"))


def read_responses_response(call: LlmCall, response: Any) -> None:
    """A Responses API response: its function calls are the output items of type `function_call`, keyed
    by their position in the output (as stream events name them: `output_index`)."""
    call.model = attribute(response, "model") or call.model
    read_usage(call, attribute(response, "usage"), RESPONSES_USAGE)
    for position, item in enumerate(attribute(response, "output") or []):
        read_output_item(call, position, item)


def read_output_item(call: LlmCall, position: Any, item: Any) -> None:
    if attribute(item, "type") == "function_call":
        call.add_tool_call(position, attribute(item, "call_id"), attribute(item, "name"))


def read_responses_event(call: LlmCall, event: Any) -> None:
    """A streamed Responses API event: the response itself comes with `response.created` and again, with
    its usage, in the last event (`response.completed`, or `.incomplete` / `.failed`); a function call's
    name arrives with its output item."""
    response = attribute(event, "response")
    if response is not None:
        read_responses_response(call, response)
    elif attribute(event, "type") in ("response.output_item.added", "response.output_item.done"):
        read_output_item(call, attribute(event, "output_index") or 0, attribute(event, "item"))


def patch_points() -> list[tuple[type, str, CallReader]]:
    """The classes and methods `auto_instrument` patches; empty when `openai` is not importable."""
    try:
        import openai
        from openai._legacy_response import LegacyAPIResponse
        from openai.resources.chat.completions import AsyncCompletions, Completions
        from openai.resources.responses import AsyncResponses, Responses
    except ImportError:
        return []
    streams = (openai.Stream, openai.AsyncStream)
    raw = (LegacyAPIResponse,)  # `with_raw_response` returns it, from sync and async clients alike
    chat = CallReader(
        "openai", "openai.chat.completions.create", read_response, read_chunk, streams, raw_responses=raw
    )
    responses = CallReader(
        "openai",
        "openai.responses.create",
        read_responses_response,
        read_responses_event,
        streams,
        raw_responses=raw,
    )
    return [
        (Completions, "create", chat),
        (AsyncCompletions, "create", chat),
        (Responses, "create", responses),
        (AsyncResponses, "create", responses),
    ]


def client_resources(client: Any) -> list[Any]:
    """The resource objects of one client whose methods `wrap` replaces: none for another's client."""
    import openai

    if isinstance(client, (openai.OpenAI, openai.AsyncOpenAI)):
        return [client.chat.completions, client.responses]
    return []
