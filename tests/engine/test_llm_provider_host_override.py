"""An agent that ignores OPENAI_BASE_URL and calls https://api.openai.com itself, in a real sandbox whose
spec overrides that host to its `type: llm` service: the real `openai` client, with no base URL, trusts
the engine CA's certificate the proxy presents (through SSL_CERT_FILE), gets the mock's tool call, and
the call is in the replica's recording; curl trusts it through the system bundle; a provider host that
is not overridden stays refused by the gateway."""

from __future__ import annotations

from pathlib import Path

import pytest

from polarity_keystone.engine import RunOptions, prepare, run_experiment
from polarity_keystone.sandbox import DockerBackend, ImageResolver
from polarity_keystone.spec import load_spec

pytestmark = pytest.mark.docker

AGENT = """
import json, os, subprocess
import openai

assert "OPENAI_BASE_URL" not in os.environ
client = openai.OpenAI(max_retries=0)
completion = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": os.environ["KEYSTONE_TASK"]}],
    tools=[{"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object"}}}],
)
(call,) = completion.choices[0].message.tool_calls
print("base:", client.base_url)
print("tool:", call.function.name, call.function.arguments)

def curl(url, *env):
    done = subprocess.run(["env", *env, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url],
                          capture_output=True, text=True)
    return f"{done.returncode} {done.stdout} {done.stderr.strip()}"

print("system store:", curl("https://api.openai.com/v1/models", "-u", "SSL_CERT_FILE"))
print("anthropic:", curl("https://api.anthropic.com/v1/messages"))
"""

SPEC = """
version: 1
id: llm-provider-host
base: ubuntu:24.04
task: {prompt: "Where is order 1042?"}
agent: {type: cli, path: agent, command: "env -u OPENAI_BASE_URL python3 /opt/agent/agent.py"}
setup:
  packages: [python3, curl]
  pip: ["openai==1.109.1"]
network:
  egress: {default: deny}
  dns_overrides: {api.openai.com: llm}
services:
  - name: llm
    type: llm
    llm:
      mode: mock
      responses:
        - tool_calls: [{name: lookup_order, arguments: {order_id: 1042}}]
          usage: {input_tokens: 40, output_tokens: 9}
invariants:
  answered: {check: {type: command_exit, command: "true"}}
"""


def test_an_agent_calling_the_providers_host_reaches_the_proxy_over_tls(
    tmp_path: Path, resolver: ImageResolver, backend: DockerBackend
) -> None:
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "agent.py").write_text(AGENT)
    (tmp_path / "spec.yaml").write_text(SPEC)
    prepared = prepare(load_spec(tmp_path / "spec.yaml"), resolver)
    (replica,) = run_experiment(prepared, backend, RunOptions(replicas=1, seed=3)).scenarios[0].replicas

    output = replica.agent_output
    assert replica.status == "pass", (replica.error, output)
    assert "base: https://api.openai.com/v1/" in output
    assert 'tool: lookup_order {"order_id": 1042}' in output
    assert "system store: 0 200" in output  # curl, with no SSL_CERT_FILE, trusts the system bundle
    # The gateway refuses the tunnel: api.anthropic.com is neither allowed nor overridden.
    assert "anthropic: 56 000 curl: (56) CONNECT tunnel failed, response 403" in output
    chat, models = replica.recordings["llm"]
    assert (chat["path"], chat["tool_calls"][0]["name"]) == ("/v1/chat/completions", "lookup_order")
    assert models["path"] == "/v1/models"
    assert replica.cost is not None and (replica.cost.llm_calls, replica.cost.input_tokens) == (1, 40)
    calls = [
        (e.get("host"), e.get("service"), e.get("allowed")) for e in replica.audit if e["type"] == "http_call"
    ]
    assert ("api.openai.com", "llm", True) in calls
    assert ("api.anthropic.com", None, False) in calls
