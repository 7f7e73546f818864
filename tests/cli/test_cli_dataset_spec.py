"""A spec whose scenarios are a server's dataset, run where there is no server: refused as invalid input
(exit 2), saying to run it through a server, instead of running scenarios it cannot know."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ks_command import run_ks

pytestmark = pytest.mark.docker

SPEC = """\
version: 1
id: words
base: "debian:bookworm-slim"
task: {prompt: "write the word"}
agent: {type: cli, command: 'echo "$word" > word.txt'}
invariants:
  wrote: {check: {type: file_content, path: word.txt, contains: alpha}}
parallelism: {dataset: {id: ds_words}}
"""


def test_replay_of_a_dataset_spec_says_to_run_it_through_a_server(tmp_path: Path) -> None:
    spec = tmp_path / "words.yaml"
    spec.write_text(SPEC)

    result = run_ks(["replay", str(spec), "--seed", "1", "--param", "word=alpha"], cwd=tmp_path)

    assert result.returncode == 2, result.stderr
    assert "parallelism.dataset" in result.stderr and "'ds_words'" in result.stderr
    assert "run it through a server" in result.stderr


def test_eval_run_of_a_spec_naming_a_dataset_the_store_lacks_is_invalid_input(tmp_path: Path) -> None:
    """The embedded server refuses the experiment (400): the spec's fault, exit 2, never an
    infrastructure error (3)."""
    spec = tmp_path / "words.yaml"
    spec.write_text(SPEC)

    result = run_ks(["eval", "run", str(spec)], cwd=tmp_path)

    assert result.returncode == 2, result.stderr
    assert "'ds_words' does not exist in this project" in result.stderr
