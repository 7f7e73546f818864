"""`ks replay --recording FILE`: the replica's model calls are read from a run's results (or one
replica's), picked by seed and replica number; a file that holds none says what it does hold, and the
command exits 2 before any sandbox starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polarity_keystone import exit_codes
from polarity_keystone.cli import main
from polarity_keystone.cli._recordings import RecordingError, load_recordings
from polarity_keystone.results import ReplicaResult, ScenarioResult

EXCHANGE = {"call": 0, "request_hash": "ab" * 32, "status": 200, "response": {"id": "chatcmpl-1"}}


def _replica(seed: int, replica: int, calls: list[dict[str, object]]) -> ReplicaResult:
    return ReplicaResult(replica=replica, seed=seed, status="fail", recordings={"llm": calls})


@pytest.fixture
def results_file(tmp_path: Path) -> Path:
    scenario = ScenarioResult(
        scenario_id="s",
        status="fail",
        replicas=[_replica(11, 0, []), _replica(12, 1, [EXCHANGE])],
    )
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"run_id": "r", "scenarios": [scenario.model_dump(mode="json")]}))
    return path


def test_the_replica_is_found_by_seed_and_number_in_a_runs_results(results_file: Path) -> None:
    assert load_recordings(results_file, seed=12, replica=1) == {"llm": [EXCHANGE]}


def test_one_replicas_results_serve_as_well(tmp_path: Path) -> None:
    path = tmp_path / "replica.json"
    path.write_text(_replica(5, 0, [EXCHANGE]).model_dump_json())
    assert load_recordings(path, seed=5, replica=0) == {"llm": [EXCHANGE]}


@pytest.mark.parametrize(
    ("seed", "replica", "message"),
    [
        (99, 0, "no replica with seed 99 and replica 0 (it has: seed 11 replica 0, seed 12 replica 1)"),
        (11, 0, "made no model calls through a `type: llm` service"),
    ],
)
def test_a_file_without_the_replicas_calls_says_what_it_holds(
    results_file: Path, seed: int, replica: int, message: str
) -> None:
    with pytest.raises(RecordingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_recordings(results_file, seed=seed, replica=replica)


def test_a_file_that_is_no_results_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(RecordingError, match="neither a run's results nor a replica's"):
        load_recordings(path, seed=1, replica=0)
    path.write_text("not json")
    with pytest.raises(RecordingError, match="is not JSON"):
        load_recordings(path, seed=1, replica=0)


def test_ks_replay_exits_2_on_a_bad_recording_before_any_sandbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = Path(__file__).resolve().parents[2] / "examples" / "hello-world" / "hello.yaml"
    missing = tmp_path / "missing.json"
    code = main(["replay", str(spec), "--seed", "1", "--recording", str(missing)])
    assert code == exit_codes.INVALID_INPUT
    assert "cannot replay the model calls" in capsys.readouterr().err
