"""Whose comment is whose, and when it is written: comment keys that keep matrix legs apart (and take over
a comment of the former job-name key), and comment-mode always / on-failure / on-change (real gate, fake
GitHub)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from polarity_keystone.gate import CiContext, Gate, GateReport, Marker, Policy, SpecRun, decide, resolve
from polarity_keystone.gate._report import write_report
from polarity_keystone.secrets import Redactor
from tests.gate.gate_env import gate, github_env
from tests.gate.gate_forges import Forge
from tests.gate.gate_results import run


@pytest.fixture
def broken(workdir: Path) -> str:
    """A spec with errors in the checkout: the gate stops before anything runs and comments that."""
    (workdir / "specs" / "broken.yaml").write_text("version: 1\nid: broken\n")
    return "specs/broken.yaml"


def _environ(workdir: Path, forge: Forge, run_id: str = "5", **extra: str) -> dict[str, str]:
    environ = github_env(
        workdir,
        run_id=run_id,
        GITHUB_API_URL=forge.base_url,
        GITHUB_WORKFLOW="Keystone CI",
        KEYSTONE_COMMENT_TOKEN="pat-alice",
    )
    return {**environ, **extra}


def _keys(forge: Forge) -> list[str]:
    return sorted(marker.key for c in forge.github.values() if (marker := Marker.parse(c["body"])))


def test_matrix_legs_keep_a_comment_each(workdir: Path, forge: Forge, broken: str) -> None:
    for python in ("3.11", "3.12", "3.11"):  # the third run is leg 3.11 again: it updates its comment
        environ = _environ(workdir, forge, KEYSTONE_MATRIX=json.dumps({"python": python, "os": "ubuntu"}))
        assert gate(workdir, environ, "--specs", broken).code == 2
    assert _keys(forge) == ["Keystone-CI/gate/3.11/ubuntu", "Keystone-CI/gate/3.12/ubuntu"]
    explicit = _environ(workdir, forge, KEYSTONE_MATRIX="null", KEYSTONE_COMMENT_KEY="mine")
    gate(workdir, explicit, "--specs", broken)
    assert "mine" in _keys(forge) and len(forge.github) == 3


def test_matrix_legs_get_run_keys_of_their_own(tmp_path: Path) -> None:
    def run_key(matrix: str) -> str | None:
        environ = {**github_env(tmp_path), "KEYSTONE_MATRIX": matrix}
        return Gate(resolve(None, environ), environ, Console(file=io.StringIO()), io.StringIO()).ci.run_key

    assert run_key("null") == "github:o/r:100:1:gate"
    assert run_key('{"python": "3.12"}') == "github:o/r:100:1:gate:3.12"
    assert run_key('{"python": "3.12"}') != run_key('{"python": "3.11"}')


def test_a_comment_of_the_former_job_name_key_is_taken_over(workdir: Path, forge: Forge, broken: str) -> None:
    former = forge.add_github(
        "alice", "<!-- keystone-gate key=gate order=4.1 -->\n### ✅ Keystone gate passed"
    )
    gate(workdir, _environ(workdir, forge), "--specs", broken)
    assert list(forge.github) == [former]
    assert _keys(forge) == ["Keystone-CI/gate"]
    assert "could not run" in forge.github[former]["body"]


def _verdict_file(workdir: Path, codes: str, run_number: int) -> Path:
    """A results JSON of run `run_number` whose one scenario ran `codes` (against an all-passing baseline)."""
    baseline = run({"s": "P" * 10})
    verdict = decide([SpecRun("spec", run({"s": codes}), baseline, "file base.json")], Policy())
    path = workdir / f"run-{run_number}.json"
    ci = CiContext(provider="github", job="gate", comment_key="gate", run_order=[run_number, 1])
    write_report(path, GateReport(verdict=verdict, ci=ci), Redactor({}))
    return path


def _publish(workdir: Path, forge: Forge, codes: str, run_number: int, mode: str) -> str:
    environ = _environ(workdir, forge, KEYSTONE_COMMENT_MODE=mode)
    result = gate(workdir, environ, "--from-results", str(_verdict_file(workdir, codes, run_number)))
    return result.log


def test_on_failure_comments_failures_and_updates_its_comment_when_passing_again(
    workdir: Path, forge: Forge
) -> None:
    log = _publish(workdir, forge, "P" * 10, 1, "on-failure")
    assert forge.github == {} and "comment-mode on-failure: passed, and no comment to update" in log
    _publish(workdir, forge, "F" * 10, 2, "on-failure")
    (comment,) = forge.github.values()
    assert "state=regressed" in comment["body"] and "❌" in comment["body"]
    _publish(workdir, forge, "P" * 10, 3, "on-failure")
    (comment,) = forge.github.values()
    assert "state=passed" in comment["body"] and "✅ Keystone gate passed" in comment["body"]


def test_on_change_writes_only_a_verdict_other_than_the_comments(workdir: Path, forge: Forge) -> None:
    _publish(workdir, forge, "F" * 10, 1, "on-change")
    (first,) = forge.github.values()
    writes = len(forge.writes())
    log = _publish(workdir, forge, "F" * 10, 2, "on-change")
    assert len(forge.writes()) == writes and "order=1.1" in first["body"]
    assert "comment-mode on-change: the comment already says regressed" in log
    _publish(workdir, forge, "P" * 10, 3, "on-change")
    (comment,) = forge.github.values()
    assert "state=passed" in comment["body"] and "order=3.1" in comment["body"]


def test_always_writes_every_verdict(workdir: Path, forge: Forge) -> None:
    _publish(workdir, forge, "P" * 10, 1, "always")
    _publish(workdir, forge, "P" * 10, 2, "always")
    (comment,) = forge.github.values()
    assert "order=2.1 state=passed" in comment["body"]


def test_a_huge_comment_key_is_cut_to_a_bounded_unique_marker() -> None:
    ci = CiContext(provider="github", job="gate")
    first = Marker.for_run(ci.model_copy(update={"comment_key": "leg-" + "x" * 5000 + "-a"}))
    second = Marker.for_run(ci.model_copy(update={"comment_key": "leg-" + "x" * 5000 + "-b"}))
    assert len(first.key) == 200 and first.key != second.key
    assert Marker.parse(first.render()) == Marker(first.key, first.order)
