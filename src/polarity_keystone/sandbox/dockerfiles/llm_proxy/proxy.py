"""Keystone's LLM proxy (standard library only): an OpenAI- and Anthropic-compatible HTTP server that a
sandboxed agent reaches in place of the provider (`OPENAI_BASE_URL=http://<service>/v1`,
`ANTHROPIC_BASE_URL=http://<service>`), answering model calls from mocks, from the real provider while
recording them, or from a recording.

Configuration is one JSON document in the KEYSTONE_LLM_CONFIG environment variable:

    {"port": 80, "mode": "mock" | "record" | "replay",
     "tls": {"port": 443, "cert": "/etc/keystone-llm/tls/cert.pem", "key": "/etc/keystone-llm/tls/key.pem"},
     "log_path": "/var/lib/keystone-llm/exchanges.jsonl",
     "recording_path": "/var/lib/keystone-llm/recording.jsonl",
     "upstreams": {"openai": "https://api.openai.com", "anthropic": "https://api.anthropic.com"},
     "max_calls": 1000,
     "responses": [{"match": {"call": 0, "contains": "text"}, "content": "text",
                    "tool_calls": [{"name": "lookup", "arguments": {"id": 1}, "id": "optional"}],
                    "usage": {"input_tokens": 12, "output_tokens": 3}, "model": "optional",
                    "status": 200, "error": "message, with a status >= 400"}]}

Routes: POST /v1/chat/completions (OpenAI), POST /v1/messages (Anthropic), GET /v1/models; each is
answered in its provider's shape, streamed as server-sent events when the request asks for `stream`.
A request is Anthropic's when its path is /v1/messages or it carries `anthropic-version` or `x-api-key`.
Every request is one call, numbered from 0 in arrival order, and one line of the log.

With `tls`, and its certificate file in place (Keystone puts one for the hosts a spec's `dns_overrides`
sends here, e.g. api.openai.com), the same routes are also served over HTTPS on `tls.port`: an agent that
ignores OPENAI_BASE_URL and calls https://api.openai.com gets the same answers.

- mock: the first response whose `match` holds answers (`call` is the call's number, `contains` a
  substring of the text of the request's last message); no `match` always matches. Tool-call ids default
  to `call_<call>_<i>` / `toolu_<call>_<i>` and usage to an estimate (characters / 4), so a re-run sends
  the same requests. Other routes get 404, an unmatched call 500, both in the provider's error shape.
- record: every request is forwarded to `upstreams[provider] + path` with the provider key from
  KEYSTONE_LLM_OPENAI_KEY / KEYSTONE_LLM_ANTHROPIC_KEY in place of the agent's placeholder, and the
  answer streamed back as it arrives.
- replay: call N answers with exchange N of `recording_path` (a log of a recorded run), never reaching
  the network. A request that differs from the recorded one is answered all the same, its log line
  naming the first differing JSON path under `divergence`.

The log (`log_path`) gets one JSON line per call: {call, ts, mode, provider, method, path, request,
request_hash, status, response, stream, content_type, model, usage, tool_calls, latency_ms, truncated,
divergence, error}. Request bodies over 4 MiB are refused with 413, calls beyond `max_calls` with 429,
malformed JSON on a model route with 400.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

READY_MARKER = "keystone: llm_proxy ready"
LOG_PATH = "/var/lib/keystone-llm/exchanges.jsonl"
RECORDING_PATH = "/var/lib/keystone-llm/recording.jsonl"
UPSTREAMS = {"openai": "https://api.openai.com", "anthropic": "https://api.anthropic.com"}
KEY_ENV = {"openai": "KEYSTONE_LLM_OPENAI_KEY", "anthropic": "KEYSTONE_LLM_ANTHROPIC_KEY"}
BODY_LIMIT = 4 * 1024 * 1024
DISCARD_LIMIT = 4 * BODY_LIMIT
LOGGED_REQUEST_LIMIT = 256 * 1024
LOGGED_RESPONSE_LIMIT = 1024 * 1024
VALUE_CUT = 200
UPSTREAM_TIMEOUT = 600
CLIENT_TIMEOUT = 120
FORWARDED_HEADERS = ("content-type", "accept", "anthropic-version", "anthropic-beta", "openai-beta")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}
OPENAI_CHAT, ANTHROPIC_MESSAGES, MODELS = "/v1/chat/completions", "/v1/messages", "/v1/models"
DEFAULT_MODEL = "keystone-mock"
SSE = "text/event-stream"
JSON = "application/json"
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


# --- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str
    """A JSON object as text, as OpenAI sends it; Anthropic gets it parsed."""
    id: str | None

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> ToolCall:
        arguments = raw.get("arguments", {})
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        return cls(name=str(raw["name"]), arguments=text, id=raw.get("id"))


@dataclass(frozen=True)
class MockResponse:
    match_call: int | None
    match_contains: str | None
    content: str
    tool_calls: list[ToolCall]
    usage: dict[str, int] | None
    model: str | None
    status: int
    error: str | None

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> MockResponse:
        match = raw.get("match") or {}
        return cls(
            match_call=None if match.get("call") is None else int(match["call"]),
            match_contains=None if match.get("contains") is None else str(match["contains"]),
            content=str(raw.get("content") or ""),
            tool_calls=[ToolCall.parse(call) for call in raw.get("tool_calls") or []],
            usage={key: int(value) for key, value in raw["usage"].items()} if raw.get("usage") else None,
            model=raw.get("model"),
            status=int(raw.get("status", 200)),
            error=raw.get("error"),
        )

    def matches(self, call: int, last_message: str) -> bool:
        if self.match_call is not None and self.match_call != call:
            return False
        return self.match_contains is None or self.match_contains in last_message


@dataclass(frozen=True)
class Config:
    port: int
    mode: str
    log_path: str
    recording_path: str
    upstreams: dict[str, str]
    max_calls: int
    responses: list[MockResponse]
    keys: dict[str, str]
    tls: Tls | None = None

    @classmethod
    def load(cls, raw: dict[str, Any], environ: dict[str, str]) -> Config:
        mode = str(raw.get("mode") or "mock")
        if mode not in ("mock", "record", "replay"):
            raise SystemExit(f"llm_proxy: unknown mode {mode!r} (mock, record or replay)")
        return cls(
            port=int(raw.get("port", 80)),
            mode=mode,
            log_path=str(raw.get("log_path") or LOG_PATH),
            recording_path=str(raw.get("recording_path") or RECORDING_PATH),
            upstreams={**UPSTREAMS, **(raw.get("upstreams") or {})},
            max_calls=int(raw.get("max_calls", 1000)),
            responses=[MockResponse.parse(item) for item in raw.get("responses") or []],
            keys={provider: environ[name] for provider, name in KEY_ENV.items() if environ.get(name)},
            tls=Tls.parse(raw["tls"]) if raw.get("tls") else None,
        )


@dataclass(frozen=True)
class Tls:
    port: int
    cert: str
    key: str

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Tls:
        return cls(port=int(raw.get("port", 443)), cert=str(raw["cert"]), key=str(raw["key"]))


# --- request bodies --------------------------------------------------------------------------------


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def body_hash(raw: bytes, body: Any) -> str:
    """The hash of the canonical JSON body, or of the bytes when they are not JSON."""
    return hashlib.sha256(canonical(body) if body is not None else raw).hexdigest()


def text_of(value: Any) -> str:
    """The text of a message or its content, whatever the provider shape: strings, text parts,
    tool results (their `content`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(part for part in (text_of(item) for item in value) if part)
    if isinstance(value, dict):
        return text_of(value.get("text", value.get("content")))
    return ""


def last_message_text(body: Any) -> str:
    messages = body.get("messages") if isinstance(body, dict) else None
    return text_of(messages[-1]) if isinstance(messages, list) and messages else ""


def clip(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text[:VALUE_CUT]


def first_difference(expected: Any, got: Any, path: str = "") -> tuple[str, str, str] | None:
    """The first JSON path (`messages[2].content`) where two bodies differ, with both values there."""
    if isinstance(expected, dict) and isinstance(got, dict):
        for key in sorted(set(expected) | set(got)):
            where = f"{path}.{key}" if path else key
            if key not in expected or key not in got:
                return where, clip(expected.get(key, "(absent)")), clip(got.get(key, "(absent)"))
            found = first_difference(expected[key], got[key], where)
            if found:
                return found
        return None
    if isinstance(expected, list) and isinstance(got, list):
        for index in range(max(len(expected), len(got))):
            where = f"{path}[{index}]"
            if index >= len(expected) or index >= len(got):
                absent = "(absent)"
                return (
                    where,
                    clip(expected[index] if index < len(expected) else absent),
                    clip(got[index] if index < len(got) else absent),
                )
            found = first_difference(expected[index], got[index], where)
            if found:
                return found
        return None
    return None if expected == got else (path, clip(expected), clip(got))


# --- provider shapes ---------------------------------------------------------------------------------


def provider_of(path: str, headers: dict[str, str]) -> str:
    if path.startswith(ANTHROPIC_MESSAGES) or "anthropic-version" in headers or "x-api-key" in headers:
        return "anthropic"
    return "openai"


def error_body(provider: str, status: int, message: str) -> dict[str, Any]:
    kind = ERROR_TYPES.get(status, "api_error")
    if provider == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def sse(event: str | None, data: Any) -> str:
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


def parse_sse(text: str) -> list[tuple[str | None, Any]]:
    """The events of a server-sent-events body, each data parsed as JSON where it is JSON."""
    events: list[tuple[str | None, Any]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            joined = "\n".join(data)
            try:
                events.append((name, json.loads(joined)))
            except ValueError:
                events.append((name, joined))
    return events


def estimate_tokens(text: str) -> int:
    return (len(text) + 3) // 4


@dataclass(frozen=True)
class Reply:
    """One mock answer, resolved for a call: ids and usage filled in."""

    call: int
    model: str
    content: str
    tool_calls: list[ToolCall]
    input_tokens: int
    output_tokens: int

    def tool_ids(self, prefix: str) -> list[str]:
        """The given ids, else deterministic ones (`call_<call>_<i>`), so a re-run sends the same requests."""
        return [call.id or f"{prefix}_{self.call}_{i}" for i, call in enumerate(self.tool_calls)]


def openai_completion(reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content or None, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": id_, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for id_, call in zip(reply.tool_ids("call"), reply.tool_calls, strict=True)
        ]
    finish = "tool_calls" if reply.tool_calls else "stop"
    return {
        "id": f"chatcmpl-keystone-{reply.call}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": openai_usage(reply),
    }


def openai_usage(reply: Reply) -> dict[str, int]:
    total = reply.input_tokens + reply.output_tokens
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": total,
    }


def openai_stream(reply: Reply, include_usage: bool) -> str:
    """Chunks as OpenAI streams them: the role, the text in pieces, each tool call's id and name and
    then its arguments, the finish reason, the usage chunk when asked, then `[DONE]`."""
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": reply.content[i : i + 16]} for i in range(0, len(reply.content), 16)]
    for index, (id_, call) in enumerate(zip(reply.tool_ids("call"), reply.tool_calls, strict=True)):
        function = {"name": call.name, "arguments": ""}
        deltas.append({"tool_calls": [{"index": index, "id": id_, "type": "function", "function": function}]})
        deltas.append({"tool_calls": [{"index": index, "function": {"arguments": call.arguments}}]})
    base: dict[str, Any] = {
        "id": f"chatcmpl-keystone-{reply.call}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": reply.model,
        **({"usage": None} if include_usage else {}),
    }
    finish = "tool_calls" if reply.tool_calls else "stop"
    chunks: list[dict[str, Any]] = [
        {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]} for delta in deltas
    ]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if include_usage:
        chunks.append({**base, "choices": [], "usage": openai_usage(reply)})
    return "".join(sse(None, chunk) for chunk in chunks) + sse(None, "[DONE]")


def anthropic_blocks(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.content or not reply.tool_calls:
        blocks.append({"type": "text", "text": reply.content})
    for id_, call in zip(reply.tool_ids("toolu"), reply.tool_calls, strict=True):
        blocks.append({"type": "tool_use", "id": id_, "name": call.name, "input": json.loads(call.arguments)})
    return blocks


def anthropic_message(reply: Reply) -> dict[str, Any]:
    return {
        "id": f"msg_keystone_{reply.call}",
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": anthropic_blocks(reply),
        "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": reply.input_tokens,
            "output_tokens": reply.output_tokens,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        },
    }


def anthropic_stream(reply: Reply) -> str:
    """Events as the messages API streams them: message_start, each block's start, delta (text_delta or
    input_json_delta) and stop, message_delta with the stop reason and output usage, message_stop."""
    message = anthropic_message(reply)
    start = {**message, "content": [], "stop_reason": None, "usage": {**message["usage"], "output_tokens": 0}}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(message["content"]):
        opening: dict[str, Any]
        if block["type"] == "text":
            opening, delta = {"type": "text", "text": ""}, {"type": "text_delta", "text": block["text"]}
        else:
            opening = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        events.append({"type": "content_block_start", "index": index, "content_block": opening})
        events.append({"type": "content_block_delta", "index": index, "delta": delta})
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": reply.output_tokens},
        }
    )
    events.append({"type": "message_stop"})
    return "".join(sse(event["type"], event) for event in events)


