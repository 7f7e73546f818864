"""A node's copies of the servers' directories do not pile up: one no replica used for the hours the
operator keeps them is removed (at the actor's start, then hourly, as replicas start), one a replica
reads is kept however old, nothing the node did not make is touched, and a removed copy is made again
when an experiment needs it. No Ray here: the packs are the tar bytes themselves."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from polarity_keystone.cluster._files import (
    COLLECT_EVERY_S,
    DEFAULT_KEPT_HOURS,
    KEPT_HOURS_ENV,
    NodeFiles,
    PackedDirectory,
    kept_seconds,
)
from polarity_keystone.sandbox import SandboxError, tar_directory

KEPT_S = 600.0


class Clock:
    """The wall clock moved on by `advance`: the registry's mtimes are real ones."""

    def __init__(self) -> None:
        self.ahead_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead_s

    def advance(self, seconds: float) -> None:
        self.ahead_s += seconds


def packed(source: Path, at: Path) -> PackedDirectory:
    tar = tar_directory(str(source))
    return PackedDirectory(str(at), hashlib.sha256(tar).hexdigest(), len(tar), tar)


def node_files(tmp_path: Path, clock: Clock) -> NodeFiles:
    return NodeFiles(tmp_path / "registry", KEPT_S, fetch=bytes, clock=clock)


def source_dir(tmp_path: Path, name: str, text: str) -> Path:
    source = tmp_path / "server" / name
    source.mkdir(parents=True)
    (source / "file.txt").write_text(text)
    return source


def ensure(files: NodeFiles, *directories: PackedDirectory) -> None:
    with files.held(directories):
        pass


def test_a_copy_unused_for_longer_than_kept_is_removed_and_made_again_when_needed(tmp_path: Path) -> None:
    clock = Clock()
    files = node_files(tmp_path, clock)
    old = packed(source_dir(tmp_path, "old", "one"), tmp_path / "node" / "old")
    used = packed(source_dir(tmp_path, "used", "two"), tmp_path / "node" / "used")
    ensure(files, old, used)

    clock.advance(KEPT_S / 2)
    ensure(files, used)  # a later replica reads it: its time starts again
    clock.advance(KEPT_S / 2 + 1)
    removed = files.collect()

    assert removed == [Path(old.path)]
    assert not Path(old.path).exists() and not (tmp_path / "node" / ".old.keystone-copy").exists()
    assert (Path(used.path) / "file.txt").read_text() == "two"
    assert len(list((tmp_path / "registry").iterdir())) == 1

    ensure(files, old)
    assert (Path(old.path) / "file.txt").read_text() == "one"


def test_a_copy_a_replica_reads_is_kept_however_old(tmp_path: Path) -> None:
    clock = Clock()
    files = node_files(tmp_path, clock)
    copy = packed(source_dir(tmp_path, "agent", "code"), tmp_path / "node" / "agent")

    with files.held((copy,)):
        clock.advance(KEPT_S * 10)
        assert files.collect() == []
        assert (Path(copy.path) / "file.txt").read_text() == "code"

    assert files.collect() == [Path(copy.path)]


def test_only_what_the_node_made_is_removed(tmp_path: Path) -> None:
    """A directory the node sees (a shared volume) is used as it is and never recorded; a recorded path
    that is no longer the node's copy (its marker gone) is forgotten, not removed."""
    clock = Clock()
    files = node_files(tmp_path, clock)
    shared = tmp_path / "shared" / "spec"
    shared.mkdir(parents=True)
    (shared / "mine.txt").write_text("the volume's")
    copy = packed(source_dir(tmp_path, "spec", "sent"), tmp_path / "node" / "spec")
    ensure(files, packed(source_dir(tmp_path, "other", "x"), shared), copy)
    assert len(list((tmp_path / "registry").iterdir())) == 1

    (tmp_path / "node" / ".spec.keystone-copy").unlink()  # someone made it theirs since
    clock.advance(KEPT_S + 1)

    assert files.collect() == []
    assert (shared / "mine.txt").read_text() == "the volume's"
    assert (Path(copy.path) / "file.txt").read_text() == "sent"
    assert list((tmp_path / "registry").iterdir()) == []


def test_copies_are_collected_as_replicas_start_at_most_hourly(tmp_path: Path) -> None:
    clock = Clock()
    files = node_files(tmp_path, clock)
    first = packed(source_dir(tmp_path, "first", "1"), tmp_path / "node" / "first")
    second = packed(source_dir(tmp_path, "second", "2"), tmp_path / "node" / "second")
    ensure(files, first)  # the actor's first replica: collected then (nothing yet)

    clock.advance(KEPT_S + 1)
    ensure(files, second)
    assert Path(first.path).is_dir(), "collected again within the hour"

    clock.advance(COLLECT_EVERY_S)
    ensure(files, second)
    assert not Path(first.path).exists()
    assert Path(second.path).is_dir()


def test_a_copy_the_node_stopped_making_is_made_again(tmp_path: Path) -> None:
    """The node claims a copy (an empty marker) before it replaces the old one: a node stopped in between
    leaves a copy that no digest matches."""
    files = node_files(tmp_path, Clock())
    stale = tmp_path / "node" / "agent"
    stale.mkdir(parents=True)
    (stale / "file.txt").write_text("old")
    (tmp_path / "node" / ".agent.keystone-copy").write_text("")

    ensure(files, packed(source_dir(tmp_path, "agent", "new"), stale))

    assert (stale / "file.txt").read_text() == "new"


def test_a_copy_that_could_not_be_removed_whole_is_made_again_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    files = node_files(tmp_path, clock)
    copy = packed(source_dir(tmp_path, "agent", "code"), tmp_path / "node" / "agent")
    ensure(files, copy)
    clock.advance(KEPT_S + 1)

    def remove_half(path: Path, ignore_errors: bool = False) -> None:
        (path / "file.txt").unlink()  # as if the rest could not be removed

    with monkeypatch.context() as patched:
        patched.setattr("polarity_keystone.cluster._files.shutil.rmtree", remove_half)
        assert files.collect() == []
    assert (tmp_path / "node" / ".agent.keystone-copy").read_text() == ""

    ensure(files, copy)
    assert (Path(copy.path) / "file.txt").read_text() == "code"


@pytest.mark.parametrize("value", ["0", "-1", "a day", "inf", "nan"])
def test_hours_that_are_not_a_positive_number_are_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(SandboxError, match=rf"{KEPT_HOURS_ENV}='{value}': give the hours"):
        kept_seconds({KEPT_HOURS_ENV: value})


def test_hours_default_to_a_day_and_may_be_fractions() -> None:
    assert kept_seconds({}) == DEFAULT_KEPT_HOURS * 3600 == 86400
    assert kept_seconds({KEPT_HOURS_ENV: " 1.5 "}) == 5400
