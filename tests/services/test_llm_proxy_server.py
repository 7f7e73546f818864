"""The LLM proxy server (sandbox/dockerfiles/llm_proxy/proxy.py) run as its own process and driven by the
official `openai` and `anthropic` clients: mock answers with tool calls (whole and streamed), record mode
against a fake provider (the real key goes upstream, never the agent's nor into the log), replay with the
provider gone (identical answers, divergences named by JSON path), the bounds, and the image."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

import polarity_keystone
from polarity_keystone.sandbox import ImageResolver
from tests.fakes.llm_providers import (
    CACHE_CREATION_TOKENS,
    CACHED_TOKENS,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    REASONING_TOKENS,
    TOOL,
    TOOL_ARGUMENTS,
    fake_providers,
)

PROXY = Path(polarity_keystone.__file__).parent / "sandbox" / "dockerfiles" / "llm_proxy" / "proxy.py"
READY_MARKER = "keystone: llm_proxy ready"
PLACEHOLDER = "keystone-llm-proxy"
OPENAI_KEY, ANTHROPIC_KEY = "sk-real-openai-0123456789", "sk-ant-real-0123456789"
LOOKUP = {"name": "lookup", "arguments": {"id": 1}}
OPENAI_TOOLS: Any = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
ANTHROPIC_TOOLS: Any = [{"name": "lookup", "input_schema": {"type": "object"}}]
ASK = "Where is my order?"
TOOL_RESULT = "status: shipped"
ANSWER = "Your order has shipped and arrives on Tuesday."
TOOL_LOOP = [{"match": {"contains": "shipped"}, "content": ANSWER}, {"tool_calls": [LOOKUP]}]


@dataclass(frozen=True)
class RunningProxy:
    url: str
    log_path: Path

    def log(self, calls: int) -> list[dict[str, Any]]:
        """The log once it has `calls` lines, in call order (a call's line is written after its answer is
        sent, so a call on another connection can be logged before it)."""
        deadline = time.monotonic() + 10
        while len(lines := self.log_path.read_text().splitlines()) < calls and time.monotonic() < deadline:
            time.sleep(0.02)
        return sorted((json.loads(line) for line in lines), key=lambda exchange: int(exchange["call"]))

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=PLACEHOLDER, max_retries=0)

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=PLACEHOLDER, max_retries=0)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").split(":")
        return host, int(port)

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        connection = http.client.HTTPConnection(*self.address, timeout=30)
        try:
            connection.request(
                "POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})}
            )
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_proxy(tmp_path: Path, name: str, config: dict[str, Any], **env: str) -> Iterator[RunningProxy]:
    """proxy.py as the container runs it, on a free local port, its log under tmp_path."""
    port = free_port()
    log_path = tmp_path / f"{name}.jsonl"
    config = {"port": port, "log_path": str(log_path), **config}
    environ = {**os.environ, "KEYSTONE_LLM_CONFIG": json.dumps(config), **env}
    process = subprocess.Popen(
        [sys.executable, "-u", str(PROXY)],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    try:
        assert READY_MARKER in process.stdout.readline()
        yield RunningProxy(f"http://127.0.0.1:{port}", log_path)
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


# --- mock ----------------------------------------------------------------------------------------------


def openai_loop(client: openai.OpenAI, stream: bool) -> list[tuple[str | None, list[tuple[str, str, str]]]]:
    """Call, answer the tool call with its result, call again; each turn's text and tool calls."""
    messages: list[Any] = [{"role": "user", "content": ASK}]
    turns = []
    for _ in range(2):
        if stream:
            text, calls = openai_streamed(client, messages)
        else:
            completion = client.chat.completions.create(
                model="gpt-4o-mini", messages=messages, tools=OPENAI_TOOLS
            )
            message = completion.choices[0].message
            assert completion.choices[0].finish_reason == ("tool_calls" if message.tool_calls else "stop")
            text = message.content
            calls = [
                (c.id, c.function.name, c.function.arguments)
                for c in message.tool_calls or []
                if c.type == "function"
            ]
        turns.append((text, calls))
        if calls:
            tool_calls = [
                {"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in calls
            ]
            messages.append({"role": "assistant", "content": None, "tool_calls": tool_calls})
            messages.append({"role": "tool", "tool_call_id": calls[0][0], "content": TOOL_RESULT})
    return turns


def openai_streamed(
    client: openai.OpenAI, messages: list[Any]
) -> tuple[str | None, list[tuple[str, str, str]]]:
    text, usage = "", None
    calls: dict[int, list[str]] = {}
    chunks = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=messages,
        tools=OPENAI_TOOLS,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in chunks:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, ["", "", ""])
                call[0] = delta.id or call[0]
                call[1] = (delta.function and delta.function.name) or call[1]
                call[2] += (delta.function and delta.function.arguments) or ""
    assert usage is not None and usage.completion_tokens > 0
    return text or None, [(i, n, a) for i, n, a in calls.values()]


