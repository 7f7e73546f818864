"""The changed-paths filter (`changed-only`): in a real git checkout with two specs, a spec none of whose
files changed since the baseline's commit is not run and is reported unchanged; whenever the filter
cannot know (no baseline, no commit, a commit missing from a shallow clone, no git), every spec runs and a
note says why."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console

from polarity_keystone.gate._baseline import Baselines
from polarity_keystone.gate._changed import unchanged_specs
from polarity_keystone.results import RunResults
from polarity_keystone.spec import LoadedSpec, load_specs
from tests.examples.shipped_examples import EXAMPLES
from tests.gate.gate_env import gate
from tests.gate.gate_results import run

IDS = ("greeter-a", "greeter-b")


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def checkout(root: Path) -> str:
    """Two copies of the hello-world spec, each with its own agent dir, committed; returns the commit."""
    for spec_id in IDS:
        shutil.copytree(EXAMPLES / "hello-world", root / "specs" / spec_id)
        spec = root / "specs" / spec_id / "hello.yaml"
        spec.write_text(spec.read_text().replace("id: hello-world", f"id: {spec_id}"))
    (root / ".gitignore").write_text(".keystone/\nkeystone-*\nkeystone.env\nbase.json\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "specs")
    return git(root, "rev-parse", "HEAD")


def baseline(spec_id: str, commit: str) -> RunResults:
    """A gate run's results for the spec, tagged with the commit it ran on (as its experiment is)."""
    data = run({"default": "PP"}, spec_id=spec_id, experiment_id=f"exp-{spec_id}").model_dump(mode="json")
    return RunResults.model_validate({**data, "metadata": {"commit": commit} if commit else {}})


def specs(root: Path) -> list[LoadedSpec]:
    return load_specs([root / "specs" / spec_id / "hello.yaml" for spec_id in IDS])


def judge(root: Path, commits: dict[str, str]) -> tuple[dict[str, str], Baselines]:
    baselines = Baselines()
    for spec_id, commit in commits.items():
        baselines.add(spec_id, baseline(spec_id, commit), "file base.json")
    skipped = unchanged_specs(specs(root), baselines, root, Console(file=io.StringIO()))
    return skipped, baselines


def edit_agent(root: Path, spec_id: str) -> None:
    agent = root / "specs" / spec_id / "agent" / "agent.py"
    agent.write_text(agent.read_text() + "# tuned\n")


def test_only_specs_whose_files_changed_since_the_baseline_commit_are_kept(tmp_path: Path) -> None:
    commit = checkout(tmp_path)
    both = dict.fromkeys(IDS, commit)
    assert judge(tmp_path, both)[0] == both  # nothing changed: both skipped
    edit_agent(tmp_path, "greeter-b")  # uncommitted
    assert judge(tmp_path, both)[0] == {"greeter-a": commit}
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "tune b")
    assert judge(tmp_path, both)[0] == {"greeter-a": commit}  # committed since the baseline
    (tmp_path / "specs" / "greeter-a" / "agent" / "helper.py").write_text("")  # untracked, not ignored
    assert judge(tmp_path, both)[0] == {}
    (tmp_path / "specs" / "greeter-a" / "agent" / "helper.py").unlink()
    spec = tmp_path / "specs" / "greeter-a" / "hello.yaml"
    spec.write_text(spec.read_text() + "# a comment counts: the file changed\n")
    assert judge(tmp_path, both)[0] == {}
    spec.write_text(git(tmp_path, "show", f"{commit}:specs/greeter-a/hello.yaml") + "\n")
    (tmp_path / "README.md").write_text("unrelated\n")
    assert judge(tmp_path, both)[0] == {"greeter-a": commit}


def test_a_spec_runs_with_a_note_when_the_filter_cannot_know(tmp_path: Path) -> None:
    commit = checkout(tmp_path)
    skipped, baselines = judge(tmp_path, {"greeter-a": "", "greeter-b": "f" * 40})
    assert skipped == {}
    assert baselines.notes == {
        "greeter-a": [
            "changed-only could not apply, so it ran: the baseline records no commit (it did not come from"
            " a gate run in CI)"
        ],
        "greeter-b": [
            f"changed-only could not apply, so it ran: the baseline's commit {'f' * 12} is not in this clone"
            " (fetch it)"
        ],
    }
    skipped, baselines = judge(tmp_path, {"greeter-a": commit})
    assert skipped == {"greeter-a": commit}
    assert baselines.notes == {
        "greeter-b": ["changed-only could not apply, so it ran: there is no baseline to compare with"]
    }


def test_a_shallow_clone_runs_every_spec_and_asks_for_the_full_history(tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    origin.mkdir()
    first = checkout(origin)
    edit_agent(origin, "greeter-b")
    git(origin, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "tune b")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{origin}", str(clone)], check=True)
    skipped, baselines = judge(clone, dict.fromkeys(IDS, first))
    assert skipped == {}
    assert baselines.notes["greeter-a"] == [
        f"changed-only could not apply, so it ran: the baseline's commit {first[:12]} is not in this clone"
        " (this is a shallow clone: check out with fetch-depth: 0)"
    ]


def test_without_git_or_a_repository_every_spec_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commit = checkout(tmp_path)
    shutil.rmtree(tmp_path / ".git")
    skipped, baselines = judge(tmp_path, dict.fromkeys(IDS, commit))
    assert skipped == {}
    assert "git rev-parse failed: fatal: not a git repository" in baselines.notes["greeter-a"][0]
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    skipped, baselines = judge(tmp_path, dict.fromkeys(IDS, commit))
    assert skipped == {}
    assert baselines.notes["greeter-b"] == ["changed-only could not apply, so it ran: git is not installed"]


@pytest.mark.docker
def test_the_gate_runs_the_changed_spec_only_and_reports_the_other_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = checkout(tmp_path)
    monkeypatch.chdir(tmp_path)
    runs = [baseline(spec_id, commit).model_dump(mode="json") for spec_id in IDS]
    (tmp_path / "base.json").write_text(json.dumps(runs))
    edit_agent(tmp_path, "greeter-b")
    flags = ("--specs", "specs/*/hello.yaml", "--baseline", "file:base.json", "--replicas", "1")
    result = gate(tmp_path, {"GITHUB_OUTPUT": str(tmp_path / "out")}, *flags, "--changed-only")
    assert result.code == 0, result.log
    since = f"unchanged since {commit[:12]}, not re-run"
    assert f"greeter-a: {since}" in result.log
    assert "[greeter-b] experiment exp-" in result.log and "[greeter-a] experiment" not in result.log
    (skipped, ran) = result.results["verdict"]["specs"]
    assert (skipped["unchanged_since"], skipped["experiment_id"], skipped["scenarios"]) == (commit, "", [])
    assert ran["unchanged_since"] == "" and ran["outcome"] == "passed" and ran["experiment_id"]
    assert [run["spec_id"] for run in result.results["runs"]] == ["greeter-b"]
    summary = (tmp_path / "keystone-summary.md").read_text()
    assert f"| greeter-a | ⏭️ {since} |" in summary
    assert "1 spec(s) unchanged since the baseline, not re-run" in summary
    case = ET.fromstring(result.junit).find("testsuite[@name='greeter-a']/testcase")
    marked = case.find("skipped") if case is not None else None
    assert marked is not None and marked.get("message") == since
    assert (result.outputs["skipped"], result.outputs["passed"]) == ("1", "1")
    assert result.outputs["experiment-id"] == ran["experiment_id"]