def models_list(provider: str, models: list[str]) -> dict[str, Any]:
    if provider == "anthropic":
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2024-01-01T00:00:00Z"}
            for m in models
        ]
        return {"data": data, "has_more": False, "first_id": models[0], "last_id": models[-1]}
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 0, "owned_by": "keystone"} for m in models],
    }


# --- reading answers ---------------------------------------------------------------------------------


@dataclass
class Observed:
    """What an answer says about the call: its model, token usage and tool calls."""

    model: str | None = None
    usage: dict[str, int] | None = None
    tool_calls: list[dict[str, str]] = field(default_factory=list)


def usage_record(input_tokens: int, output_tokens: int, cache_read: int, reasoning: int) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_tokens": cache_read,
        "reasoning_tokens": reasoning,
    }


def openai_usage_record(usage: dict[str, Any]) -> dict[str, int]:
    return usage_record(
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
        int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0),
        int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0),
    )


def anthropic_usage_record(usage: dict[str, Any], output_tokens: int | None = None) -> dict[str, int]:
    cache_read = int(usage.get("cache_read_input_tokens") or 0)
    cached_input = cache_read + int(usage.get("cache_creation_input_tokens") or 0)
    output = int(usage.get("output_tokens") or 0) if output_tokens is None else output_tokens
    return usage_record(int(usage.get("input_tokens") or 0) + cached_input, output, cache_read, 0)


