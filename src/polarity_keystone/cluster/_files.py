"""The server's files a replica reads, carried to the nodes that lack them.

A replica reads files of the server's machine: the spec's directory (its fixtures and the files its
checks compare with), the agent's code and a `git_repo` fixture's clone, at the paths the prepared spec
names. The server packs each directory once per experiment into Ray's object store; a node that does not
see the directory at that path (no shared volume) makes it there from the pack, and one that sees it (a
shared volume, or the server's own machine) uses it as it is. What a node made is marked beside it with
the pack's digest, so a later experiment whose directory changed at the same path (a server's
`--spec-root`) replaces it instead of reading stale files.

Each spec upload has a directory of its own on the server, so copies pile up on a node: it records each
copy it made in a registry (`~/.keystone/node-copies`, one file per copy whose mtime is its last use)
and removes those no replica used for KEYSTONE_NODE_COPIES_HOURS (default 24), at its start and then
hourly. A copy a replica is reading is never removed, and nothing without the node's marker is.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import shutil
import stat
import tarfile
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from ..engine import PreparedSpec
from ..sandbox import SandboxError, tar_directory
from ..spec import LocalPathError, tree

log = logging.getLogger("polarity_keystone.cluster")

PACK_LIMIT_BYTES = 256 * 1024 * 1024
"""The files of one experiment's directories a node can be sent, together; larger ones must be mounted
on the nodes at the same path."""
KEPT_HOURS_ENV = "KEYSTONE_NODE_COPIES_HOURS"
DEFAULT_KEPT_HOURS = 24.0
COLLECT_EVERY_S = 3600.0


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


def kept_seconds(environment: Mapping[str, str]) -> float:
    """How long a node keeps a copy no replica uses, from KEYSTONE_NODE_COPIES_HOURS; SandboxError
    naming the variable when it is not a positive number."""
    value = environment.get(KEPT_HOURS_ENV, "").strip()
    if not value:
        return DEFAULT_KEPT_HOURS * 3600
    try:
        hours = float(value)
    except ValueError:
        hours = 0.0
    if not 0 < hours < float("inf"):
        raise SandboxError(f"{KEPT_HOURS_ENV}={value!r}: give the hours a copy is kept unused (e.g. 24)")
    return hours * 3600


def _marker(path: Path) -> Path:
    return path.parent / f".{path.name}.keystone-copy"


class NodeFiles:
    """A node's copies of the servers' directories (see the module's docstring)."""

    def __init__(
        self,
        registry: Path | None = None,
        kept_s: float | None = None,
        fetch: Callable[[Any], bytes] = ray.get,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`registry`: where the copies made are recorded (default `~/.keystone/node-copies`); `kept_s`:
        how long one is kept unused (default from the environment, see `kept_seconds`); `fetch` turns a
        pack's reference into its bytes."""
        self.registry = registry or Path.home() / ".keystone" / "node-copies"
        self.kept_s = kept_seconds(os.environ) if kept_s is None else kept_s
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._reading: Counter[str] = Counter()
        """Path -> replicas reading it now."""
        self._collected_at: float | None = None

    @contextlib.contextmanager
    def held(self, directories: tuple[PackedDirectory, ...]) -> Iterator[None]:
        """Each directory at its path on this node, kept there while the block runs; SandboxError when
        one is missing and was not sent. Copies unused for long are collected first, when it is time."""
        with self._lock:
            now = self._clock()
            if self._collected_at is None or now - self._collected_at >= COLLECT_EVERY_S:
                self._collected_at = now
                self._collect(now)
            for directory in directories:
                self._ensure(directory)
            self._reading.update(directory.path for directory in directories)
        try:
            yield
        finally:
            with self._lock:
                self._reading.subtract(directory.path for directory in directories)
                self._reading += Counter()  # drops the counts that reached zero

    def collect(self) -> list[Path]:
        """Remove the copies no replica used for `kept_s` and none reads now; the paths removed."""
        with self._lock:
            return self._collect(self._clock())

    def _collect(self, now: float) -> list[Path]:
        try:
            entries = list(self.registry.iterdir())
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.warning("cannot read the registry of this node's copies %s: %s", self.registry, exc)
            return []
        removed = []
        for entry in entries:
            try:
                path = Path(entry.read_text())
                if now - entry.stat().st_mtime < self.kept_s or str(path) in self._reading:
                    continue
                if _marker(path).is_file() and not path.is_symlink():
                    _marker(path).write_text("")  # matches no digest: a copy half removed is made again
                    shutil.rmtree(path, ignore_errors=True)
                    if path.exists():
                        log.warning("could not remove all of this node's copy %s; trying again later", path)
                        continue
                    _marker(path).unlink()
                    removed.append(path)
                entry.unlink()
            except OSError as exc:
                log.warning("cannot remove this node's copy recorded in %s: %s", entry, exc)
        if removed:
            log.info(
                "removed %d copies of servers' directories unused for %.0f h",
                len(removed),
                self.kept_s / 3600,
            )
        return removed

    def _used(self, path: Path) -> None:
        """Record a use of the copy at `path`, made here."""
        entry = self.registry / hashlib.sha256(str(path).encode()).hexdigest()[:32]
        try:
            if not entry.is_file():
                self.registry.mkdir(parents=True, exist_ok=True)
                entry.write_text(str(path))
            now = self._clock()
            os.utime(entry, (now, now))
        except OSError as exc:
            log.warning("cannot record this node's copy %s in %s: %s", path, self.registry, exc)

    def _ensure(self, directory: PackedDirectory) -> None:
        path = Path(directory.path)
        marker = _marker(path)
        made_here = marker.is_file()
        if made_here and path.is_dir() and marker.read_text() == directory.digest:
            self._used(path)
            return
        if path.exists() and not made_here:
            return  # the server's own files: this node shares its volume, or is its machine
        if directory.pack is None:
            raise SandboxError(
                f"{path} is not on this node, and its {directory.size / 1e6:.0f} MB are more than the "
                f"{PACK_LIMIT_BYTES / 1e6:.0f} MB an experiment sends to nodes: mount it on the nodes at "
                "the same path"
            )
        tar = self._fetch(directory.pack)
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
            marker.write_text("")  # ours from here on, and made again if the node stops before the end
            self._used(path)
            if path.exists():
                shutil.rmtree(path)  # an older copy of a directory that changed since
            staging.rename(path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        marker.write_text(directory.digest)
