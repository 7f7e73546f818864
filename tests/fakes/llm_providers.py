"""A local server speaking the OpenAI chat-completions and Responses and the Anthropic messages HTTP APIs,
for the official `openai` and `anthropic` clients (`base_url=providers.openai_url` /
`providers.anthropic_url`).

Every answer asks for one tool call (`lookup_order`) and reports usage with cache and reasoning tokens,
whole or streamed as server-sent events the way the providers stream them. A request for the model
`bad-model` is answered 400 with the provider's error body. Azure OpenAI's chat-completions path (a
deployment's, `providers.azure_url`) answers as OpenAI's does.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOOL = "lookup_order"
TOOL_ARGUMENTS = '{"order_id": "A-17"}'
OPENAI_TOOL_CALL_ID = "call_fake_1"
ANTHROPIC_TOOL_USE_ID = "toolu_fake_1"
INPUT_TOKENS, OUTPUT_TOKENS, CACHED_TOKENS, CACHE_CREATION_TOKENS, REASONING_TOKENS = 120, 30, 80, 16, 12
BAD_MODEL = "bad-model"
AZURE_CHAT_PATH = re.compile(r"/openai/deployments/[^/]+/chat/completions(\?.*)?")


@dataclass(frozen=True)
class FakeProviders:
    port: int
    keys: list[str] = field(default_factory=list)
    """The key each request carried (`x-api-key`, or `Authorization` without `Bearer `), in order."""

    @property
    def openai_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def azure_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def fake_providers() -> Iterator[FakeProviders]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FakeProviders(server.server_address[1], server.keys)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _Server(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.keys: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    disable_nagle_algorithm = True  # headers and body go out in two writes: no delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the tests read no access log
        pass

    def do_POST(self) -> None:
        key = self.headers.get("x-api-key") or self.headers.get("Authorization", "").removeprefix("Bearer ")
        self.server.keys.append(key)
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        model = str(body.get("model", ""))
        if self.path == "/v1/chat/completions" or AZURE_CHAT_PATH.fullmatch(self.path):
            if model == BAD_MODEL:
                self._json(400, {"error": {"message": "unknown model", "type": "invalid_request_error"}})
            elif body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                chunks = [json.dumps(chunk) for chunk in openai_chunks(model, include_usage)]
                self._sse((None, data) for data in [*chunks, "[DONE]"])
            else:
                self._json(200, openai_completion(model))
        elif self.path == "/v1/responses":
            if model == BAD_MODEL:
                self._json(400, {"error": {"message": "unknown model", "type": "invalid_request_error"}})
            elif body.get("stream"):
                self._sse((event["type"], json.dumps(event)) for event in openai_response_events(model))
            else:
                self._json(200, openai_response(model))
        elif self.path == "/v1/messages":
            if model == BAD_MODEL:
                error = {"type": "invalid_request_error", "message": "unknown model"}
                self._json(400, {"type": "error", "error": error})
            elif body.get("stream"):
                self._sse((event["type"], json.dumps(event)) for event in anthropic_events(model))
            else:
                self._json(200, anthropic_message(model))
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: Iterable[tuple[str | None, str]]) -> None:
        """Server-sent events, each `data` one line, the body ending with the connection (or when the
        client closes it early)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for name, data in events:
                prefix = f"event: {name}\n" if name else ""
                self.wfile.write(f"{prefix}data: {data}\n\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client closed the stream before its end


def openai_usage() -> dict[str, Any]:
    return {
        "prompt_tokens": INPUT_TOKENS,
        "completion_tokens": OUTPUT_TOKENS,
        "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
        "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS},
        "completion_tokens_details": {"reasoning_tokens": REASONING_TOKENS},
    }


def openai_completion(model: str) -> dict[str, Any]:
    function = {"name": TOOL, "arguments": TOOL_ARGUMENTS}
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": OPENAI_TOOL_CALL_ID, "type": "function", "function": function}],
    }
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": openai_usage(),
    }


