"""The hello-world example as a user runs it, `ks eval run` with `--output` and `--json`: one run, shared
by the assertions on what `ks` prints and writes and on the documented result shape."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from polarity_keystone.engine import PreparedSpec
from polarity_keystone.results import RunResults
from polarity_keystone.spec import collect_bundle
from tests.examples.shipped_examples import EXAMPLES
from tests.ks_command import run_ks

pytestmark = pytest.mark.docker

HELLO = EXAMPLES / "hello-world" / "hello.yaml"
SEED = 11


@dataclass(frozen=True)
class HelloRun:
    done: subprocess.CompletedProcess[str]
    output: Path

    def results(self) -> RunResults:
        return RunResults.model_validate_json(self.output.read_text())


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory) -> HelloRun:
    output = tmp_path_factory.mktemp("hello-world") / "out" / "results.json"
    args = ["eval", "run", str(HELLO), "--output", str(output), "--json", "--seed", str(SEED)]
    return HelloRun(run_ks([*args, "--replicas", "2", "--concurrency", "2"]), output)


def test_ks_exits_0_reports_on_stderr_and_keeps_stdout_for_the_json(hello: HelloRun) -> None:
    assert hello.done.returncode == 0, hello.done.stderr
    assert "hello-world" in hello.done.stderr
    assert f"results written to {hello.output}" in hello.done.stderr
    # stdout is the results document and nothing else: the report went to stderr.
    assert json.loads(hello.done.stdout) == json.loads(hello.output.read_text())


def test_the_results_file_is_written_atomically(hello: HelloRun) -> None:
    assert list(hello.output.parent.iterdir()) == [hello.output]  # no temp file left beside it


def test_replicas_on_the_command_line_override_the_spec(hello: HelloRun) -> None:
    results = hello.results()

    (scenario,) = results.scenarios
    assert scenario.replicas_total == len(scenario.replicas) == 2
    assert results.metrics.k == 2


def test_hello_world_passes_with_the_documented_result_shape(
    hello: HelloRun, example: Callable[[str], PreparedSpec]
) -> None:
    results = hello.results()

    assert results.schema_version == 1
    assert results.spec_id == "hello-world"
    assert results.seed == SEED
    assert results.experiment_id
    counts = (results.total_scenarios, results.passed, results.failed, results.flaky, results.errors)
    assert counts == (1, 1, 0, 0, 0)
    assert results.metrics.pass_rate == 1.0
    assert results.metrics.side_effect_violations == 0
    local = example("hello-world/hello.yaml")  # the served run also pins the bundle of the spec's files
    assert results.fingerprint == {**local.fingerprint, "bundle": collect_bundle(local.loaded).digest}
    assert results.spec_file.endswith("hello.yaml")
    (scenario,) = results.scenarios
    assert scenario.scenario_id == "hello-world"
    assert scenario.status == "pass"
    assert scenario.composite_score == 1.0
    assert scenario.replicas_passed == 2
    assert [(i.name, i.gate, i.weight, i.passed) for i in scenario.invariants] == [
        ("hello_file_exists", True, 1.0, True),
        ("hello_file_correct", False, 1.0, True),
    ]
    assert scenario.forbidden_checks == []
    for replica in scenario.replicas:
        assert replica.status == "pass"
        assert replica.exit_code == 0
        assert replica.reasons == []
        assert replica.reproducer is None
        assert replica.error is None
        assert "wrote hello.txt" in replica.agent_output
        assert replica.wall_ms >= replica.agent_ms > 0