def anthropic_loop(client: anthropic.Anthropic, stream: bool) -> list[tuple[str, list[tuple[str, str, Any]]]]:
    messages: list[Any] = [{"role": "user", "content": ASK}]
    turns = []
    for _ in range(2):
        arguments: Any = {
            "model": "claude-haiku",
            "max_tokens": 100,
            "messages": messages,
            "tools": ANTHROPIC_TOOLS,
        }
        if stream:
            with client.messages.stream(**arguments) as events:
                message = events.get_final_message()
        else:
            message = client.messages.create(**arguments)
        text = "".join(block.text for block in message.content if block.type == "text")
        calls = [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]
        assert message.stop_reason == ("tool_use" if calls else "end_turn")
        assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
        turns.append((text, calls))
        if calls:
            messages.append(
                {"role": "assistant", "content": [block.model_dump() for block in message.content]}
            )
            result = {"type": "tool_result", "tool_use_id": calls[0][0], "content": TOOL_RESULT}
            messages.append({"role": "user", "content": [result]})
    return turns


def test_mock_tool_loops_parse_with_the_official_clients_whole_and_streamed(tmp_path: Path) -> None:
    with running_proxy(tmp_path, "mock", {"mode": "mock", "responses": TOOL_LOOP}) as proxy:
        with proxy.openai() as client:
            whole, streamed = openai_loop(client, stream=False), openai_loop(client, stream=True)
        with proxy.anthropic() as client:
            anthropic_whole, anthropic_streamed = anthropic_loop(client, False), anthropic_loop(client, True)
        log = proxy.log(8)
    assert whole == [(None, [("call_0_0", "lookup", '{"id": 1}')]), (ANSWER, [])]
    assert streamed == [(None, [("call_2_0", "lookup", '{"id": 1}')]), (ANSWER, [])]
    assert anthropic_whole == [("", [("toolu_4_0", "lookup", {"id": 1})]), (ANSWER, [])]
    assert anthropic_streamed == [("", [("toolu_6_0", "lookup", {"id": 1})]), (ANSWER, [])]
    assert [(e["call"], e["provider"], e["status"], e["stream"] is not None) for e in log] == [
        (i, "openai" if i < 4 else "anthropic", 200, i in (2, 3, 6, 7)) for i in range(8)
    ]
    first = log[0]
    assert first["tool_calls"] == [{"id": "call_0_0", "name": "lookup", "arguments": '{"id": 1}'}]
    assert first["model"] == "gpt-4o-mini" and first["mode"] == "mock" and first["divergence"] is None
    # Usage defaults to characters / 4: the question's 18 characters, the 9 of `{"id": 1}`.
    assert first["usage"] == {
        "input_tokens": 5,
        "output_tokens": 3,
        "cache_read_tokens": 0,
        "reasoning_tokens": 0,
    }
    assert log[6]["tool_calls"] == [{"id": "toolu_6_0", "name": "lookup", "arguments": '{"id": 1}'}]
    assert log[7]["usage"]["output_tokens"] == (len(ANSWER) + 3) // 4
    assert all(e["request_hash"] and len(e["request_hash"]) == 64 for e in log)


