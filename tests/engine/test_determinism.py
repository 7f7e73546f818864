"""`determinism.clock`: the agent sees the spec's wall-clock time, frozen or running from it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from polarity_keystone.engine import PreparedSpec, RunOptions, run_experiment
from polarity_keystone.sandbox import DockerBackend

pytestmark = pytest.mark.docker

SPEC = """
version: 1
id: frozen-clock
base: ubuntu:24.04
task: {{prompt: "what time is it?"}}
agent:
  type: cli
  command: 'date -u +%FT%T; sleep 1.2; python3 -c "import time; print(int(time.time()))"'
determinism:
  clock: "2025-01-01T09:00:00Z"
  clock_runs: {runs}
invariants:
  ok: {{check: {{type: command_exit, command: "true"}}}}
"""

START = 1735722000  # 2025-01-01T09:00:00Z


def test_a_frozen_clock_stands_still_at_the_spec_time(
    prepared_from: Callable[..., PreparedSpec], backend: DockerBackend
) -> None:
    replica = run_experiment(prepared_from(SPEC.format(runs="false")), backend, RunOptions(seed=1))
    shown, epoch = replica.scenarios[0].replicas[0].agent_output.split()

    assert shown == "2025-01-01T09:00:00"
    assert int(epoch) == START, "a second later, the clock still reads the same"


def test_a_running_clock_starts_at_the_spec_time(
    prepared_from: Callable[..., PreparedSpec], backend: DockerBackend
) -> None:
    replica = run_experiment(prepared_from(SPEC.format(runs="true")), backend, RunOptions(seed=1))
    shown, epoch = replica.scenarios[0].replicas[0].agent_output.split()

    assert shown.startswith("2025-01-01T09:00:0")
    assert START + 1 <= int(epoch) < START + 30