def observe_openai(response: Any, events: list[tuple[str | None, Any]]) -> Observed:
    seen = Observed()
    chunks = (
        [response] if isinstance(response, dict) else [data for _, data in events if isinstance(data, dict)]
    )
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        seen.model = chunk.get("model") or seen.model
        if isinstance(chunk.get("usage"), dict):
            seen.usage = openai_usage_record(chunk["usage"])
        for choice in chunk.get("choices") or []:
            message = choice.get("message") or choice.get("delta") or {}
            for i, call in enumerate(message.get("tool_calls") or []):
                entry = calls.setdefault(int(call.get("index", i)), {"id": "", "name": "", "arguments": ""})
                function = call.get("function") or {}
                entry["id"] = call.get("id") or entry["id"]
                entry["name"] = function.get("name") or entry["name"]
                entry["arguments"] += function.get("arguments") or ""
    seen.tool_calls = [calls[index] for index in sorted(calls)]
    return seen


def normal_json(pieces: str) -> str:
    """A streamed tool input as a whole one is logged (`json.dumps` of the object); kept as sent when
    it does not parse (a stream cut short)."""
    try:
        return json.dumps(json.loads(pieces or "{}"))
    except ValueError:
        return pieces


def observe_anthropic(response: Any, events: list[tuple[str | None, Any]]) -> Observed:
    seen = Observed()
    if isinstance(response, dict):
        seen.model = response.get("model")
        seen.usage = (
            anthropic_usage_record(response["usage"]) if isinstance(response.get("usage"), dict) else None
        )
        blocks = [block for block in response.get("content") or [] if block.get("type") == "tool_use"]
        seen.tool_calls = [
            {"id": b["id"], "name": b["name"], "arguments": json.dumps(b.get("input", {}))} for b in blocks
        ]
        return seen
    usage: dict[str, Any] = {}
    tools: dict[int, dict[str, str]] = {}
    for _, data in events:
        if not isinstance(data, dict):
            continue
        if data.get("type") == "message_start":
            seen.model = data["message"].get("model")
            usage.update(data["message"].get("usage") or {})
        elif data.get("type") == "message_delta":
            usage.update(
                {key: value for key, value in (data.get("usage") or {}).items() if value is not None}
            )
        elif data.get("type") == "content_block_start" and data["content_block"].get("type") == "tool_use":
            block = data["content_block"]
            tools[int(data["index"])] = {"id": block["id"], "name": block["name"], "arguments": ""}
        elif data.get("type") == "content_block_delta" and int(data.get("index", -1)) in tools:
            tools[int(data["index"])]["arguments"] += data["delta"].get("partial_json") or ""
    seen.usage = anthropic_usage_record(usage) if usage else None
    seen.tool_calls = [{**tools[i], "arguments": normal_json(tools[i]["arguments"])} for i in sorted(tools)]
    return seen