def test_mock_matches_by_call_gives_usage_and_errors_in_the_provider_shape(tmp_path: Path) -> None:
    responses = [
        {"match": {"call": 0}, "status": 429, "error": "slow down"},
        {
            "match": {"call": 1, "contains": "hello"},
            "content": "hi",
            "usage": {"input_tokens": 12, "output_tokens": 3},
        },
        {"match": {"call": 2}, "content": "from the named model", "model": "mock-model-1"},
    ]
    hello: Any = [{"role": "user", "content": "hello there"}]
    with running_proxy(tmp_path, "errors", {"mode": "mock", "responses": responses}) as proxy:
        with proxy.openai() as client:
            with pytest.raises(openai.RateLimitError, match="slow down"):
                client.chat.completions.create(model="gpt-4o-mini", messages=hello)
            completion = client.chat.completions.create(model="gpt-4o-mini", messages=hello)
            named = client.chat.completions.create(model="gpt-4o-mini", messages=hello)
            with pytest.raises(openai.InternalServerError, match="no mock response matched call 3"):
                client.chat.completions.create(model="gpt-4o-mini", messages=hello)
            models = [model.id for model in client.models.list()]
        with proxy.anthropic() as anthropic_client:
            with pytest.raises(anthropic.InternalServerError, match=r"matched call 5.*hello there"):
                anthropic_client.messages.create(model="claude-haiku", max_tokens=10, messages=hello)
            with pytest.raises(anthropic.NotFoundError, match="no route"):
                anthropic_client.messages.count_tokens(model="claude-haiku", messages=hello)
        log = proxy.log(7)
    assert completion.choices[0].message.content == "hi"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 3)
    assert named.model == "mock-model-1"
    assert models == ["mock-model-1"]
    assert [(e["status"], e["error"]) for e in log][:2] == [(429, "slow down"), (200, None)]
    assert log[3]["status"] == 500 and "no mock response matched call 3" in log[3]["error"]
    assert log[5]["provider"] == "anthropic" and log[6]["status"] == 404


# --- record and replay -----------------------------------------------------------------------------------


def provider_calls(proxy: RunningProxy, anthropic_question: str = ASK) -> list[Any]:
    """One of each kind of call, each answer as something comparable; the last a provider error."""
    ask: Any = [{"role": "user", "content": ASK}]
    with proxy.openai() as client:
        whole = client.chat.completions.create(model="gpt-4o-mini", messages=ask).model_dump()
        streamed = openai_streamed(client, ask)
        with pytest.raises(openai.BadRequestError, match="unknown model") as refused:
            client.chat.completions.create(model="bad-model", messages=ask)
    changed: Any = [{"role": "user", "content": anthropic_question}]
    with proxy.anthropic() as anthropic_client:
        message = anthropic_client.messages.create(model="claude-haiku", max_tokens=50, messages=changed)
        with anthropic_client.messages.stream(model="claude-haiku", max_tokens=50, messages=ask) as events:
            final = events.get_final_message()
    return [whole, streamed, refused.value.status_code, message.model_dump(), final.model_dump()]


@dataclass(frozen=True)
class Recording:
    path: Path
    answers: list[Any]
    keys_upstream: list[str]


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    tmp_path = tmp_path_factory.mktemp("llm-record")
    keys = {"KEYSTONE_LLM_OPENAI_KEY": OPENAI_KEY, "KEYSTONE_LLM_ANTHROPIC_KEY": ANTHROPIC_KEY}
    with fake_providers() as upstream:
        base = f"http://127.0.0.1:{upstream.port}"
        config = {"mode": "record", "upstreams": {"openai": base, "anthropic": base}}
        with running_proxy(tmp_path, "record", config, **keys) as proxy:
            answers = provider_calls(proxy)
            proxy.log(5)
        return Recording(proxy.log_path, answers, list(upstream.keys))


