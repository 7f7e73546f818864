"""`ks gate` sends each spec's local files as a bundle: a file a bundle cannot hold is invalid input, named
by spec file and field, before anything is uploaded or run."""

from __future__ import annotations

import os
from pathlib import Path

from tests.gate.gate_env import gate


def test_a_symlink_leading_out_of_the_spec_directory_is_invalid_input_naming_file_and_field(
    workdir: Path,
) -> None:
    (workdir / "secret.txt").write_text("not the spec's\n")
    os.symlink(workdir / "secret.txt", workdir / "specs" / "agent" / "escape.txt")

    result = gate(workdir, {}, "--specs", "specs/hello.yaml")

    assert result.code == 2
    assert "specs/hello.yaml:10:3: agent.path: `agent/escape.txt` is a symlink leading out" in result.log
    assert not (workdir / ".keystone").exists()  # refused before the embedded server started


def test_a_path_through_dot_dot_is_invalid_input_with_the_fix(workdir: Path) -> None:
    spec = workdir / "specs" / "hello.yaml"
    spec.write_text(spec.read_text().replace("path: agent", "path: agent/../agent"))

    result = gate(workdir, {}, "--specs", "specs/hello.yaml")

    assert result.code == 2
    assert result.log.startswith("specs/hello.yaml: agent.path: `agent/../agent`: a path has no `..`")
    assert "move the files under it, or the spec file up to a directory that holds them" in result.log
    assert not (workdir / ".keystone").exists()
