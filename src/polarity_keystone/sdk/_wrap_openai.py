"""The official `openai` client: chat completions (sync, async, streamed) as `llm_call` events."""

from __future__ import annotations

from typing import Any

from ._llm_call import LlmCall, attribute
from ._llm_wrappers import CallReader

OPERATION = "openai.chat.completions.create"


def read_usage(call: LlmCall, usage: Any) -> None:
    if usage is None:
        return
    call.set_usage("input_tokens", attribute(usage, "prompt_tokens"))
    call.set_usage("output_tokens", attribute(usage, "completion_tokens"))
    call.set_usage("cache_read_tokens", attribute(usage, "prompt_tokens_details", "cached_tokens"))
    call.set_usage("reasoning_tokens", attribute(usage, "completion_tokens_details", "reasoning_tokens"))


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


def patch_points() -> list[tuple[type, str, CallReader]]:
    """The classes and methods `auto_instrument` patches; empty when `openai` is not importable."""
    try:
        import openai
        from openai.resources.chat.completions import AsyncCompletions, Completions
    except ImportError:
        return []
    reader = CallReader("openai", read_response, read_chunk, (openai.Stream, openai.AsyncStream))
    return [(Completions, "create", reader), (AsyncCompletions, "create", reader)]


def client_resources(client: Any) -> list[Any]:
    """The resource objects of one client whose `create` `wrap` replaces: none for another's client."""
    import openai

    return [client.chat.completions] if isinstance(client, (openai.OpenAI, openai.AsyncOpenAI)) else []
