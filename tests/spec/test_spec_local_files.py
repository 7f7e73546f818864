"""`local_files`: every local file a spec depends on, with the field that names it; and a guard that
every path-valued field of the spec model is known to be either such a file or a path elsewhere (inside
the sandbox, on the secret holder's machine, in a URL)."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from polarity_keystone.spec import SPEC_FILE_FIELD, LocalFile, Spec, load_spec, local_files
from polarity_keystone.spec._limits import SpecPath

LOCAL = {
    ("Agent", "path"),
    ("SqlFixture", "file"),
    ("DirectoryFixture", "source"),
    ("S3Fixture", "source"),
    ("GitRepoFixture", "url"),
    ("CustomCheck", "script"),
}
"""Fields that name a file or directory on the machine that runs the spec: `local_files` lists them."""
ELSEWHERE = {
    ("SetupFile", "path"),  # written in the sandbox, from the inline `content`
    ("DirectoryFixture", "path"),
    ("GitRepoFixture", "path"),
    ("FileExistsCheck", "path"),
    ("FileAbsentCheck", "path"),
    ("FileContentCheck", "path"),
    ("MockRoute", "path"),  # URL paths of the mock
    ("MockRequestAssertion", "path"),
    ("HttpMockAssertionsCheck", "path"),
    ("SecretScope", "file_template"),  # where the secret is written in the sandbox
    ("Secret", "source"),  # `file:…` on the secret holder's machine: a secret, never a file of the spec
    ("Forbidden", "file_writes_outside"),  # globs of sandbox paths
    ("LlmAsJudgeCheck", "prompt_template"),  # the judge's prompt, not a path
    ("LlmAsJudgeCheck", "template_key"),
}
PATH_LIKE = ("path", "file", "source", "script", "url", "dir", "template")

SPEC = """\
version: 1
id: every-kind
base: "ubuntu:24.04"
task: {prompt: do it}
agent: {type: cli, command: "true", path: agent}
services:
  - {name: db, image: "postgres:16"}
  - {name: store, type: s3}
fixtures:
  - {type: sql, service: db, file: data/seed.sql}
  - {type: directory, source: data/tree, path: /workspace/tree}
  - {type: s3, service: store, bucket: my-bucket, source: data/objects}
  - {type: git_repo, url: "file://repos/local"}
  - {type: git_repo, url: "https://example.com/remote.git"}
  - {type: git_repo, url: repos/plain}
setup:
  files: [{path: /workspace/notes.txt, content: hi}]
invariants:
  checked:
    check: {type: custom, script: checks/check.py}
  done:
    check: {type: file_exists, path: out.txt}
"""


def _annotations(annotation: Any) -> Iterator[Any]:
    yield annotation
    for argument in typing.get_args(annotation):
        yield from _annotations(argument)


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> Iterator[type[BaseModel]]:
    if model in seen:
        return
    seen.add(model)
    yield model
    for field in model.model_fields.values():
        for annotation in _annotations(field.annotation):
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                yield from _models(annotation, seen)


def _path_valued(model: type[BaseModel]) -> Iterator[str]:
    """Fields typed as a spec path, or text named like one."""
    for name, field in model.model_fields.items():
        spec_path = any(arg == SpecPath for arg in _annotations(field.annotation))
        textual = str in _annotations(field.annotation)
        if spec_path or (textual and any(word in PATH_LIKE for word in name.split("_"))):
            yield name


def test_every_path_valued_field_is_either_a_local_file_or_known_to_be_elsewhere() -> None:
    found = {(model.__name__, name) for model in _models(Spec, set()) for name in _path_valued(model)}
    assert found - LOCAL - ELSEWHERE == set(), "a new path-valued field: list it in local_files or ELSEWHERE"
    assert found >= LOCAL | ELSEWHERE  # the walk sees them all (nothing stale here)


def _tree(root: Path) -> None:
    for directory in ("agent", "data/tree", "data/objects", "repos/local", "repos/plain", "checks"):
        (root / directory).mkdir(parents=True)
    (root / "data" / "seed.sql").write_text("select 1;\n")
    (root / "checks" / "check.py").write_text("print('{}')\n")


def test_every_local_path_is_listed_with_its_field_relative_to_the_spec(tmp_path: Path) -> None:
    _tree(tmp_path)
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "every.yaml").write_text(SPEC.replace("path: agent", "path: ../agent"))
    (tmp_path / "every.yaml").write_text(SPEC)
    files = local_files(load_spec(tmp_path / "every.yaml"))
    assert files == [
        LocalFile(SPEC_FILE_FIELD, "every.yaml", "file"),
        LocalFile("agent.path", "agent", "directory"),
        LocalFile("fixtures[0].file", "data/seed.sql", "file"),
        LocalFile("fixtures[1].source", "data/tree", "directory"),
        LocalFile("fixtures[2].source", "data/objects", "directory"),
        LocalFile("fixtures[3].url", "repos/local", "directory"),
        LocalFile("fixtures[5].url", "repos/plain", "directory"),
        LocalFile("invariants.checked.check.script", "checks/check.py", "file"),
    ]


def test_paths_are_resolved_through_symlinks_and_may_lead_out_of_the_spec_dir(tmp_path: Path) -> None:
    """Listed after symlinks, relative to the spec's directory, even where they lead out of it (a loaded
    spec cannot, a spec put together otherwise may: the caller decides about those)."""
    _tree(tmp_path)
    (tmp_path / "linked").symlink_to(tmp_path / "agent")
    (tmp_path / "linked.yaml").write_text(SPEC.replace("path: agent", "path: linked"))
    loaded = load_spec(tmp_path / "linked.yaml")
    assert local_files(loaded)[1] == LocalFile("agent.path", "agent", "directory")
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "linked").symlink_to(tmp_path / "agent")
    elsewhere = dataclasses.replace(loaded, path=None, spec_dir=tmp_path / "suite")
    assert local_files(elsewhere)[0] == LocalFile("agent.path", "../agent", "directory")


def test_a_spec_without_local_paths_depends_on_its_file_only(tmp_path: Path) -> None:
    text = SPEC.split("services:")[0].replace(", path: agent", "") + (
        "invariants:\n  done:\n    check: {type: file_exists, path: out.txt}\n"
    )
    (tmp_path / "bare.yaml").write_text(text)
    assert local_files(load_spec(tmp_path / "bare.yaml")) == [LocalFile(SPEC_FILE_FIELD, "bare.yaml", "file")]
