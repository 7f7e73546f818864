"""Record and replay of model calls, in real sandboxes: an agent calls its model through a `type: llm`
service in record mode (the provider here is an in-sandbox HTTP mock, so the test is offline); the
failing replica's recording, given to `replay`, answers the same calls with no request reaching the
provider, the same tool calls, and the same verdict. A recording whose request differs says where."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from polarity_keystone.engine import PreparedSpec, RunOptions, prepare, replay, run_experiment
from polarity_keystone.results import ReplicaResult
from polarity_keystone.sandbox import DockerBackend, ImageResolver
from polarity_keystone.spec import load_spec

pytestmark = pytest.mark.docker

PROVIDER_KEY = "sk-upstream-0b7e1c9d4f"
"""The provider key, a spec secret: only the proxy may hold it, and no result may show it."""

COMPLETION = {
    "id": "chatcmpl-up",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_up_1",
                        "type": "function",
                        "function": {"name": "delete_order", "arguments": '{"order_id": 1042}'},
                    }
                ],
            },
        }
    ],
    "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55},
}

AGENT = """
import json, os, urllib.request

messages = [{"role": "user", "content": os.environ["KEYSTONE_TASK"]}]
trace = open(os.environ["KEYSTONE_TRACE_FILE"], "a")
for turn in range(2):
    body = {"model": "gpt-4o-mini", "messages": messages}
    request = urllib.request.Request(
        os.environ["OPENAI_BASE_URL"] + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"],
                 "Content-Type": "application/json"},
    )
    message = json.load(urllib.request.urlopen(request, timeout=30))["choices"][0]["message"]
    messages.append(message)
    for call in message.get("tool_calls") or []:
        event = {"event_type": "tool_call", "tool": call["function"]["name"], "phase": "end", "status": "ok",
                 "input": json.loads(call["function"]["arguments"])}
        trace.write(json.dumps(event) + "\\n")
        result = json.dumps({"deleted": turn})
        messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
trace.close()
print("key seen by the agent:", os.environ["OPENAI_API_KEY"])
"""

SPEC = """
version: 1
id: recorded-llm
base: ubuntu:24.04
task: {prompt: "Tidy up order 1042"}
agent: {type: cli, path: agent, command: python3 /opt/agent/agent.py}
setup: {packages: [python3]}
secrets:
  - {name: PROVIDER_KEY, source: "env:KS_TEST_PROVIDER_KEY"}
services:
  - name: provider
    type: http_mock
    record: true
    routes:
      - {method: POST, path: /v1/chat/completions, response: 'COMPLETION'}
  - name: llm
    type: llm
    llm:
      mode: record
      upstreams: {openai: "http://provider"}
      api_keys: {openai: PROVIDER_KEY}
invariants:
  answered: {check: {type: command_exit, command: "true"}}
forbidden:
  tool_calls: ["delete_.*"]
""".replace("COMPLETION", json.dumps(COMPLETION).replace("'", "''"))


@pytest.fixture(scope="module")
def recorded(
    tmp_path_factory: pytest.TempPathFactory, resolver: ImageResolver, backend: DockerBackend
) -> Iterator[tuple[PreparedSpec, ReplicaResult]]:
    """One replica of the spec, recorded (it fails: its model asks to delete an order, twice)."""
    folder = tmp_path_factory.mktemp("recorded-llm")
    (folder / "agent").mkdir()
    (folder / "agent" / "agent.py").write_text(AGENT)
    (folder / "spec.yaml").write_text(SPEC)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KS_TEST_PROVIDER_KEY", PROVIDER_KEY)
        prepared = prepare(load_spec(folder / "spec.yaml"), resolver)
        results = run_experiment(prepared, backend, RunOptions(replicas=1, seed=7))
        yield prepared, results.scenarios[0].replicas[0]


def _provider_calls(replica: ReplicaResult) -> list[dict[str, Any]]:
    return [e for e in replica.audit if e["type"] == "http_call" and e.get("service") == "provider"]


def _tool_calls(replica: ReplicaResult) -> list[tuple[str, str]]:
    return [(e["tool"], e["input"]) for e in replica.audit if e["type"] == "tool_call"]


def test_recording_forwards_with_the_providers_key_and_keeps_every_exchange(
    recorded: tuple[PreparedSpec, ReplicaResult],
) -> None:
    _, replica = recorded
    assert replica.status == "fail", replica.error
    assert any("delete_order" in reason for reason in replica.reasons)
    exchanges = replica.recordings["llm"]
    assert [e["call"] for e in exchanges] == [0, 1]
    assert [call["name"] for e in exchanges for call in e["tool_calls"]] == ["delete_order", "delete_order"]
    assert len(_provider_calls(replica)) == 2
    assert replica.cost is not None and (replica.cost.llm_calls, replica.cost.input_tokens) == (2, 100)
    assert "keystone-llm-proxy" in replica.agent_output  # the agent held a placeholder, not the key
    assert PROVIDER_KEY not in replica.model_dump_json()


def test_the_recorded_failure_replays_the_same_calls_with_no_provider(
    recorded: tuple[PreparedSpec, ReplicaResult], backend: DockerBackend
) -> None:
    prepared, original = recorded
    again = replay(
        prepared,
        backend,
        seed=original.seed,
        parameters={},
        fingerprint=prepared.fingerprint_id,
        recordings=original.recordings,
    )
    assert again.status == "fail" and again.reasons == original.reasons
    assert _tool_calls(again) == _tool_calls(original)
    assert _provider_calls(again) == []  # every answer came from the recording
    assert [e["type"] for e in again.audit if e["type"] == "llm_divergence"] == []
    assert [e["response"] for e in again.recordings["llm"]] == [
        e["response"] for e in original.recordings["llm"]
    ]


def test_a_request_that_differs_from_the_recording_is_reported_where_it_differs(
    recorded: tuple[PreparedSpec, ReplicaResult], backend: DockerBackend
) -> None:
    prepared, original = recorded
    edited = copy.deepcopy(original.recordings)
    first = edited["llm"][0]
    first["request"]["messages"][0]["content"] = "Tidy up order 1043"
    first["request_hash"] = "0" * 64  # as if the agent had sent another task the first time
    again = replay(prepared, backend, seed=original.seed, parameters={}, fingerprint=None, recordings=edited)
    (divergence,) = [e for e in again.audit if e["type"] == "llm_divergence"]
    assert divergence["call"] == 0 and divergence["service"] == "llm"
    assert divergence["path"] == "messages[0].content"
    assert "1043" in divergence["expected"] and "1042" in divergence["got"]