def observe(provider: str, response: Any, stream: str | None) -> Observed:
    events = parse_sse(stream) if stream is not None else []
    return (
        observe_anthropic(response, events) if provider == "anthropic" else observe_openai(response, events)
    )


# --- calls and answers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    number: int
    method: str
    path: str
    provider: str
    headers: dict[str, str]
    raw: bytes | None
    """The body as received; None when it was refused unread (too large)."""
    body: Any
    """The body parsed as JSON; None when it is empty or not JSON."""
    started: float

    @property
    def route(self) -> str:
        """The path without its query string."""
        return urlsplit(self.path).path or "/"


@dataclass
class Answer:
    status: int
    content_type: str
    chunks: Iterable[bytes]
    streamed: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    divergence: dict[str, Any] | None = None
    upstream: Any = None
    """The provider's response the chunks are read from (record mode), closed once the answer is sent."""


def json_answer(status: int, payload: Any, divergence: dict[str, Any] | None = None) -> Answer:
    return Answer(status, JSON, [json.dumps(payload).encode()], divergence=divergence)


def error_answer(call: Call, status: int, message: str, divergence: dict[str, Any] | None = None) -> Answer:
    return json_answer(status, error_body(call.provider, status, message), divergence)


def text_answer(status: int, content_type: str, text: str, streamed: bool) -> Answer:
    return Answer(status, content_type, [text.encode()], streamed=streamed)


