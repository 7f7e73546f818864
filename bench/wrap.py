"""Overhead of `ks.wrap` per LLM call: prints figures for this machine, asserts nothing. No Docker needed.

    python bench/wrap.py [--calls N]

1. End to end: the real `openai` and `anthropic` clients call the local fake provider server of the
   tests (tests/fakes/llm_providers.py) `--calls` times each, unwrapped and wrapped, alternating call by
   call so drift on a shared machine hits both alike. Printed per case: median and p95 latency each way
   and the difference of the medians. On a busy machine the network noise can exceed the overhead.
2. The recording alone: a wrapped method answering a parsed response at once, against the same method
   unwrapped, so the figure is the wrapper's own cost (reading usage and tool calls, writing the event).
Wrapped calls write their `llm_call` event to a trace file (KEYSTONE_TRACE_FILE), as an agent in a
sandbox without a server key does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.fakes

import anthropic
import openai

from polarity_keystone.sdk import Keystone
from polarity_keystone.sdk._llm_wrappers import CallReader, instrument
from polarity_keystone.sdk._tracing import reset_tracing
from polarity_keystone.sdk._wrap_anthropic import patch_points as anthropic_points
from polarity_keystone.sdk._wrap_openai import patch_points as openai_points
from tests.fakes.llm_providers import TOOL, FakeProviders, fake_providers

MESSAGES = [{"role": "user", "content": "Where is order A-17?"}]
OPENAI_TOOLS = [{"type": "function", "function": {"name": TOOL, "parameters": {"type": "object"}}}]
ANTHROPIC_TOOLS = [{"name": TOOL, "input_schema": {"type": "object"}}]


def openai_client(providers: FakeProviders) -> Any:
    return openai.OpenAI(api_key="sk-fake", base_url=providers.openai_url, max_retries=0)


def anthropic_client(providers: FakeProviders) -> Any:
    return anthropic.Anthropic(api_key="sk-ant-fake", base_url=providers.anthropic_url, max_retries=0)


def openai_call(stream: bool) -> Callable[[Any], Any]:
    extra: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}

    def call(client: Any) -> Any:
        result = client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, tools=OPENAI_TOOLS, **extra
        )
        return list(result) if stream else result

    return call


def anthropic_call(stream: bool) -> Callable[[Any], Any]:
    def call(client: Any) -> Any:
        result = client.messages.create(
            model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES, tools=ANTHROPIC_TOOLS, stream=stream
        )
        return list(result) if stream else result

    return call


def openai_responses_call(stream: bool) -> Callable[[Any], Any]:
    tools = [{"type": "function", "name": TOOL, "parameters": {"type": "object"}}]

    def call(client: Any) -> Any:
        result = client.responses.create(
            model="gpt-4o-mini", input=MESSAGES[0]["content"], tools=tools, stream=stream
        )
        return list(result) if stream else result

    return call


def anthropic_stream_manager_call(client: Any) -> Any:
    with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES, tools=ANTHROPIC_TOOLS
    ) as stream:
        return stream.get_final_message()


CASES: dict[str, tuple[Callable[[FakeProviders], Any], Callable[[Any], Any]]] = {
    "openai chat.completions": (openai_client, openai_call(False)),
    "openai chat.completions stream": (openai_client, openai_call(True)),
    "anthropic messages": (anthropic_client, anthropic_call(False)),
    "anthropic messages stream": (anthropic_client, anthropic_call(True)),
    "openai responses": (openai_client, openai_responses_call(False)),
    "openai responses stream": (openai_client, openai_responses_call(True)),
    "anthropic messages.stream()": (anthropic_client, anthropic_stream_manager_call),
}


def timed(call: Callable[[Any], Any], client: Any) -> float:
    started = time.perf_counter()
    call(client)
    return (time.perf_counter() - started) * 1e6


def end_to_end(
    plain: Any, wrapped: Any, call: Callable[[Any], Any], calls: int
) -> tuple[list[float], list[float]]:
    for client in (plain, wrapped):  # warm the connections up
        call(client)
    plain_times: list[float] = []
    wrapped_times: list[float] = []
    for _ in range(calls):
        plain_times.append(timed(call, plain))
        wrapped_times.append(timed(call, wrapped))
    return plain_times, wrapped_times


def recording_alone(response: Any, reader: CallReader, calls: int) -> float:
    """µs per call that `instrument` adds to a method answering `response` at once (median of 5 runs)."""

    def answer(**_: Any) -> Any:
        return response

    wrapped = instrument(answer, reader)
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            answer(model="m")
        bare = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(calls):
            wrapped(model="m")
        runs.append((time.perf_counter() - started - bare) / calls * 1e6)
    return statistics.median(runs)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1000, help="calls per case and way (default 1000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, fake_providers() as providers:
        for name in ("KEYSTONE_API_KEY", "KEYSTONE_SANDBOX_ID", "POLARITY_SANDBOX_ID"):
            os.environ.pop(name, None)
        trace_file = Path(scratch) / "trace.jsonl"
        os.environ["KEYSTONE_TRACE_FILE"] = str(trace_file)
        reset_tracing()
        with Keystone(base_url="http://127.0.0.1:9") as ks:
            print(
                f"{'end to end':32} {'unwrapped µs p50 / p95':>24} {'wrapped µs p50 / p95':>24} {'overhead µs':>12}"
            )
            for name, (make, call) in CASES.items():
                with make(providers) as plain, ks.wrap(make(providers), auto_instrument=False) as wrapped:
                    plain_times, wrapped_times = end_to_end(plain, wrapped, call, args.calls)
                plain_p50, wrapped_p50 = statistics.median(plain_times), statistics.median(wrapped_times)
                print(
                    f"{name:32} {plain_p50:>12.0f} / {pct(plain_times, 0.95):<9.0f}"
                    f" {wrapped_p50:>12.0f} / {pct(wrapped_times, 0.95):<9.0f} {wrapped_p50 - plain_p50:>12.0f}"
                )
            with openai_client(providers) as client:
                completion = openai_call(False)(client)
            with anthropic_client(providers) as client:
                message = anthropic_call(False)(client)
            print(f"\n{'the recording alone':32} {'µs per call':>12}")
            for name, response, reader in (
                ("openai chat.completions", completion, openai_points()[0][2]),
                ("anthropic messages", message, anthropic_points()[0][2]),
            ):
                print(f"{name:32} {recording_alone(response, reader, args.calls):>12.1f}")
        events = len(trace_file.read_text().splitlines())
        print(f"\n{events} llm_call events written to the trace file")


if __name__ == "__main__":
    main()
