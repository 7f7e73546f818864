"""`secrets[].scope.file_template`: the secret is written to a file in the sandbox (mode 600), and
with `scope.env: false` it is not in the agent's environment."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from polarity_keystone.engine import PreparedSpec, RunOptions, run_experiment
from polarity_keystone.sandbox import DockerBackend

pytestmark = pytest.mark.docker

KEY = "-----BEGIN KEY-----\nabc123secret\n-----END KEY-----"

SPEC = """
version: 1
id: secret-files
base: ubuntu:24.04
task: {prompt: "use the deploy key"}
agent:
  type: cli
  command: >-
    stat -c %a ~/.ssh/deploy_key; sha256sum < ~/.ssh/deploy_key | cut -c1-16;
    echo env=${DEPLOY_KEY:-unset}
secrets:
  - name: DEPLOY_KEY
    source: env:KS_TEST_DEPLOY_KEY
    scope: {env: false, file_template: ~/.ssh/deploy_key}
invariants:
  ok: {check: {type: command_exit, command: "test -s /home/agent/.ssh/deploy_key"}}
forbidden:
  file_writes_outside: []
"""


def test_a_secret_file_is_written_private_and_kept_out_of_the_env(
    prepared_from: Callable[..., PreparedSpec], backend: DockerBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KS_TEST_DEPLOY_KEY", KEY)

    replica = run_experiment(prepared_from(SPEC), backend, RunOptions(seed=1)).scenarios[0].replicas[0]

    mode, digest, env = replica.agent_output.split()
    assert mode == "600"
    assert digest == hashlib.sha256((KEY + "\n").encode()).hexdigest()[:16]
    assert env == "env=unset"
    assert replica.status == "pass", replica.reasons
    assert KEY not in replica.model_dump_json()
