"""A Chat Completions call for any configured judge: OpenAI's parameters in (messages, tools,
tool_choice, temperature, max_tokens), an OpenAI `chat.completion` dict out, translated to and from
Anthropic's Messages API (system prompt, `tool_use` and `tool_result` blocks) when the provider is
Anthropic, so callers written for OpenAI's shape work against either."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ._client import MAX_TOKENS, JudgeConfig, JudgeError, MissingKey, Provider, configure, excerpt, send

Message = Mapping[str, Any]

_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}


def chat(
    messages: Sequence[Message],
    *,
    model: str = "paragon-fast",
    provider: Provider | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: str | Mapping[str, Any] | None = None,
    temperature: float = 0.0,
    max_tokens: int = MAX_TOKENS,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any] | MissingKey:
    """The model's answer as an OpenAI `chat.completion` dict, or which env var is missing.

    Raises `JudgeError` when the provider fails (after retries, for transient failures)."""
    config = configure(model, provider, env)
    if isinstance(config, MissingKey):
        return config
    return chat_with(config, messages, tools, tool_choice, temperature, max_tokens)


def chat_with(
    config: JudgeConfig,
    messages: Sequence[Message],
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: str | Mapping[str, Any] | None = None,
    temperature: float = 0.0,
    max_tokens: int = MAX_TOKENS,
) -> dict[str, Any]:
    if config.provider == "anthropic":
        body = anthropic_request(config.model, messages, tools, tool_choice, temperature, max_tokens)
        data, _ = send(config, "/v1/messages", body)
        return openai_completion(data, config.model)
    body = {
        "model": config.model,
        "messages": list(messages),
        "temperature": temperature,
        "max_tokens": max_tokens,
    }
    if tools:
        body["tools"] = list(tools)
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    data, _ = send(config, "/chat/completions", body)
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        raise JudgeError(f"unexpected Chat Completions response: {excerpt(str(data))}")
    return data


def anthropic_request(
    model: str,
    messages: Sequence[Message],
    tools: Sequence[Mapping[str, Any]] | None,
    tool_choice: str | Mapping[str, Any] | None,
    temperature: float,
    max_tokens: int,
) -> dict[str, Any]:
    """The Messages API body for OpenAI-shaped parameters."""
    system = "\n\n".join(
        _text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")
    )
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "messages": _anthropic_messages(messages),
    }
    if system:
        body["system"] = system
    if tools and tool_choice != "none":
        body["tools"] = [_anthropic_tool(tool) for tool in tools]
        if tool_choice == "required":
            body["tool_choice"] = {"type": "any"}
        elif isinstance(tool_choice, Mapping) and tool_choice.get("type") == "function":
            body["tool_choice"] = {"type": "tool", "name": tool_choice["function"]["name"]}
        else:
            body["tool_choice"] = {"type": "auto"}
    return body


def _anthropic_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = tool.get("function", tool)
    described = {"name": function["name"], "input_schema": function.get("parameters") or {"type": "object"}}
    if function.get("description"):
        described["description"] = function["description"]
    return described


def _anthropic_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """User and assistant turns, an assistant's `tool_calls` as `tool_use` blocks and `tool` messages
    as `tool_result` blocks of a user turn; consecutive turns of one role are merged, as the API asks."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            continue
        blocks: list[dict[str, Any]] = []
        if role == "tool":
            role = "user"
            result = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id"),
                "content": _text(message.get("content")),
            }
            blocks.append(result)
        else:
            text = _text(message.get("content"))
            if text:
                blocks.append({"type": "text", "text": text})
            for call in message.get("tool_calls") or []:
                arguments = call["function"].get("arguments") or "{}"
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call["id"],
                        "name": call["function"]["name"],
                        "input": json.loads(arguments),
                    }
                )
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, Mapping))


def openai_completion(data: Any, model: str) -> dict[str, Any]:
    """An OpenAI `chat.completion` dict for a Messages API answer: text blocks as the content,
    `tool_use` blocks as `tool_calls` (their input as JSON arguments)."""
    try:
        blocks = list(data["content"])
        text = "".join(block.get("text", "") for block in blocks if block.get("type") == "text")
        calls = [
            {
                "id": block["id"],
                "type": "function",
                "function": {"name": block["name"], "arguments": json.dumps(block.get("input") or {})},
            }
            for block in blocks
            if block.get("type") == "tool_use"
        ]
    except (KeyError, TypeError, AttributeError) as exc:
        raise JudgeError(f"unexpected Messages API response: {excerpt(str(data))}") from exc
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    prompt_tokens, completion_tokens = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
    return {
        "id": str(data.get("id") or ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(data.get("model") or model),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _FINISH_REASONS.get(str(data.get("stop_reason")), "stop"),
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
