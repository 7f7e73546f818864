"""Replay: one replica re-created from its seed fails (or passes) again, and a changed spec, agent
or matrix cell is refused unless forced."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from polarity_keystone.engine import (
    FingerprintMismatch,
    PreparedSpec,
    RunOptions,
    prepare,
    replay,
    run_experiment,
)
from polarity_keystone.results import RunResults
from polarity_keystone.sandbox import DockerBackend, ImageResolver
from polarity_keystone.spec import load_spec
from tests.examples.shipped_examples import EXAMPLES

pytestmark = pytest.mark.docker

FLAKY = EXAMPLES / "flaky-agent"
FLAKY_SEED = 1
"""Replicas 0 and 1 of this experiment seed pass and fail respectively."""

PrepareFrom = Callable[..., PreparedSpec]


def _copy_flaky(into: Path) -> Path:
    shutil.copytree(FLAKY, into / "flaky-agent")
    return into / "flaky-agent" / "flaky.yaml"


@pytest.fixture
def flaky_copy(tmp_path: Path) -> Path:
    """The flaky example in a temp dir, so a test can edit it; returns the spec path."""
    return _copy_flaky(tmp_path)


@pytest.fixture(scope="module")
def flaky_run(
    tmp_path_factory: pytest.TempPathFactory, resolver: ImageResolver, backend: DockerBackend
) -> tuple[PreparedSpec, RunResults]:
    """Two replicas of an untouched copy of the flaky example: the first passes, the second fails."""
    prepared = prepare(load_spec(_copy_flaky(tmp_path_factory.mktemp("flaky"))), resolver)
    results = run_experiment(prepared, backend, RunOptions(replicas=2, concurrency=2, seed=FLAKY_SEED))
    statuses = [r.status for r in results.scenarios[0].replicas]
    assert statuses == ["pass", "fail"], "FLAKY_SEED no longer gives a passing and a failing replica"
    return prepared, results


def test_replaying_a_failing_replica_fails_the_same_way(
    flaky_run: tuple[PreparedSpec, RunResults], backend: DockerBackend
) -> None:
    prepared, results = flaky_run
    failed = results.scenarios[0].replicas[1]
    reproducer = failed.reproducer
    assert reproducer is not None

    again = replay(
        prepared,
        backend,
        seed=reproducer.seed,
        replica=reproducer.replica,
        parameters=reproducer.parameters,
        fingerprint=reproducer.command.split("--fingerprint ")[1],
    )

    assert again.status == "fail"
    assert (again.seed, again.replica) == (failed.seed, failed.replica)
    assert again.agent_output == failed.agent_output == "total: 30\n"
    assert again.reasons == failed.reasons
    assert [(i.name, i.passed) for i in again.invariants] == [("answer_correct", False)]
    assert again.sandbox_id != failed.sandbox_id  # a fresh sandbox, not the old one
    assert again.reproducer is not None
    assert again.reproducer.seed == failed.seed


def test_replaying_a_passing_replica_passes(
    flaky_run: tuple[PreparedSpec, RunResults], backend: DockerBackend
) -> None:
    prepared, results = flaky_run
    passed = results.scenarios[0].replicas[0]

    again = replay(
        prepared, backend, seed=passed.seed, replica=0, parameters={}, fingerprint=prepared.fingerprint_id
    )

    assert again.status == "pass"
    assert again.agent_output == passed.agent_output == "total: 42\n"
    assert again.reproducer is None


def test_a_changed_spec_refuses_to_replay_unless_forced(
    flaky_run: tuple[PreparedSpec, RunResults],
    flaky_copy: Path,
    resolver: ImageResolver,
    backend: DockerBackend,
) -> None:
    _, results = flaky_run
    failed = results.scenarios[0].replicas[1]
    before = prepare(load_spec(flaky_copy), resolver)
    assert before.fingerprint_id == results.scenarios[0].replicas[1].reproducer.command.split()[-1]
    flaky_copy.write_text(flaky_copy.read_text().replace("sometimes gets it wrong", "often gets it wrong"))
    after = prepare(load_spec(flaky_copy), resolver)
    assert after.fingerprint_id != before.fingerprint_id

    with pytest.raises(FingerprintMismatch, match="--force") as refused:
        replay(after, backend, seed=failed.seed, replica=1, parameters={}, fingerprint=before.fingerprint_id)
    assert before.fingerprint_id in str(refused.value)
    assert after.fingerprint_id in str(refused.value)

    forced = replay(
        after,
        backend,
        seed=failed.seed,
        replica=1,
        parameters={},
        fingerprint=before.fingerprint_id,
        force=True,
    )
    assert forced.status == "fail"
    assert forced.agent_output == "total: 30\n"


def test_a_changed_agent_changes_the_fingerprint(flaky_copy: Path, resolver: ImageResolver) -> None:
    before = prepare(load_spec(flaky_copy), resolver)
    agent = flaky_copy.parent / "agent" / "flaky.py"
    agent.write_text(agent.read_text() + "\n# edited\n")

    after = prepare(load_spec(flaky_copy), resolver)

    assert after.fingerprint["spec_sha256"] == before.fingerprint["spec_sha256"]
    assert after.fingerprint["agent_digest"] != before.fingerprint["agent_digest"]
    assert after.fingerprint_id != before.fingerprint_id


def test_an_unchanged_spec_keeps_its_fingerprint(flaky_copy: Path, resolver: ImageResolver) -> None:
    first = prepare(load_spec(flaky_copy), resolver)
    second = prepare(load_spec(flaky_copy), resolver)

    assert first.fingerprint == second.fingerprint
    assert first.fingerprint_id == second.fingerprint_id


MATRIX_SPEC = """
version: 1
id: moody
base: "ubuntu:24.04"
task: {prompt: "write ok.txt when in a good mood"}
agent:
  type: cli
  command: 'if [ "$mode" = good ]; then echo ok > ok.txt; fi; echo "$mode"'
invariants:
  wrote_ok:
    check: {type: file_exists, path: ok.txt}
parallelism:
  matrix:
    mode: [good, bad]
"""


def test_replay_runs_the_matrix_cell_it_is_given(prepared_from: PrepareFrom, backend: DockerBackend) -> None:
    prepared = prepared_from(MATRIX_SPEC)

    bad = replay(prepared, backend, seed=5, parameters={"mode": "bad"}, fingerprint=prepared.fingerprint_id)
    good = replay(prepared, backend, seed=5, parameters={"mode": "good"}, fingerprint=prepared.fingerprint_id)

    assert (bad.status, bad.agent_output) == ("fail", "bad\n")
    assert (good.status, good.agent_output) == ("pass", "good\n")
    assert bad.reproducer is not None
    assert bad.reproducer.scenario_id == "moody[mode=bad]"
    assert bad.reproducer.parameters == {"mode": "bad"}


def test_replay_refuses_parameters_outside_the_matrix(
    prepared_from: PrepareFrom, backend: DockerBackend
) -> None:
    prepared = prepared_from(MATRIX_SPEC)

    with pytest.raises(FingerprintMismatch, match="--param mode="):
        replay(prepared, backend, seed=5, parameters={"mode": "ugly"}, fingerprint=None)
    with pytest.raises(FingerprintMismatch):
        replay(prepared, backend, seed=5, parameters={}, fingerprint=None)
