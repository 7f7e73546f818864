"""The local files a spec ships into its sandboxes, confined to the spec's root.

`agent.path`, a fixture's `source` or `file`, a custom check's `script` and a local `git_repo` are read
on the machine that runs the spec. On a shared server that machine is not the spec author's, so each
path must stay inside the spec's root: relative, no `..` or symlink leading out, and only regular
files and directories (a FIFO would hang the reader, `/dev/zero` would never end). The checks run when
the spec is validated and again where the files are read, because files can change in between.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ._errors import SpecError, SpecIssue

PathKind = Literal["file", "directory"]

_FILE_TYPES = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


class LocalPathError(ValueError):
    """A spec path that leaves the spec's root or names something other than a file or directory."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint

    def spec_error(self, file: str, field: str) -> SpecError:
        """As a spec error without a line: raised where the files are used, after validation."""
        return SpecError([SpecIssue(file, None, None, field, self.message, self.hint)])


def confine(root: Path | None, value: str, kind: PathKind) -> Path:
    """The real path `value` names under `root`, checked to be a `kind` inside it; `root` None means
    this spec may not read local files at all. Raises LocalPathError."""
    if root is None:
        raise LocalPathError(
            f"`{value}` is a path on the server, and this server has no spec root to read it from",
            "a shared server does not read its own files for a spec: bake the files into the base image or"
            " clone them with a git_repo fixture, or ask the operator for a server with a spec root",
        )
    hint = f"paths are relative to the spec's directory, {root}, and stay inside it"
    if Path(value).is_absolute():
        raise LocalPathError(f"`{value}` is an absolute path", hint)
    if "\x00" in value:
        raise LocalPathError("the path contains a NUL character", hint)
    real_root = root.resolve()
    # Resolved the way the OS opens it (a symlink before the `..` after it), never by normalising the
    # text first, which would check a different file than the one later read.
    target = (real_root / value).resolve()
    if not target.is_relative_to(real_root):
        lexical = os.path.normpath(value)
        how = "with `..`" if lexical == ".." or lexical.startswith("../") else "through a symlink"
        raise LocalPathError(f"`{value}` leads out of the spec's directory {how}", hint)
    try:
        mode = target.stat().st_mode
    except OSError:
        message = f"{kind} `{value}` does not exist (looked for {real_root / value})"
        raise LocalPathError(message, hint) from None
    _require(value, mode, kind, hint)
    if kind == "directory":
        for entry in tree(target):
            if stat.S_ISLNK(entry.mode) and not entry.path.resolve().is_relative_to(real_root):
                message = f"`{value}/{entry.relative}` is a symlink leading out of the spec's directory"
                raise LocalPathError(message, hint)
    return target


def _require(value: str, mode: int, kind: PathKind, hint: str) -> None:
    if kind == "directory" and not stat.S_ISDIR(mode):
        raise LocalPathError(f"`{value}` is not a directory", hint)
    if kind == "file" and not stat.S_ISREG(mode):
        what = "a directory" if stat.S_ISDIR(mode) else _special(mode)
        raise LocalPathError(f"`{value}` is {what}, not a regular file", hint)


def _special(mode: int) -> str:
    return _FILE_TYPES.get(stat.S_IFMT(mode), "not a regular file")


def walk(directory: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every entry under `directory` with its `lstat`, sorted, never following a symlink; LocalPathError
    when `directory` or one below it cannot be listed (os.walk would skip it, and a missing agent
    directory would ship as an empty one)."""
    for root, dirs, files in os.walk(directory, onerror=_unlistable, followlinks=False):
        dirs.sort()
        for name in sorted(dirs + files):
            entry = Path(root) / name
            yield entry, entry.lstat()


def _unlistable(error: OSError) -> None:
    raise LocalPathError(f"cannot list {error.filename}: {error.strerror}", "it must be a readable directory")


@dataclass(frozen=True)
class TreeEntry:
    path: Path
    relative: str
    """POSIX path under the walked directory."""
    status: os.stat_result
    """Its `lstat`: a regular file, a directory or a symlink (kept as a link, never followed)."""

    @property
    def mode(self) -> int:
        return self.status.st_mode


def tree(directory: Path) -> Iterator[TreeEntry]:
    """The entries to ship from `directory`; raises LocalPathError on a FIFO, device or socket."""
    for entry, status in walk(directory):
        relative = entry.relative_to(directory).as_posix()
        mode = status.st_mode
        if not (stat.S_ISLNK(mode) or stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            message = f"`{relative}` in {directory} is {_special(mode)}"
            raise LocalPathError(message, "only regular files, directories and symlinks are shipped")
        yield TreeEntry(entry, relative, status)


def read_regular(path: Path) -> bytes:
    """The bytes of a regular file, opened without following a final symlink or blocking on a FIFO,
    and checked to be a regular file once open (it may have been swapped since it was checked)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        hint = "the file must be a regular file, not a symlink"
        raise LocalPathError(f"cannot read {path}: {exc.strerror}", hint) from None
    with os.fdopen(descriptor, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise LocalPathError(f"{path} is {_special(mode)}", "only regular files are read")
        return handle.read()
