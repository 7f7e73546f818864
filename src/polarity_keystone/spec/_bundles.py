"""A spec bundle: the spec's local files, named by content, so a server on another machine can run it.

The manifest maps each file's path (relative, POSIX, under the spec's directory) to its sha256, size and
mode; the bundle's digest is the sha256 of the canonical manifest, so equal files give an equal digest
wherever they were collected. What is collected: every regular file under each local path the spec names
(`local_paths`) except `.git/` directories, which hold history, not the spec's files (a local `git_repo`
fixture keeps its `.git/`: the repository is what the fixture clones). A symlink inside the spec's
directory is shipped as the file it points to; one leading out, or to a directory, is refused, as is a
path with `..` or an absolute one (the server could not place it under the bundle's root).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ._loader import LoadedSpec
from ._paths import LocalPathError, confine, read_regular, tree
from ._semantic import local_paths
from ._source import dotted

SHA256_PATTERN = "^[0-9a-f]{64}$"
_SHA256 = re.compile(SHA256_PATTERN)
MAX_BUNDLE_PATH = 1024
"""Characters in one manifest path."""
_GIT_DIR = ".git"


@dataclass(frozen=True)
class BundleFile:
    sha256: str
    size: int
    mode: int
    """0o644, or 0o755 for an executable."""

    def as_json(self) -> dict[str, object]:
        return {"sha256": self.sha256, "size": self.size, "mode": self.mode}


Manifest = dict[str, BundleFile]


def canonical_manifest(manifest: Manifest) -> bytes:
    """The manifest as the bytes its digest is taken of: sorted keys, no spaces."""
    data = {path: entry.as_json() for path, entry in manifest.items()}
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def bundle_digest(manifest: Manifest) -> str:
    return hashlib.sha256(canonical_manifest(manifest)).hexdigest()


def path_problem(path: str) -> str | None:
    """Why `path` cannot be a manifest path (relative, POSIX, normalised, inside the root), or None."""
    if not path or len(path) > MAX_BUNDLE_PATH:
        return f"a path has 1 to {MAX_BUNDLE_PATH} characters"
    if "\x00" in path or "\\" in path:
        return "a path holds no NUL or backslash"
    if path.startswith("/"):
        return "a path is relative to the spec's directory, not absolute"
    parts = path.split("/")
    if ".." in parts:
        return "a path has no `..`: it stays inside the spec's directory"
    if "" in parts or "." in parts:
        return "a path is normalised: no empty or `.` parts"
    return None


def entry_problem(path: str, entry: BundleFile) -> str | None:
    """Why a manifest entry is invalid, or None."""
    problem = path_problem(path)
    if problem is not None:
        return f"{path!r}: {problem}"
    if not _SHA256.match(entry.sha256):
        return f"{path!r}: sha256 is 64 lowercase hex digits"
    if entry.size < 0:
        return f"{path!r}: size is not negative"
    if entry.mode not in (0o644, 0o755):
        return f"{path!r}: mode is 420 (0o644) or 493 (0o755)"
    return None


def layout_problem(paths: list[str]) -> str | None:
    """Why these files cannot all exist in one tree (a file is also another file's directory), or None."""
    directories: set[str] = set()
    for path in paths:
        parts = path.split("/")
        directories.update("/".join(parts[:end]) for end in range(1, len(parts)))
    clash = sorted(set(paths) & directories)
    return f"{clash[0]!r} is both a file and a directory" if clash else None


@dataclass
class Bundle:
    """A spec's local files, collected on the author's machine."""

    manifest: Manifest = field(default_factory=dict)
    sources: dict[str, Path] = field(default_factory=dict)
    """A local file holding each digest's content."""

    @property
    def digest(self) -> str:
        return bundle_digest(self.manifest)

    def add(self, path: str, source: Path) -> None:
        content = read_regular(source)
        digest = hashlib.sha256(content).hexdigest()
        executable = source.stat().st_mode & 0o111
        self.manifest[path] = BundleFile(digest, len(content), 0o755 if executable else 0o644)
        self.sources.setdefault(digest, source)


def collect_bundle(loaded: LoadedSpec, filename: str | None = None) -> Bundle:
    """Every local file `loaded` names, from its spec directory. Raises SpecError naming the spec file
    (`filename`, else the spec's path) and the field of a path the bundle cannot hold (with `..`,
    absolute, a symlink leading out or to a directory)."""
    bundle = Bundle()
    root = loaded.spec_dir.resolve()
    for where, value, kind in local_paths(loaded.spec):
        field_name = dotted(where)
        try:
            name = _bundle_path(value)
            target = confine(root, value, kind)
            if kind == "file":
                bundle.add(name, target)
            else:
                _add_directory(bundle, root, name, target, keep_git=field_name.endswith(".url"))
        except LocalPathError as exc:
            raise exc.spec_error(filename or str(loaded.path or "spec"), field_name) from None
    return bundle


def _bundle_path(value: str) -> str:
    name = posixpath.normpath(Path(value).as_posix())
    problem = path_problem(name) if name != "." else None
    if problem is not None or ".." in Path(value).parts:
        hint = (
            "a spec sent to a server ships only files under its own directory: move the files under it,"
            " or the spec file up to a directory that holds them"
        )
        raise LocalPathError(f"`{value}`: {problem or 'a path has no `..`'}", hint)
    return name


def _add_directory(bundle: Bundle, root: Path, name: str, directory: Path, *, keep_git: bool) -> None:
    for entry in tree(directory):
        parts = entry.relative.split("/")
        if _GIT_DIR in parts and not keep_git:
            continue
        path = entry.relative if name == "." else f"{name}/{entry.relative}"
        if stat.S_ISREG(entry.mode):
            bundle.add(path, entry.path)
        elif stat.S_ISLNK(entry.mode):
            bundle.add(path, _link_target(root, entry.path, path))


def _link_target(root: Path, link: Path, name: str) -> Path:
    target = link.resolve()
    hint = "a bundle holds regular files: replace the link by the file, or name its target in the spec"
    if not target.is_relative_to(root):
        raise LocalPathError(f"`{name}` is a symlink leading out of the spec's directory", hint)
    if not target.is_file():
        raise LocalPathError(f"`{name}` is a symlink to something other than a regular file", hint)
    return target