def wants_stream(call: Call) -> bool:
    return isinstance(call.body, dict) and bool(call.body.get("stream"))


# --- mock ----------------------------------------------------------------------------------------------


def mock_answer(config: Config, call: Call) -> Answer:
    if call.method == "GET" and call.route == MODELS:
        models = sorted({response.model for response in config.responses if response.model}) or [
            DEFAULT_MODEL
        ]
        return json_answer(200, models_list(call.provider, models))
    if call.method != "POST" or call.route not in (OPENAI_CHAT, ANTHROPIC_MESSAGES):
        return error_answer(call, 404, f"the LLM proxy mocks no route {call.method} {call.path}")
    last = last_message_text(call.body)
    response = next((r for r in config.responses if r.matches(call.number, last)), None)
    if response is None:
        return error_answer(
            call, 500, f"no mock response matched call {call.number} (last message: {last[:VALUE_CUT]!r})"
        )
    if response.status >= 400:
        return error_answer(call, response.status, response.error or f"mock error {response.status}")
    reply = resolve(response, call)
    if call.route == ANTHROPIC_MESSAGES:
        if wants_stream(call):
            return text_answer(response.status, SSE, anthropic_stream(reply), streamed=True)
        return json_answer(response.status, anthropic_message(reply))
    if wants_stream(call):
        include_usage = bool((call.body.get("stream_options") or {}).get("include_usage"))
        return text_answer(response.status, SSE, openai_stream(reply, include_usage), streamed=True)
    return json_answer(response.status, openai_completion(reply))


def resolve(response: MockResponse, call: Call) -> Reply:
    """The response for this call: the request's model unless it names one, usage estimated unless given."""
    body = call.body if isinstance(call.body, dict) else {}
    output = response.content + "".join(tool.arguments for tool in response.tool_calls)
    usage = response.usage or {}
    return Reply(
        call=call.number,
        model=response.model or str(body.get("model") or DEFAULT_MODEL),
        content=response.content,
        tool_calls=response.tool_calls,
        input_tokens=usage.get(
            "input_tokens", estimate_tokens(text_of(body.get("system")) + text_of(body.get("messages")))
        ),
        output_tokens=usage.get("output_tokens", estimate_tokens(output)),
    )


