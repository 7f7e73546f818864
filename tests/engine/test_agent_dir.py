"""The agent's code (`agent.path`) lands in /opt/agent owned by root, readable and runnable by the agent
user but not changeable, in a fresh sandbox and in a renewed one alike."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from polarity_keystone.engine import PreparedSpec, RunOptions, run_experiment
from polarity_keystone.sandbox import DockerBackend

pytestmark = pytest.mark.docker

SPEC = r"""
version: 1
id: agent-dir
base: ubuntu:24.04
task: {prompt: "look at your own code"}
agent: {type: cli, path: agent, command: "sh /opt/agent/probe.sh"}
invariants:
  root_owned_and_readable:
    check: {type: file_content, path: seen.txt, pattern: '\Aroot:root 755 agent\nhello\nread-only\n\Z'}
"""

PROBE = """
stat -c '%U:%G %a' /opt/agent | tr '\\n' ' ' > seen.txt
id -un >> seen.txt
cat /opt/agent/data.txt >> seen.txt
if touch /opt/agent/x 2>/dev/null || touch /opt/agent/data.txt 2>/dev/null; then echo writable >> seen.txt
else echo read-only >> seen.txt; fi
"""


def test_the_agent_code_is_root_owned_and_read_only_in_fresh_and_renewed_sandboxes(
    prepared_from: Callable[..., PreparedSpec], backend: DockerBackend
) -> None:
    prepared = prepared_from(SPEC, {"agent/probe.sh": PROBE, "agent/data.txt": "hello\n"})
    results = run_experiment(prepared, backend, RunOptions(replicas=3, concurrency=1))

    replicas = results.scenarios[0].replicas
    assert [r.status for r in replicas] == ["pass"] * 3, [r.invariants for r in replicas]
    assert any(r.renewed for r in replicas), "a renewed sandbox was checked too"
