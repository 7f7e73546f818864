"""The `ks` command line: exit codes (0 passed, 1 failed, 2 invalid input, 3 infrastructure), what it
prints and the result files it writes, run in-process through `main` and as the installed `ks`."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from polarity_keystone import cli
from polarity_keystone._version import __version__
from polarity_keystone.engine import fingerprint_id, replica_seed
from polarity_keystone.results import ReplicaResult
from tests.examples.shipped_examples import EXAMPLES
from tests.ks_command import REPO, run_ks

pytestmark = pytest.mark.docker

HELLO = EXAMPLES / "hello-world" / "hello.yaml"
SLOPPY = EXAMPLES / "sloppy-agent" / "sloppy.yaml"
FLAKY = EXAMPLES / "flaky-agent" / "flaky.yaml"

BROKEN_SPEC = """\
version: 1
id: broken
base: "ubuntu:24.04"
task: {prompt: "write a.txt"}
agent: {type: cli, command: "true"}
invariants:
  ok:
    check: {type: file_exists, paht: a.txt}
"""

TINY_SPEC = """\
version: 1
id: tiny
base: "ubuntu:24.04"
task: {prompt: "write a.txt"}
agent: {type: cli, command: "echo a > a.txt"}
invariants:
  ok:
    check: {type: file_exists, path: a.txt}
"""


@dataclass
class Outcome:
    code: int
    out: str
    err: str


@pytest.fixture
def ks(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run `ks ARGS...` in-process; a wide console keeps long paths on one line."""
    monkeypatch.setattr(cli, "err", Console(stderr=True, highlight=False, width=1000))

    def invoke(*args: str | Path) -> Outcome:
        capsys.readouterr()
        code = cli.main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return invoke


# --- version and spec validate --------------------------------------------------------------------


def test_version(ks) -> None:
    result = ks("--version")

    assert result.code == 0
    assert result.out.strip() == f"ks {__version__}"


def test_version_of_the_installed_script() -> None:
    done = run_ks(["--version"])

    assert done.returncode == 0
    assert done.stdout.strip() == f"ks {__version__}"


def test_validate_a_broken_spec_exits_2_and_points_at_the_line(ks, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN_SPEC)

    result = ks("spec", "validate", path)

    assert result.code == 2
    assert f"{path}:8:" in result.err
    assert "paht" in result.err
    assert "did you mean `path`?" in result.err


def test_validate_a_good_spec_exits_0(ks) -> None:
    result = ks("spec", "validate", HELLO, SLOPPY)

    assert result.code == 0
    assert f"ok {HELLO}" in result.err
    assert f"ok {SLOPPY}" in result.err


def test_validate_reports_every_broken_file_among_good_ones(ks, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN_SPEC)

    result = ks("spec", "validate", HELLO, broken, tmp_path / "missing.yaml")

    assert result.code == 2
    assert f"{broken}:8:" in result.err
    assert "missing.yaml" in result.err


def test_validate_as_a_subprocess_prints_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN_SPEC)

    done = run_ks(["spec", "validate", str(path)])

    assert done.returncode == 2
    assert re.search(rf"{re.escape(str(path))}:8:\d+: invariants\.ok\.check", done.stderr)


def test_unknown_flags_exit_2(ks) -> None:
    assert ks("eval", "run", HELLO, "--replicas", "0").code == 2
    assert ks("eval", "run", HELLO, "--no-such-flag").code == 2


# --- eval run (the shipped examples' runs are in tests/examples) ---------------------------------