# --- record ----------------------------------------------------------------------------------------------


def upstream_request(config: Config, call: Call) -> urllib.request.Request:
    """The agent's request for the provider: its own key in the provider's header, none of the agent's."""
    headers = {name: value for name, value in call.headers.items() if name in FORWARDED_HEADERS}
    headers["accept-encoding"] = "identity"
    key = config.keys.get(call.provider)
    if key and call.provider == "anthropic":
        headers["x-api-key"] = key
    elif key:
        headers["authorization"] = f"Bearer {key}"
    url = config.upstreams[call.provider].rstrip("/") + call.path
    return urllib.request.Request(url, data=call.raw or None, method=call.method, headers=headers)


def forward(config: Config, call: Call) -> Answer:
    """The provider's answer, its body read as it arrives (a stream is passed on chunk by chunk)."""
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ssl.create_default_context()))
    try:
        response = opener.open(upstream_request(config, call), timeout=UPSTREAM_TIMEOUT)
    except urllib.error.HTTPError as error:
        response = error
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return error_answer(call, 502, f"the LLM proxy could not reach {call.provider}: {reason}")
    content_type = response.headers.get("Content-Type", JSON)
    headers = {name: value for name, value in response.headers.items() if name.lower() not in HOP_BY_HOP}
    headers.pop("Content-Type", None)
    streamed = content_type.startswith(SSE)
    chunks = read_chunks(response) if streamed else [response.read()]
    return Answer(
        response.status, content_type, chunks, streamed=streamed, headers=headers, upstream=response
    )


def read_chunks(response: Any) -> Iterator[bytes]:
    while chunk := response.read1(65536):
        yield chunk


# --- replay ----------------------------------------------------------------------------------------------


def load_recording(path: str) -> dict[int, dict[str, Any]] | None:
    """The recorded exchanges by call number (lines are written as calls end, not always in order)."""
    try:
        with open(path, encoding="utf-8") as lines:
            exchanges = [json.loads(line) for line in lines if line.strip()]
    except FileNotFoundError:
        return None
    return {int(exchange["call"]): exchange for exchange in exchanges}


def replay_answer(recording: dict[int, dict[str, Any]] | None, config: Config, call: Call) -> Answer:
    route = f"{call.method} {call.path}"
    if recording is None:
        divergence = {"call": call.number, "path": "", "expected": "a recording", "got": route}
        return error_answer(call, 500, f"no recording at {config.recording_path}", divergence)
    if call.number not in recording:
        divergence = {"call": call.number, "path": "", "expected": "end of recording", "got": route}
        message = f"call {call.number} is beyond the end of the recording ({len(recording)} calls)"
        return error_answer(call, 500, message, divergence)
    recorded = recording[call.number]
    recorded_route = f"{recorded.get('method')} {recorded.get('path')}"
    if recorded_route != route:
        divergence = {"call": call.number, "path": "", "expected": recorded_route, "got": route}
        return error_answer(call, 500, f"call {call.number} was {recorded_route} when recorded", divergence)
    if recorded.get("truncated"):
        divergence = {
            "call": call.number,
            "path": "",
            "expected": "a complete recorded exchange",
            "got": "truncated",
        }
        return error_answer(call, 500, f"recorded call {call.number} was too large to keep", divergence)
    answer = recorded_answer(recorded)
    if recorded.get("request_hash") != body_hash(call.raw or b"", call.body):
        where, expected, got = first_difference(recorded.get("request"), call.body) or ("", "", "")
        answer.divergence = {"call": call.number, "path": where, "expected": expected, "got": got}
    return answer


def recorded_answer(recorded: dict[str, Any]) -> Answer:
    status, content_type = int(recorded["status"]), str(recorded.get("content_type") or JSON)
    if recorded.get("stream") is not None:
        return text_answer(status, content_type, recorded["stream"], streamed=True)
    response = recorded.get("response")
    text = response if isinstance(response, str) else json.dumps(response)
    return text_answer(status, content_type, text, streamed=False)


# --- the log -------------------------------------------------------------------------------------------


