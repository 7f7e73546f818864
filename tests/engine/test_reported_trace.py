"""Events an agent reports over the API (stored for its sandbox) are scored with its trace file's: a
forbidden tool reported only over the API fails the run, and an event sent both ways counts once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from polarity_keystone.engine import PreparedSpec, replay
from polarity_keystone.sandbox import DockerBackend, Sandbox
from polarity_keystone.store import SqliteStore

pytestmark = pytest.mark.docker

AGENT = """
import json, os
with open(os.environ["KEYSTONE_TRACE_FILE"], "a") as trace:
    trace.write(json.dumps({"type": "tool_use", "id": "toolu_1", "name": "orders.lookup"}) + "\\n")
"""

SPEC = """
version: 1
id: reported
base: ubuntu:24.04
task: {prompt: "look up the order"}
agent: {type: cli, path: agent, command: python3 /opt/agent/agent.py}
invariants:
  done: {check: {type: command_exit, command: "true"}}
forbidden:
  tool_calls: ['deploy\\..*']
"""

REPORTED = [
    {"type": "tool_use", "id": "toolu_1", "name": "orders.lookup"},  # also in the file: counted once
    {"event_type": "tool_call", "tool": "deploy.prod", "phase": "end", "status": "error", "span_id": "s2"},
]


def test_events_in_the_store_are_scored_with_the_trace_file(
    prepared_from: Callable[..., PreparedSpec], backend: DockerBackend, tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "keystone.db")

    def report(sandbox: Sandbox) -> None:
        store.add_trace_events(sandbox.id, "key_test", REPORTED)

    prepared = prepared_from(SPEC, {"agent/agent.py": AGENT})
    replica = replay(
        prepared,
        backend,
        seed=1,
        parameters={},
        fingerprint=None,
        on_sandbox=report,
        reported_trace=store.trace_events,
    )

    (rule,) = replica.forbidden_checks
    assert rule.violated
    assert rule.details == "agent called forbidden tool(s) deploy.prod (1 call(s))"
    assert replica.status == "fail"
    assert replica.tool_calls == 2
    calls = [(e["tool"], e["status"]) for e in replica.audit if e["type"] == "tool_call"]
    assert calls == [("orders.lookup", "ok"), ("deploy.prod", "error")]