def test_eval_run_of_several_specs_prints_a_json_list(ks, tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(TINY_SPEC)

    result = ks("eval", "run", HELLO, tiny, "--json")

    assert result.code == 0, result.err
    assert [run["spec_id"] for run in json.loads(result.out)] == ["hello-world", "tiny"]


def test_eval_run_with_a_failing_fixture_exits_3(ks, tmp_path: Path) -> None:
    spec = tmp_path / "bad-fixture.yaml"
    spec.write_text(
        TINY_SPEC
        + """\
services:
  - name: db
    image: postgres:16
fixtures:
  - type: sql
    service: db
    sql: "SELEKT 1;"
"""
    )

    result = ks("eval", "run", spec, "--json")

    assert result.code == 3
    document = json.loads(result.out)
    assert document["errors"] == 1
    assert "SELEKT" in document["scenarios"][0]["error"]


def test_eval_run_with_an_image_that_cannot_be_had_exits_3(ks, tmp_path: Path) -> None:
    spec = tmp_path / "no-image.yaml"
    spec.write_text(TINY_SPEC.replace('"ubuntu:24.04"', '"nosuchimage-keystone:1"'))

    result = ks("eval", "run", spec)

    assert result.code == 3
    assert "nosuchimage-keystone:1" in result.err


def test_eval_run_of_an_invalid_spec_exits_2_before_running(ks, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN_SPEC)

    result = ks("eval", "run", HELLO, broken)

    assert result.code == 2
    assert f"{broken}:8:" in result.err
    assert "hello-world" not in result.err  # nothing ran


def test_eval_run_with_an_undeclared_secret_exits_2(ks, tmp_path: Path) -> None:
    """A `{{ secrets.X }}` naming no declared secret is a mistake in the spec (SecretError is
    documented as an input error, exit 2), not an infrastructure failure (exit 3)."""
    spec = tmp_path / "undeclared.yaml"
    spec.write_text(
        TINY_SPEC.replace('command: "echo a > a.txt"', 'command: "true", env: {T: "{{ secrets.NOPE }}"}')
    )

    result = ks("eval", "run", spec)

    assert "NOPE" in result.err
    assert result.code == 2


# --- replay and the printed replay command --------------------------------------------------------


def test_replay_with_a_wrong_fingerprint_exits_2(ks) -> None:
    result = ks("replay", FLAKY, "--seed", "1", "--fingerprint", "0000000000000000")

    assert result.code == 2
    assert "refusing to replay" in result.err
    assert "--force" in result.err


def test_replay_refuses_a_run_whose_local_files_changed_and_names_them(
    ks, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run is on the embedded server under `.keystone/` (here: this test's own), which holds its
    bundle's manifest; a run it does not hold gets the refusal without the paths."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KEYSTONE_BASE_URL", raising=False)
    shutil.copytree(FLAKY.parent, tmp_path / "flaky-agent")
    spec = tmp_path / "flaky-agent" / "flaky.yaml"
    ran = ks("eval", "run", spec, "--seed", "1", "--replicas", "1", "--json")
    assert ran.code in (0, 1), ran.err
    then = fingerprint_id(json.loads(ran.out)["fingerprint"])
    data = tmp_path / "flaky-agent" / "data"
    (data / "input.txt").write_text((data / "input.txt").read_text() + "1\n")  # a fixture file
    (data / "more.txt").write_text("2\n")

    changed = ks("replay", spec, "--seed", "1", "--fingerprint", then)
    unknown = ks("replay", spec, "--seed", "1", "--fingerprint", "0000000000000000")

    assert changed.code == 2
    assert "refusing to replay" in changed.err
    assert "local files changed since that run: data/input.txt changed, data/more.txt added." in changed.err
    assert "--force" in changed.err
    assert unknown.code == 2
    assert "pins the spec's 3 local files" in unknown.err and "--force" in unknown.err


def test_the_printed_replay_command_of_a_flaky_failure_fails_again(
    ks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    # Seed 1: replica 0 of the flaky example passes, replica 1 fails.
    result = ks("eval", "run", FLAKY.relative_to(REPO), "--seed", "1", "--replicas", "2", "--json")
    assert result.code == 1  # flaky counts as failed
    document = json.loads(result.out)
    assert document["flaky"] == 1
    printed = re.findall(r"replay: (ks replay .*)", result.err)
    assert len(printed) == 1
    failed = ReplicaResult.model_validate(document["scenarios"][0]["replicas"][1])
    assert failed.status == "fail"
    assert failed.reproducer is not None
    assert printed[0].strip() == failed.reproducer.command

    argv = shlex.split(printed[0])
    assert argv[:3] == ["ks", "replay", "examples/flaky-agent/flaky.yaml"]
    done = run_ks([*argv[1:], "--json"], cwd=REPO)

    assert done.returncode == 1, done.stderr
    replayed = ReplicaResult.model_validate_json(done.stdout)
    assert replayed.status == "fail"
    assert replayed.seed == failed.seed
    assert replayed.agent_output == failed.agent_output


def test_replay_of_a_passing_seed_exits_0(ks) -> None:
    seed = replica_seed(1, "flaky-agent", 0)  # replica 0 of experiment seed 1 passes
    result = ks("replay", FLAKY, "--seed", str(seed), "--json")

    assert result.code == 0, result.err
    assert json.loads(result.out)["status"] == "pass"
    assert "replica passed" in result.err


def test_replay_with_a_parameter_outside_the_matrix_exits_2(ks) -> None:
    result = ks("replay", FLAKY, "--seed", "1", "--param", "mode=bad")

    assert result.code == 2


# --- cleanup --------------------------------------------------------------------------------------


def test_cleanup_exits_0(ks) -> None:
    # Without --all only orphans go, so sandboxes of other live runs on this engine are left alone.
    result = ks("cleanup")

    assert result.code == 0
    assert re.search(r"removed \d+ sandbox\(es\)", result.err)


def test_cleanup_as_a_subprocess() -> None:
    done = run_ks(["cleanup"])

    assert done.returncode == 0, done.stderr
    assert "removed" in done.stderr


def test_validate_of_a_missing_file_exits_2(tmp_path: Path) -> None:
    done = run_ks(["spec", "validate", str(tmp_path / "nope.yaml")])

    assert done.returncode == 2
    assert "nope.yaml" in done.stderr
    assert "cannot read the spec" in done.stderr


def test_ks_serve_refuses_a_spec_root_that_is_not_a_directory(tmp_path: Path) -> None:
    store = f"sqlite://{tmp_path / 'k.db'}"

    assert cli.main(["serve", "--spec-root", str(tmp_path / "missing"), "--store", store]) == 2
