"""`type: llm` services (the model proxy) in the spec: what loads, and what is rejected with the file,
line and field — a mock without answers, a mode only `ks replay` may set, an upstream that is no URL,
a provider key naming an undeclared secret."""

from __future__ import annotations

import pytest

from polarity_keystone.spec import SpecError, SpecIssue, parse_spec

VALID = """\
version: 1
id: llm-agent
base: "ubuntu:24.04"
task:
  prompt: Refund order 1042
agent:
  type: cli
  command: python3 agent.py
secrets:
  - name: OPENAI_KEY
    source: env
services:
  - name: llm
    type: llm
    llm:
      mode: mock
      responses:
        - match: {call: 0}
          tool_calls: [{name: lookup_order, arguments: {order_id: 1042}}]
        - match: {contains: refunded}
          content: Done.
          usage: {input_tokens: 120, output_tokens: 4}
        - status: 429
          error: slow down
invariants:
  done:
    check: {type: command_exit, command: "true"}
"""


def edited(old: str, new: str) -> str:
    assert old in VALID, old
    return VALID.replace(old, new)


def only_issue(text: str) -> SpecIssue:
    with pytest.raises(SpecError) as raised:
        parse_spec(text, filename="specs/llm.yaml")
    (issue,) = raised.value.issues
    assert issue.file == "specs/llm.yaml"
    return issue


def test_a_mock_model_service_loads_with_its_answers_and_default_upstreams() -> None:
    (service,) = parse_spec(VALID).spec.services
    assert service.llm is not None
    assert service.llm.mode == "mock"
    first, second, third = service.llm.responses
    assert first.match is not None and first.match.call == 0
    assert first.tool_calls[0].name == "lookup_order" and first.tool_calls[0].arguments == {"order_id": 1042}
    assert second.usage is not None and second.usage.output_tokens == 4
    assert (third.status, third.error) == (429, "slow down")
    assert service.llm.upstreams == {
        "openai": "https://api.openai.com",
        "anthropic": "https://api.anthropic.com",
    }


def test_record_mode_takes_an_upstream_and_a_declared_secret_as_the_key() -> None:
    text = edited(
        "      mode: mock\n",
        "      mode: record\n"
        "      upstreams: {openai: 'http://vllm:8000'}\n"
        "      api_keys: {openai: OPENAI_KEY}\n",
    )
    (service,) = parse_spec(text).spec.services
    assert service.llm is not None
    assert service.llm.upstreams["openai"] == "http://vllm:8000"
    assert service.llm.upstreams["anthropic"] == "https://api.anthropic.com"
    assert service.llm.api_keys == {"openai": "OPENAI_KEY"}


def test_a_mock_without_responses_is_refused() -> None:
    start = VALID.index("      responses:")
    text = VALID[:start] + VALID[VALID.index("invariants:") :]
    issue = only_issue(text)
    assert issue.field == "services[0].llm"
    assert "needs `responses`" in issue.message


def test_replay_mode_belongs_to_ks_replay_not_to_a_spec() -> None:
    issue = only_issue(edited("mode: mock", "mode: replay"))
    assert issue.field == "services[0].llm"
    assert "ks replay --recording" in issue.message


def test_an_upstream_must_be_an_http_url() -> None:
    issue = only_issue(
        edited("      mode: mock\n", "      mode: mock\n      upstreams: {openai: 'ftp://x'}\n")
    )
    assert issue.field == "services[0].llm.upstreams"
    assert "must be an http(s) URL" in issue.message


def test_a_provider_key_must_name_a_declared_secret() -> None:
    keys = "      mode: mock\n      api_keys: {openai: OPENAI_KYE}\n"
    issue = only_issue(edited("      mode: mock\n", keys))
    assert issue.field == "services[0].llm.api_keys.openai"
    assert issue.line == 17
    assert "OPENAI_KYE" in issue.message and issue.suggestion == "did you mean `OPENAI_KEY`?"


def test_the_llm_block_goes_with_type_llm_only() -> None:
    issue = only_issue(edited("    type: llm\n", "    image: postgres:16\n"))
    assert "type: llm" in issue.message
    issue = only_issue(edited("    llm:\n      mode: mock\n", "    xllm:\n      mode: mock\n"))
    assert issue.field.startswith("services[0]")
