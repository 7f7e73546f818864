"""`git_repo` fixtures: cloned once on the host at the commit asked for, copied into every sandbox,
the commit recorded in the run's fingerprint."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from polarity_keystone.engine import PreparedSpec, RunOptions, run_experiment
from polarity_keystone.sandbox import DockerBackend, FixtureError

pytestmark = pytest.mark.docker


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> dict[str, str]:
    """A repository with a tagged first commit and a second commit on main; returns the commit ids."""
    path = tmp_path / "upstream"
    path.mkdir()
    git(path, "init", "--quiet", "--initial-branch=main")
    git(path, "config", "user.email", "ci@example.com")
    git(path, "config", "user.name", "CI")
    (path / "version.txt").write_text("one\n")
    git(path, "add", ".")
    git(path, "commit", "--quiet", "-m", "one")
    git(path, "tag", "v1")
    first = git(path, "rev-parse", "HEAD")
    (path / "version.txt").write_text("two\n")
    git(path, "commit", "--quiet", "-am", "two")
    return {"first": first, "second": git(path, "rev-parse", "HEAD")}


SPEC = """
version: 1
id: git-fixture
base: ubuntu:24.04
task: {{prompt: "report the version"}}
agent: {{type: cli, command: "cat src/version.txt; git -C src rev-list --count HEAD"}}
fixtures:
  - {{type: git_repo, url: upstream, path: src{extra}}}
invariants:
  ok: {{check: {{type: file_exists, path: src/version.txt}}}}
"""


@pytest.mark.parametrize(
    ("extra", "version", "commit", "history"),
    [
        pytest.param("", "two", "second", "2", id="default branch, full history"),
        pytest.param(", branch: v1", "one", "first", "1", id="a tag"),
        pytest.param(", depth: 1", "two", "second", "1", id="shallow"),
    ],
)
def test_the_repository_lands_in_the_sandbox_at_the_asked_revision(
    prepared_from: Callable[..., PreparedSpec],
    backend: DockerBackend,
    repo: dict[str, str],
    extra: str,
    version: str,
    commit: str,
    history: str,
) -> None:
    prepared = prepared_from(SPEC.format(extra=extra))

    results = run_experiment(prepared, backend, RunOptions(replicas=2, concurrency=2, seed=1))

    assert prepared.fingerprint["git_commits"] == {"0": repo[commit]}
    for replica in results.scenarios[0].replicas:
        assert replica.status == "pass", replica.error
        assert replica.agent_output.split() == [version, history]


def test_a_commit_sha_can_be_checked_out(
    prepared_from: Callable[..., PreparedSpec], backend: DockerBackend, repo: dict[str, str]
) -> None:
    # Quoted, as a spec must: an unquoted sha of digits (or digits and one `e`) is a YAML number.
    prepared = prepared_from(SPEC.format(extra=f", branch: '{repo['first'][:12]}'"))

    replica = run_experiment(prepared, backend, RunOptions(seed=1)).scenarios[0].replicas[0]

    assert replica.agent_output.split()[0] == "one"


def test_an_unknown_revision_fails_before_any_sandbox_with_gits_message(
    prepared_from: Callable[..., PreparedSpec], repo: dict[str, str]
) -> None:
    with pytest.raises(FixtureError) as failure:
        prepared_from(SPEC.format(extra=", branch: no-such-branch"))

    assert "no-such-branch" in failure.value.output