class ExchangeLog:
    """The log file: one JSON line per call, written whole under a lock; the provider keys never in it."""

    def __init__(self, path: str, secrets: Iterable[str]) -> None:
        self.path = path
        self.secrets = [secret for secret in secrets if secret]
        self.lock = threading.Lock()
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        open(path, "a").close()

    def write(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, sort_keys=True)
        for secret in self.secrets:
            line = line.replace(secret, "[redacted]")
        with self.lock, open(self.path, "a", encoding="utf-8") as out:
            out.write(line + "\n")
            out.flush()


def log_entry(mode: str, call: Call, answer: Answer, sent: bytes, complete: bool) -> dict[str, Any]:
    """The log line of a call, from the request and the answer's bytes as sent (`complete` False when
    they passed the logged limit)."""
    text = sent.decode("utf-8", errors="replace") if complete else None
    stream = text if answer.streamed else None
    response: Any = None
    if text is not None and not answer.streamed:
        try:
            response = json.loads(text) if text else None
        except ValueError:
            response = text
    seen = observe(call.provider, response, stream)
    request_kept = call.raw is not None and len(call.raw) <= LOGGED_REQUEST_LIMIT
    if request_kept and call.body is None and call.raw:
        request: Any = call.raw.decode("utf-8", errors="replace")
    else:
        request = call.body if request_kept else None
    error = response.get("error") if isinstance(response, dict) and answer.status >= 400 else None
    return {
        "call": call.number,
        "ts": call.started,
        "mode": mode,
        "provider": call.provider,
        "method": call.method,
        "path": call.path,
        "request": request,
        "request_hash": None if call.raw is None else body_hash(call.raw, call.body),
        "status": answer.status,
        "response": response,
        "stream": stream,
        "content_type": answer.content_type,
        "model": seen.model or (call.body.get("model") if isinstance(call.body, dict) else None),
        "usage": seen.usage,
        "tool_calls": seen.tool_calls,
        "latency_ms": round((time.time() - call.started) * 1000),
        "truncated": not complete or (call.raw is not None and not request_kept),
        "divergence": answer.divergence,
        "error": (error.get("message") if isinstance(error, dict) else error),
    }


# --- the proxy -------------------------------------------------------------------------------------------


class Proxy:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.log = ExchangeLog(config.log_path, config.keys.values())
        self.lock = threading.Lock()
        self.calls = 0
        self.recording: dict[int, dict[str, Any]] | None = None
        self.recording_loaded = False

    def next_call(self) -> int:
        with self.lock:
            number, self.calls = self.calls, self.calls + 1
            return number

    def replay_recording(self) -> dict[int, dict[str, Any]] | None:
        with self.lock:
            if not self.recording_loaded:
                self.recording, self.recording_loaded = load_recording(self.config.recording_path), True
            return self.recording

    def answer(self, call: Call) -> Answer:
        if call.raw is None:
            return error_answer(call, 413, f"request body over {BODY_LIMIT} bytes")
        if call.number >= self.config.max_calls:
            return error_answer(call, 429, f"the LLM proxy allows {self.config.max_calls} calls (max_calls)")
        if call.body is None and call.route in (OPENAI_CHAT, ANTHROPIC_MESSAGES):
            return error_answer(call, 400, "the request body is not valid JSON")
        try:
            if self.config.mode == "record":
                return forward(self.config, call)
            if self.config.mode == "replay":
                return replay_answer(self.replay_recording(), self.config, call)
            return mock_answer(self.config, call)
        except (
            Exception
        ) as error:  # a malformed recording or response: the agent gets an answer and a log line
            return error_answer(call, 500, f"the LLM proxy failed on call {call.number}: {error!r}")

    def logs(self, call: Call) -> bool:
        """Calls beyond `max_calls` are refused; only the first of them is logged, so a runaway agent
        cannot fill the disk."""
        return call.number <= self.config.max_calls


