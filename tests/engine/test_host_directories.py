"""The directories of the server's machine a replica reads (what a cluster node is sent): the spec's,
the agent's code outside it and a git clone, none inside another; no directory for a spec that may name
no file (its spec_dir is only the server's working directory)."""

from __future__ import annotations

from pathlib import Path

from polarity_keystone.engine import PreparedSpec
from polarity_keystone.engine._fixtures import PreparedFixture
from polarity_keystone.sandbox import FixtureStep, ResolvedImage
from polarity_keystone.spec import parse_spec

SPEC = """
version: 1
id: dirs
base: "ubuntu:24.04"
task: {prompt: "Write hello.txt"}
agent: {type: cli, command: "true"}
invariants: {hello: {check: {type: file_exists, path: hello.txt}}}
"""
IMAGE = ResolvedImage("python:3.12-slim", "python:3.12-slim", "sha256:0")


def prepared(spec_dir: Path | None, agent_dir: Path | None, clones: list[Path]) -> PreparedSpec:
    loaded = parse_spec(SPEC, "dirs.yaml", spec_dir) if spec_dir else parse_spec(SPEC, local_paths=False)
    fixtures = [
        PreparedFixture(lambda services: FixtureStep(lambda sandbox: None, "clone"), "0" * 40, clone)
        for clone in clones
    ]
    return PreparedSpec(loaded, IMAGE, {}, agent_dir, fixtures=fixtures)


def test_the_spec_directory_holds_what_is_inside_it_and_the_rest_comes_along(tmp_path: Path) -> None:
    spec_dir, outside, clone = tmp_path / "bundle", tmp_path / "snapshot", tmp_path / "git" / "repo"
    for directory in (spec_dir / "agent", outside, clone):
        directory.mkdir(parents=True)

    assert prepared(spec_dir, spec_dir / "agent", [clone]).host_directories() == [spec_dir, clone]
    assert prepared(spec_dir, outside, []).host_directories() == [spec_dir, outside]


def test_a_spec_that_may_name_no_file_sends_no_spec_directory(tmp_path: Path) -> None:
    assert prepared(None, None, []).host_directories() == []
    assert prepared(None, tmp_path, []).host_directories() == [tmp_path]