def test_record_sends_the_real_key_upstream_streams_through_and_logs_usage(recording: Recording) -> None:
    assert recording.keys_upstream == [OPENAI_KEY] * 3 + [ANTHROPIC_KEY] * 2
    text = recording.path.read_text()
    assert OPENAI_KEY not in text and ANTHROPIC_KEY not in text
    whole, streamed, refused, message, final = recording.answers
    assert whole["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == TOOL_ARGUMENTS
    assert streamed == (None, [("call_fake_1", TOOL, TOOL_ARGUMENTS)])
    assert refused == 400
    assert message["content"][1]["input"] == final["content"][1]["input"] == json.loads(TOOL_ARGUMENTS)
    log = sorted((json.loads(line) for line in text.splitlines()), key=lambda exchange: int(exchange["call"]))
    assert [(e["mode"], e["status"], e["stream"] is not None) for e in log] == [
        ("record", 200, False),
        ("record", 200, True),
        ("record", 400, False),
        ("record", 200, False),
        ("record", 200, True),
    ]
    openai_usage = {
        "input_tokens": INPUT_TOKENS,
        "output_tokens": OUTPUT_TOKENS,
        "cache_read_tokens": CACHED_TOKENS,
        "reasoning_tokens": REASONING_TOKENS,
    }
    anthropic_input = INPUT_TOKENS + CACHED_TOKENS + CACHE_CREATION_TOKENS
    anthropic_usage = {**openai_usage, "input_tokens": anthropic_input, "reasoning_tokens": 0}
    assert [e["usage"] for e in log] == [openai_usage, openai_usage, None, anthropic_usage, anthropic_usage]
    assert log[2]["error"] == "unknown model"
    tools = [e["tool_calls"] for e in log]
    assert tools[0] == tools[1] == [{"id": "call_fake_1", "name": TOOL, "arguments": TOOL_ARGUMENTS}]
    anthropic_arguments = json.dumps(json.loads(TOOL_ARGUMENTS))
    assert tools[3] == tools[4] == [{"id": "toolu_fake_1", "name": TOOL, "arguments": anthropic_arguments}]
    assert log[1]["stream"].rstrip().endswith("data: [DONE]")


class HeldStream(BaseHTTPRequestHandler):
    """A provider that streams one chunk, then holds the rest until the test has seen that chunk."""

    protocol_version = "HTTP/1.1"
    seen_first = threading.Event()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self.wfile.write(self.chunk("first"))
        self.wfile.flush()
        self.wfile.write(self.chunk("released" if self.seen_first.wait(5) else "timed out"))
        self.wfile.write(b"data: [DONE]\n\n")

    @staticmethod
    def chunk(content: str) -> bytes:
        choices = [{"index": 0, "delta": {"content": content}}]
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": choices}
        return f"data: {json.dumps(chunk)}\n\n".encode()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_record_passes_a_stream_through_as_it_arrives(tmp_path: Path) -> None:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), HeldStream)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{upstream.server_address[1]}"
    try:
        with running_proxy(tmp_path, "held", {"mode": "record", "upstreams": {"openai": base}}) as proxy:
            with proxy.openai() as client:
                ask: Any = [{"role": "user", "content": ASK}]
                chunks = iter(client.chat.completions.create(model="m", messages=ask, stream=True))
                first = next(chunks).choices[0].delta.content
                HeldStream.seen_first.set()
                rest = [chunk.choices[0].delta.content for chunk in chunks]
            log = proxy.log(1)
    finally:
        upstream.shutdown()
        upstream.server_close()
        thread.join()
    assert (first, rest) == ("first", ["released"])
    assert log[0]["stream"].count("data: ") == 3


def test_replay_answers_from_the_recording_without_the_provider(recording: Recording, tmp_path: Path) -> None:
    config = {
        "mode": "replay",
        "recording_path": str(recording.path),
        "upstreams": {"openai": "http://127.0.0.1:9"},
    }
    with running_proxy(tmp_path, "replay", config) as proxy:
        answers = provider_calls(proxy, anthropic_question="Where is my parcel?")
        with (
            proxy.openai() as client,
            pytest.raises(openai.InternalServerError, match="end of the recording"),
        ):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": ASK}])
        log = proxy.log(6)
    assert answers == recording.answers
    assert [e["divergence"] for e in log[:3]] + [log[4]["divergence"]] == [None] * 4
    assert log[3]["divergence"] == {
        "call": 3,
        "path": "messages[0].content",
        "expected": ASK,
        "got": "Where is my parcel?",
    }
    assert log[5]["divergence"] == {
        "call": 5,
        "path": "",
        "expected": "end of recording",
        "got": "POST /v1/chat/completions",
    }
    assert log[1]["usage"]["reasoning_tokens"] == REASONING_TOKENS and log[0]["mode"] == "replay"


TRUNCATED = {"call": 0, "method": "POST", "path": "/v1/chat/completions", "truncated": True, "status": 200}
MALFORMED = {"call": 0, "method": "POST", "path": "/v1/chat/completions", "request_hash": "x"}


