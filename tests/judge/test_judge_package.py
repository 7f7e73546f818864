"""The judge package's chat and embeddings calls against the local fake model server: OpenAI's
parameters passed through, or translated to Anthropic's Messages API (system prompt, tools, a tool
call and its result in the history) and the answer translated back to a `chat.completion`; a missing
key is a value naming the variable, never an exception."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from polarity_keystone import judge
from polarity_keystone.judge import _client as judge_client
from tests.scoring.test_llm_judge import ENV_VARS, FakeModel

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Find an order",
            "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
        },
    }
]
HISTORY: list[dict[str, Any]] = [
    {"role": "system", "content": "You look up orders."},
    {"role": "user", "content": "Where is order A-17?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_9",
                "type": "function",
                "function": {"name": "lookup_order", "arguments": '{"id": "A-17"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_9", "content": "shipped"},
]


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeModel]:
    fake = FakeModel()
    for name in (*ENV_VARS, "KEYSTONE_EMBEDDING_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(judge_client, "BACKOFF", 0.01)
    yield fake
    fake.close()


def test_openai_chat_passes_the_parameters_through(model: FakeModel) -> None:
    env = {"OPENAI_API_KEY": "sk-o", "OPENAI_BASE_URL": model.url}
    model.answer('{"id": "A-17"}')
    reply = judge.chat(HISTORY, tools=TOOLS, tool_choice="required", temperature=0.3, max_tokens=50, env=env)
    assert isinstance(reply, dict)
    call = reply["choices"][0]["message"]["tool_calls"][0]
    assert (call["function"]["name"], json.loads(call["function"]["arguments"])) == (
        "lookup_order",
        {"id": "A-17"},
    )
    body = model.requests[-1].body
    assert body == {
        "model": "gpt-4o-mini",
        "messages": HISTORY,
        "temperature": 0.3,
        "max_tokens": 50,
        "tools": TOOLS,
        "tool_choice": "required",
    }


def test_anthropic_chat_is_translated_both_ways(model: FakeModel) -> None:
    env = {"ANTHROPIC_API_KEY": "sk-a", "ANTHROPIC_BASE_URL": model.url}
    model.answer('{"id": "A-18"}')
    forced = {"type": "function", "function": {"name": "lookup_order"}}
    reply = judge.chat(HISTORY, model="claude-3-5-haiku-latest", tools=TOOLS, tool_choice=forced, env=env)
    assert isinstance(reply, dict)
    assert reply["object"] == "chat.completion"
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me grade."
    assert choice["message"]["tool_calls"] == [
        {
            "id": "toolu_1",
            "type": "function",
            "function": {"name": "lookup_order", "arguments": '{"id": "A-18"}'},
        }
    ]
    assert reply["usage"] == {"prompt_tokens": 110, "completion_tokens": 12, "total_tokens": 122}
    body = model.requests[-1].body
    assert body["system"] == "You look up orders."
    assert body["tools"] == [
        {
            "name": "lookup_order",
            "description": "Find an order",
            "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}},
        }
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "lookup_order"}
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Where is order A-17?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_9", "name": "lookup_order", "input": {"id": "A-17"}}
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_9", "content": "shipped"}]},
    ]


def test_a_missing_key_is_a_value_naming_the_variable() -> None:
    missing = judge.chat([{"role": "user", "content": "hi"}], env={})
    assert missing == judge.MissingKey("openai", "gpt-4o-mini", "OPENAI_API_KEY")
    claude = judge.chat([{"role": "user", "content": "hi"}], model="claude-x", env={"OPENAI_API_KEY": "k"})
    assert isinstance(claude, judge.MissingKey) and claude.variable == "ANTHROPIC_API_KEY"
    assert judge.embed(["a"], env={"ANTHROPIC_API_KEY": "k"}) == judge.MissingKey(
        "openai", "text-embedding-3-small", "OPENAI_API_KEY"
    )


def test_embeddings_in_order_from_the_environment_or_explicit_arguments(model: FakeModel) -> None:
    env = {"OPENAI_API_KEY": "sk-o", "KEYSTONE_JUDGE_BASE_URL": model.url, "KEYSTONE_EMBEDDING_MODEL": "e-1"}
    vectors = judge.embed(["b", "cc"], env=env)
    assert isinstance(vectors, list)
    assert [vector[1:3] for vector in vectors] == [[2.0, 1.0], [1.0, 3.0]]
    assert model.requests[-1].body == {"model": "e-1", "input": ["b", "cc"]}
    judge.embed(["b"], model="e-2", base_url=model.url, api_key="sk-explicit", env={})
    assert model.requests[-1].headers["authorization"] == "Bearer sk-explicit"
    assert model.requests[-1].body["model"] == "e-2"


def test_a_provider_error_raises_judge_error_without_the_key(model: FakeModel) -> None:
    env = {"OPENAI_API_KEY": "sk-secret-77", "OPENAI_BASE_URL": model.url + "/nowhere"}
    with pytest.raises(judge.JudgeError) as raised:
        judge.chat([{"role": "user", "content": "hi"}], env=env)
    assert "HTTP 404" in str(raised.value) and "sk-secret-77" not in str(raised.value)