def openai_chunks(model: str, include_usage: bool) -> list[dict[str, Any]]:
    """The tool call's id and name in the first delta, its arguments in two pieces after it, and the
    usage in a last chunk without choices when the request asked for it."""
    half = len(TOOL_ARGUMENTS) // 2
    first = {
        "index": 0,
        "id": OPENAI_TOOL_CALL_ID,
        "type": "function",
        "function": {"name": TOOL, "arguments": ""},
    }
    deltas: list[tuple[dict[str, Any], str | None]] = [
        ({"role": "assistant", "content": None, "tool_calls": [first]}, None),
        ({"tool_calls": [{"index": 0, "function": {"arguments": TOOL_ARGUMENTS[:half]}}]}, None),
        ({"tool_calls": [{"index": 0, "function": {"arguments": TOOL_ARGUMENTS[half:]}}]}, None),
        ({}, "tool_calls"),
    ]
    base = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
    }
    chunks = [
        {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        for delta, finish in deltas
    ]
    if include_usage:
        chunks.append({**base, "choices": [], "usage": openai_usage()})
    return chunks


def openai_response(model: str, *, done: bool = True) -> dict[str, Any]:
    """A Responses API response: a text message, then a function call; in progress it has neither
    output nor usage yet."""
    message = openai_output_message(
        "completed", [{"type": "output_text", "text": "Looking it up.", "annotations": []}]
    )
    usage = {
        "input_tokens": INPUT_TOKENS,
        "input_tokens_details": {"cached_tokens": CACHED_TOKENS},
        "output_tokens": OUTPUT_TOKENS,
        "output_tokens_details": {"reasoning_tokens": REASONING_TOKENS},
        "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
    }
    return {
        "id": "resp_fake",
        "object": "response",
        "created_at": 1_700_000_000,
        "model": model,
        "status": "completed" if done else "in_progress",
        "output": [message, openai_function_call()] if done else [],
        "usage": usage if done else None,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }


def openai_output_message(status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "message", "id": "msg_fake", "status": status, "role": "assistant", "content": content}


def openai_function_call(arguments: str = TOOL_ARGUMENTS) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": "fc_fake",
        "call_id": OPENAI_TOOL_CALL_ID,
        "name": TOOL,
        "arguments": arguments,
        "status": "completed",
    }


def openai_response_events(model: str) -> list[dict[str, Any]]:
    """As the Responses API streams: `response.created`, a message item whose text part arrives as
    `response.output_text.delta`, a function call item whose arguments arrive in two
    `response.function_call_arguments.delta` pieces, and `response.completed` with the whole response
    and its usage."""
    half = len(TOOL_ARGUMENTS) // 2
    message = openai_output_message("in_progress", [])
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": openai_response(model, done=False)},
        {"type": "response.output_item.added", "output_index": 0, "item": message},
        {
            "type": "response.content_part.added",
            "item_id": "msg_fake",
            "output_index": 0,
            "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": []},
        },
        {
            "type": "response.output_text.delta",
            "item_id": "msg_fake",
            "output_index": 0,
            "content_index": 0,
            "delta": "Looking it up.",
        },
        {"type": "response.output_item.added", "output_index": 1, "item": openai_function_call("")},
        *(
            {
                "type": "response.function_call_arguments.delta",
                "item_id": "fc_fake",
                "output_index": 1,
                "delta": piece,
            }
            for piece in (TOOL_ARGUMENTS[:half], TOOL_ARGUMENTS[half:])
        ),
        {"type": "response.completed", "response": openai_response(model)},
    ]
    return [{**event, "sequence_number": number} for number, event in enumerate(events)]


def anthropic_usage() -> dict[str, Any]:
    return {
        "input_tokens": INPUT_TOKENS,
        "output_tokens": OUTPUT_TOKENS,
        "cache_read_input_tokens": CACHED_TOKENS,
        "cache_creation_input_tokens": CACHE_CREATION_TOKENS,
    }


def anthropic_message(model: str) -> dict[str, Any]:
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [
            {"type": "text", "text": "Looking the order up."},
            {
                "type": "tool_use",
                "id": ANTHROPIC_TOOL_USE_ID,
                "name": TOOL,
                "input": json.loads(TOOL_ARGUMENTS),
            },
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": anthropic_usage(),
    }


def anthropic_events(model: str) -> list[dict[str, Any]]:
    """As the messages API streams: the start with input usage, a text block, a tool_use block whose
    input arrives as JSON pieces, then the final output usage."""
    start = {**anthropic_message(model), "content": [], "stop_reason": None}
    start["usage"] = {**anthropic_usage(), "output_tokens": 1}
    tool_use = {"type": "tool_use", "id": ANTHROPIC_TOOL_USE_ID, "name": TOOL, "input": {}}
    return [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Looking it up."},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": tool_use},
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": TOOL_ARGUMENTS},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": OUTPUT_TOKENS},
        },
        {"type": "message_stop"},
    ]
