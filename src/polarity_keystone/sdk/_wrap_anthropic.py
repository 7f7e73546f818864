"""The official `anthropic` client: messages (sync, async, streamed, and through the `messages.stream()`
context manager) as `llm_call` events."""

from __future__ import annotations

from typing import Any

from ._llm_call import LlmCall, attribute
from ._llm_wrappers import CallReader


def read_usage(call: LlmCall, usage: Any) -> None:
    """Anthropic's `input_tokens` leaves out the tokens read from and written to the prompt cache; the
    event's `input_tokens` counts all of them, as OpenAI's do. Stream deltas carry cumulative counts, so
    a later value replaces an earlier one."""
    if usage is None:
        return
    for name in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
        value = attribute(usage, name)
        if isinstance(value, int):
            call.provider_usage[name] = value
    call.set_usage("output_tokens", attribute(usage, "output_tokens"))
    counts = call.provider_usage
    if "input_tokens" in counts:
        call.set_usage("input_tokens", sum(counts.values()))
    call.set_usage("cache_read_tokens", counts.get("cache_read_input_tokens"))
    call.set_usage("cache_write_tokens", counts.get("cache_creation_input_tokens"))


def read_message(call: LlmCall, message: Any) -> None:
    call.model = attribute(message, "model") or call.model
    read_usage(call, attribute(message, "usage"))
    for position, block in enumerate(attribute(message, "content") or []):
        if attribute(block, "type") == "tool_use":
            call.add_tool_call(position, attribute(block, "id"), attribute(block, "name"))


def read_event(call: LlmCall, event: Any) -> None:
    kind = attribute(event, "type")
    if kind == "message_start":
        read_message(call, attribute(event, "message"))
    elif kind == "content_block_start":
        block = attribute(event, "content_block")
        if attribute(block, "type") == "tool_use":
            position = attribute(event, "index") or 0
            call.add_tool_call(position, attribute(block, "id"), attribute(block, "name"))
    elif kind == "message_delta":
        read_usage(call, attribute(event, "usage"))


def patch_points() -> list[tuple[type, str, CallReader]]:
    """The classes and methods `auto_instrument` patches; empty when `anthropic` is not importable.
    `messages.stream()` makes its request when its manager is entered, without calling `create`; the
    manager's message stream reads the provider's stream, which the reader observes."""
    try:
        import anthropic
        from anthropic.lib.streaming import AsyncMessageStreamManager, MessageStreamManager
        from anthropic.resources.messages import AsyncMessages, Messages
    except ImportError:
        return []
    streams = (anthropic.Stream, anthropic.AsyncStream)
    raw = (anthropic.APIResponse, anthropic.AsyncAPIResponse)  # what `with_raw_response` returns
    create = CallReader(
        "anthropic", "anthropic.messages.create", read_message, read_event, streams, raw_responses=raw
    )
    stream = CallReader(
        "anthropic",
        "anthropic.messages.stream",
        read_message,
        read_event,
        streams,
        stream_managers=(MessageStreamManager, AsyncMessageStreamManager),
        managed_stream=_raw_stream,
    )
    return [
        (Messages, "create", create),
        (AsyncMessages, "create", create),
        (Messages, "stream", stream),
        (AsyncMessages, "stream", stream),
    ]


def _raw_stream(message_stream: Any) -> Any:
    return message_stream._raw_stream


def client_resources(client: Any) -> list[Any]:
    import anthropic

    return [client.messages] if isinstance(client, (anthropic.Anthropic, anthropic.AsyncAnthropic)) else []