@pytest.mark.parametrize(
    ("recorded", "message", "divergence"),
    [
        (TRUNCATED, "recorded call 0 was too large to keep", ("a complete recorded exchange", "truncated")),
        (None, "no recording at", ("a recording", "POST /v1/chat/completions")),
        (MALFORMED, "the LLM proxy failed on call 0: KeyError('status')", None),
    ],
    ids=["truncated", "missing", "malformed"],
)
def test_replay_answers_500_without_a_complete_recorded_exchange(
    tmp_path: Path, recorded: dict[str, Any] | None, message: str, divergence: tuple[str, str] | None
) -> None:
    if recorded is not None:
        (tmp_path / "recording.jsonl").write_text(json.dumps(recorded) + "\n")
    config = {"mode": "replay", "recording_path": str(tmp_path / "recording.jsonl")}
    ask = json.dumps({"model": "m", "messages": [{"role": "user", "content": ASK}]}).encode()
    with running_proxy(tmp_path, "replay", config) as proxy:
        status, body = proxy.post("/v1/chat/completions", ask)
        (entry,) = proxy.log(1)
    assert status == 500 and body["error"]["type"] == "api_error"
    assert body["error"]["message"].startswith(message) and entry["error"] == body["error"]["message"]
    expected = (
        None
        if divergence is None
        else {"call": 0, "path": "", "expected": divergence[0], "got": divergence[1]}
    )
    assert entry["divergence"] == expected


# --- bounds ----------------------------------------------------------------------------------------------


def test_bounds_body_size_malformed_json_and_max_calls(tmp_path: Path) -> None:
    config = {"mode": "mock", "max_calls": 4, "responses": [{"content": "ok"}]}
    big = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 300_000}]}).encode()
    ask = json.dumps({"model": "m", "messages": [{"role": "user", "content": ASK}]}).encode()
    with running_proxy(tmp_path, "bounds", config) as proxy:
        # A client that opens a connection and sends half a request holds no one else up.
        with socket.create_connection(proxy.address) as stalled:
            stalled.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
            started = time.monotonic()
            assert proxy.post("/v1/chat/completions", big)[0] == 200
            assert time.monotonic() - started < 5
        statuses = [
            proxy.post("/v1/messages", b"{not json", {"anthropic-version": "2023-06-01"}),
            proxy.post("/v1/chat/completions", b" " * (4 * 1024 * 1024 + 1)),
            proxy.post("/v1/chat/completions", ask),
            proxy.post("/v1/chat/completions", ask),
            proxy.post("/v1/chat/completions", ask),
        ]
        log = proxy.log(5)
        time.sleep(0.2)  # a sixth line (the call after the first refused one) would be written by now
        assert len(proxy.log(5)) == 5
    assert [status for status, _ in statuses] == [400, 413, 200, 429, 429]
    assert statuses[0][1]["type"] == "error" and statuses[0][1]["error"]["type"] == "invalid_request_error"
    assert (
        "4 calls" in statuses[3][1]["error"]["message"]
        and statuses[3][1]["error"]["type"] == "rate_limit_error"
    )
    assert [(e["call"], e["status"]) for e in log] == [(0, 200), (1, 400), (2, 413), (3, 200), (4, 429)]
    assert log[0]["truncated"] is True and log[0]["request"] is None and log[0]["response"]["choices"]
    assert log[3]["truncated"] is False and log[3]["request"]["messages"][0]["content"] == ASK


# --- the image -------------------------------------------------------------------------------------------

CONTAINER_CALL = """
import json, urllib.request
body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
request = urllib.request.Request("http://127.0.0.1/v1/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
print(urllib.request.urlopen(request, timeout=10).read().decode())
"""


@pytest.mark.docker
def test_the_image_answers_a_mock_call_from_a_container(resolver: ImageResolver) -> None:
    image = resolver.local("llm_proxy")
    config = {"mode": "mock", "responses": [{"content": "from the container"}]}
    client = resolver.client
    container = client.containers.run(
        image.ref, detach=True, network_mode="none", environment={"KEYSTONE_LLM_CONFIG": json.dumps(config)}
    )
    try:
        deadline = time.monotonic() + 15
        while READY_MARKER not in container.logs().decode() and time.monotonic() < deadline:
            time.sleep(0.1)
        code, output = container.exec_run(["python3", "-c", CONTAINER_CALL])
        assert code == 0, output
        assert json.loads(output)["choices"][0]["message"]["content"] == "from the container"
        code, logged = container.exec_run(["cat", "/var/lib/keystone-llm/exchanges.jsonl"])
        assert code == 0 and json.loads(logged)["usage"]["output_tokens"] == 5
    finally:
        container.remove(force=True)
