"""Every local path of a spec stays inside the spec's root and names a regular file or directory:
checked at validation (with file:line and field) and again where the files are read or copied."""

from __future__ import annotations

import io
import os
import tarfile
import threading
from pathlib import Path

import pytest

from polarity_keystone.sandbox import SandboxError
from polarity_keystone.sandbox._archive import tar_directory
from polarity_keystone.spec import LocalPathError, SpecError, confine, load_spec, read_regular

SPEC = """\
version: 1
id: paths
base: "debian:bookworm-slim"
task: {prompt: go}
agent: {type: cli, command: "true", path: AGENT}
services: [{name: db, image: "postgres:16"}, {name: files, type: s3}]
fixtures:
  - {type: sql, service: db, file: SQL}
  - {type: directory, source: DIRECTORY}
  - {type: s3, service: files, bucket: reports, source: OBJECTS}
  - {type: git_repo, url: REPO}
invariants:
  custom:
    check: {type: custom, script: SCRIPT}
"""
FIELDS = {
    "AGENT": ("agent.path", 5),
    "SQL": ("fixtures[0].file", 8),
    "DIRECTORY": ("fixtures[1].source", 9),
    "OBJECTS": ("fixtures[2].source", 10),
    "REPO": ("fixtures[3].url", 11),
    "SCRIPT": ("invariants.custom.check.script", 14),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A spec directory with a valid file or directory for every path field, and a host file beside it."""
    root = tmp_path / "specs"
    for directory in ("agent", "data", "repo"):
        (root / directory).mkdir(parents=True)
    (root / "schema.sql").write_text("CREATE TABLE t (id int);\n")
    (root / "check.py").write_text("print('{\"passed\": true}')\n")
    (tmp_path / "host-secret").write_text("host-password-1234\n")
    return root


def _load(root: Path, **paths: str) -> SpecError | None:
    values = {
        "AGENT": "agent",
        "SQL": "schema.sql",
        "DIRECTORY": "data",
        "OBJECTS": "data",
        "REPO": "repo",
        "SCRIPT": "check.py",
    }
    text = SPEC
    for name, value in {**values, **paths}.items():
        text = text.replace(name, repr(value))
    (root / "spec.yaml").write_text(text)
    try:
        load_spec(root / "spec.yaml")
    except SpecError as exc:
        return exc
    return None


def test_paths_inside_the_root_load(root: Path) -> None:
    assert _load(root) is None


@pytest.mark.parametrize("field", sorted(FIELDS))
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("/etc", "is an absolute path"),
        ("../host-secret", "leads out of the spec's directory with `..`"),
        ("link-out", "leads out of the spec's directory through a symlink"),
        ("dir-out/../host-secret", "leads out of the spec's directory through a symlink"),
    ],
)
def test_a_path_leaving_the_root_is_a_spec_error_at_its_line(
    root: Path, field: str, value: str, problem: str
) -> None:
    (root / "link-out").symlink_to(root.parent / "host-secret")
    (root.parent / "outside").mkdir()
    (root / "dir-out").symlink_to(root.parent / "outside")
    (root / "host-secret").write_text("a decoy inside the root, which text normalisation would check\n")

    error = _load(root, **{field: value})

    assert error is not None
    (issue,) = error.issues
    assert (issue.field, issue.line) == FIELDS[field]
    assert problem in issue.message and "host-password" not in str(error)


def test_a_git_file_url_is_a_local_path_too(root: Path) -> None:
    error = _load(root, REPO="file:///etc")

    assert error is not None and "`/etc` is an absolute path" in str(error)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda path: os.mkfifo(path), "is a FIFO (named pipe), not a regular file"),
        (lambda path: path.symlink_to("/dev/zero"), "leads out of the spec's directory through a symlink"),
    ],
)
def test_a_sql_file_must_be_a_regular_file(root: Path, make: object, problem: str) -> None:
    make(root / "odd.sql")  # type: ignore[operator]

    error = _load(root, SQL="odd.sql")

    assert error is not None and problem in str(error)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda path: os.mkfifo(path), "`pipe` in"),
        (lambda path: path.symlink_to("/dev/zero"), "`agent/pipe` is a symlink leading out"),
    ],
)
def test_an_agent_directory_with_a_fifo_or_a_link_out_is_refused_at_once(
    root: Path, make: object, problem: str
) -> None:
    make(root / "agent" / "pipe")  # type: ignore[operator]
    outcome: list[SpecError | None] = []
    loader = threading.Thread(target=lambda: outcome.append(_load(root)), daemon=True)

    loader.start()
    loader.join(timeout=10)

    assert outcome, "loading the spec hung on the agent directory"
    error = outcome[0]
    assert error is not None and problem in str(error)
    assert error.issues[0].field == "agent.path"


def test_without_a_root_every_local_path_is_refused(root: Path) -> None:
    with pytest.raises(LocalPathError, match="has no spec root"):
        confine(None, "agent", "directory")


def test_a_path_swapped_after_validation_is_caught_where_it_is_used(root: Path) -> None:
    assert confine(root, "agent", "directory") == (root / "agent").resolve()
    (root / "agent").rmdir()
    (root / "agent").symlink_to(root.parent)

    with pytest.raises(LocalPathError, match="through a symlink"):
        confine(root, "agent", "directory")


def test_the_archive_keeps_links_as_links_and_refuses_a_fifo(root: Path) -> None:
    agent = root / "agent"
    (agent / "run.py").write_text("print('hi')\n")
    (agent / "passwd").symlink_to("/etc/passwd")

    with tarfile.open(fileobj=io.BytesIO(tar_directory(str(agent))), mode="r") as archive:
        members = {member.name: member for member in archive}
        assert members["passwd"].issym() and members["passwd"].linkname == "/etc/passwd"
        assert members["passwd"].size == 0
        extracted = archive.extractfile(members["run.py"])
        assert extracted is not None and extracted.read() == b"print('hi')\n"

    os.mkfifo(agent / "pipe")
    with pytest.raises(SandboxError, match="is a FIFO"):
        tar_directory(str(agent))


def test_a_directory_gone_since_it_was_checked_is_not_copied_as_an_empty_one(root: Path) -> None:
    with pytest.raises(SandboxError, match=r"cannot copy .*/gone into the sandbox: cannot list .*/gone"):
        tar_directory(str(root / "gone"))


def test_reading_a_file_swapped_for_a_fifo_does_not_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "link").symlink_to(tmp_path / "pipe")

    with pytest.raises(LocalPathError, match="FIFO"):
        read_regular(tmp_path / "pipe")
    with pytest.raises(LocalPathError, match="cannot read"):
        read_regular(tmp_path / "link")
