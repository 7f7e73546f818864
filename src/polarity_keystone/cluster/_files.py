"""The server's files a replica reads, carried to the nodes that lack them.

A replica reads files of the server's machine: the spec's directory (its fixtures and the files its
checks compare with), the agent's code and a `git_repo` fixture's clone, at the paths the prepared spec
names. The server packs each directory once per experiment into Ray's object store; a node that does not
see the directory at that path (no shared volume) makes it there from the pack, and one that sees it (a
shared volume, or the server's own machine) uses it as it is. What a node made is marked beside it with
the pack's digest, so a later experiment whose directory changed at the same path (a server's
`--spec-root`) replaces it instead of reading stale files.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import stat
import tarfile
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from ..engine import PreparedSpec
from ..sandbox import SandboxError, tar_directory
from ..spec import LocalPathError, tree

PACK_LIMIT_BYTES = 256 * 1024 * 1024
"""The files of one experiment's directories a node can be sent, together; larger ones must be mounted
on the nodes at the same path."""


@dataclass(frozen=True)
class PackedDirectory:
    path: str
    """Where the replica reads it: the server's path, made the same on a node."""
    digest: str
    size: int
    """Bytes of its regular files."""
    pack: Any
    """The object ref of its tar; None when it was over what is left of PACK_LIMIT_BYTES."""


@dataclass(frozen=True)
class ShippedSpec:
    """A prepared spec as a replica task carries it: object refs, which Ray passes on unfetched."""

    spec: Any
    directories: tuple[PackedDirectory, ...]


def ship(prepared: PreparedSpec) -> ShippedSpec:
    """Put the spec and its directories in the object store; SandboxError when one cannot be read."""
    packed = []
    budget = PACK_LIMIT_BYTES
    for directory in prepared.host_directories():
        try:
            size = sum(entry.status.st_size for entry in tree(directory) if stat.S_ISREG(entry.mode))
        except (LocalPathError, OSError) as exc:
            raise SandboxError(f"cannot send {directory} to the cluster's nodes: {exc}") from None
        if size > budget:
            packed.append(PackedDirectory(str(directory), "", size, None))
            continue
        budget -= size
        tar = tar_directory(str(directory))
        packed.append(PackedDirectory(str(directory), hashlib.sha256(tar).hexdigest(), size, ray.put(tar)))
    return ShippedSpec(ray.put(prepared), tuple(packed))


class NodeFiles:
    """A node's copies of the servers' directories (see the module's docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def ensure(self, directories: tuple[PackedDirectory, ...]) -> None:
        """Each directory at its path on this node; SandboxError when one is missing and was not sent."""
        with self._lock:
            for directory in directories:
                self._ensure(directory)

    @staticmethod
    def _ensure(directory: PackedDirectory) -> None:
        path = Path(directory.path)
        marker = path.parent / f".{path.name}.keystone-copy"
        made_here = marker.is_file()
        if made_here and path.is_dir() and marker.read_text() == directory.digest:
            return
        if path.exists() and not made_here:
            return  # the server's own files: this node shares its volume, or is its machine
        if directory.pack is None:
            raise SandboxError(
                f"{path} is not on this node, and its {directory.size / 1e6:.0f} MB are more than the "
                f"{PACK_LIMIT_BYTES / 1e6:.0f} MB an experiment sends to nodes: mount it on the nodes at "
                "the same path"
            )
        tar: bytes = ray.get(directory.pack)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        except OSError as exc:
            raise SandboxError(
                f"cannot make {path} on this node ({exc.strerror}): let the node's user write there, or "
                "mount the server's directory at that path"
            ) from None
        try:
            with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
                archive.extractall(staging, filter="tar")  # keeps modes and symlinks; nothing outside
            if path.exists():
                shutil.rmtree(path)  # an older copy of a directory that changed since
            staging.rename(path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        marker.write_text(directory.digest)