class ClientGone(Exception):
    """The client closed its connection before the end of its request: no call, nothing to answer."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "keystone-llm-proxy"
    timeout = CLIENT_TIMEOUT
    disable_nagle_algorithm = True
    proxy: Proxy

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self.handle_call
        raise AttributeError(name)

    def read_body(self) -> bytes | None:
        """The body, or None (unread, the connection closed after the answer) when it is over the limit."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self.read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length > BODY_LIMIT:
            self.discard(length)
            return None
        body = self.rfile.read(length) if length > 0 else b""
        if len(body) < length:
            raise ClientGone
        return body

    def discard(self, length: int) -> None:
        """Reads a refused body (up to a bound) so the client, still sending, gets the answer rather than
        a reset connection; the connection closes after the answer."""
        self.close_connection = True
        left = min(length, DISCARD_LIMIT)
        while left > 0 and (piece := self.rfile.read(min(left, 65536))):
            left -= len(piece)

    def read_chunked(self) -> bytes | None:
        chunks, total = [], 0
        while size := int(self.request_line().split(b";")[0].strip() or b"0", 16):
            total += size
            if total > BODY_LIMIT:
                self.close_connection = True
                return None
            chunks.append(self.rfile.read(size))
            self.request_line()
        while self.request_line() not in (b"\r\n", b"\n"):
            pass
        return b"".join(chunks)

    def request_line(self) -> bytes:
        line = self.rfile.readline(65537)
        if not line:
            raise ClientGone
        return line

    def handle_call(self) -> None:
        started = time.time()
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            raw = self.read_body()
        except (ClientGone, OSError, ValueError):  # gone, timed out, or a malformed chunk size
            self.close_connection = True
            return
        call = Call(
            number=self.proxy.next_call(),
            method=self.command.upper(),
            path=self.path,
            provider=provider_of(urlsplit(self.path).path, headers),
            headers=headers,
            raw=raw,
            body=parse_json(raw),
            started=started,
        )
        answer = self.proxy.answer(call)
        sent, complete = self.send_answer(answer)
        if self.proxy.logs(call):
            self.proxy.log.write(log_entry(self.proxy.config.mode, call, answer, sent, complete))

    def send_answer(self, answer: Answer) -> tuple[bytes, bool]:
        """Sends the answer (a stream chunked, each piece as it comes) and returns what was sent, up to
        the logged limit, and whether that is all of it."""
        kept: list[bytes] = []
        size = 0
        chunks = iter(answer.chunks)
        body = None if answer.streamed else b"".join(chunks)
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", answer.content_type)
        if body is None:
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache")
        else:
            self.send_header("Content-Length", str(len(body)))
            chunks = iter([body])
        try:
            self.end_headers()
            for chunk in filter(None, chunks):  # an empty chunk would end a chunked body
                size += len(chunk)
                if size <= LOGGED_RESPONSE_LIMIT:
                    kept.append(chunk)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if body is None else chunk)
                self.wfile.flush()
            if body is None:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client left, or the provider's stream broke off, before the end
            self.close_connection = True
        finally:
            if answer.upstream is not None:
                answer.upstream.close()
        return b"".join(kept), size <= LOGGED_RESPONSE_LIMIT

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}\n")


def parse_json(raw: bytes | None) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


class TlsServer(ThreadingHTTPServer):
    """HTTPS with the same handler: each connection's handshake runs on its own thread, so a client
    that stalls or refuses the certificate holds up no other."""

    def __init__(self, address: tuple[str, int], tls: Tls) -> None:
        super().__init__(address, Handler)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(tls.cert, tls.key)

    def get_request(self) -> tuple[Any, Any]:
        connection, address = super().get_request()
        return self.context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False), address

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(CLIENT_TIMEOUT)
        try:
            request.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            sys.stderr.write(f"TLS handshake with {client_address[0]} failed: {exc}\n")
            return
        super().finish_request(request, client_address)


def main() -> None:
    config = Config.load(json.loads(os.environ.get("KEYSTONE_LLM_CONFIG") or "{}"), dict(os.environ))
    Handler.proxy = Proxy(config)
    servers = [ThreadingHTTPServer(("0.0.0.0", config.port), Handler)]
    listening = f"port {config.port}"
    if config.tls is not None and os.path.exists(config.tls.cert):
        servers.append(TlsServer(("0.0.0.0", config.tls.port), config.tls))
        listening += f" and HTTPS on port {config.tls.port}"
    for server in servers:
        server.daemon_threads = True
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"{READY_MARKER} on {listening} ({config.mode}, {len(config.responses)} responses)", flush=True)
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
