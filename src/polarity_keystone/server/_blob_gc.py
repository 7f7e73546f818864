"""Garbage collection of blobs: what each project no longer uses is released from its quota, and a blob no
project owns any more is deleted from the backend, with the directories this server wrote out of it
(bundles, unpacked snapshots).

A project uses (a) the bundle of every spec version that is not deleted (the latest upload of that
version, as its spec upload log records it: the manifest blob and every file it names) and the bundle
pinned in the options of each experiment created within the retention window, or still unfinished
(replay and extend need it), and (b) the tarball of every snapshot that is not deleted.

An upload may claim a blob while a collection computes it unused. Ownerships held within the grace
period (claimed, or named again by an upload, see ProjectBlobs) are never released, and the release
re-checks that in the transaction that drops the ownership. A blob is deleted in the transaction that
drops its last ownership, which a concurrent claim of it waits for; a delete that fails keeps the
ownership, released again next time, so nothing leaks. A collection never takes away a blob an upload
has just counted on, as long as an upload takes less than the grace period.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..store import Clock, Store
from ._blobs import BlobStore
from ._bundle_cache import read_manifest
from ._instance import new_instance_id
from ._spec_sources import spec_log

log = logging.getLogger("polarity_keystone.server")
LEASE = "blob-gc"
"""The store lease held while collecting, so that of several servers on one store one collects at once."""
LEASE_TTL = timedelta(hours=1)
"""How long a collector's lease lasts if it dies holding it."""


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class GcPolicy:
    retention: timedelta = timedelta(days=30)
    """An experiment's pinned bundle is kept this long after the experiment was created."""
    grace: timedelta = timedelta(hours=1)
    """An ownership held more recently than this is never released."""


@dataclass
class ProjectRelease:
    project_id: str
    blobs: int = 0
    bytes: int = 0


@dataclass
class GcReport:
    dry_run: bool
    released: list[ProjectRelease] = field(default_factory=list)
    """Per project with anything released (or, in a dry run, that would be)."""
    deleted_blobs: int = 0
    deleted_bytes: int = 0
    removed_dirs: int = 0
    """Bundle directories and unpacked snapshots removed (or that would be)."""
    seconds: float = 0.0
    skipped: bool = False
    """True when another collector held the lease, so nothing was done."""


class BlobCollector:
    def __init__(
        self,
        store: Store,
        backend: BlobStore,
        written_out: Sequence[Path],
        policy: GcPolicy,
        *,
        now: Clock = system_clock,
    ) -> None:
        """`written_out`: where this server writes blobs out as directories, each named after its blob's
        digest (a bundle, BundleCache's root) or `snap_<digest>` (an unpacked snapshot)."""
        self._store = store
        self._backend = backend
        self._written_out = list(written_out)
        self._policy = policy
        self._now = now
        self._holder = new_instance_id()
        self._lock = threading.Lock()

    def used_blobs(self, project_id: str) -> set[str]:
        """The blobs the project still uses (see the module's docstring)."""
        bundles = self._spec_bundles(project_id)
        since = self._now() - self._policy.retention
        for options in self._store.experiment_options_since(project_id, since):
            if isinstance(bundle := options.get("bundle"), str):
                bundles.add(bundle)
        used = set(bundles) | self._store.live_snapshot_digests(project_id)
        for bundle in bundles:
            try:
                manifest = read_manifest(self._backend.get(bundle))
            except (FileNotFoundError, ValueError, KeyError, TypeError):
                continue  # gone or not a manifest: nothing more to keep for it
            used.update(entry.sha256 for entry in manifest.values())
        return used

    def _spec_bundles(self, project_id: str) -> set[str]:
        """The bundle of the latest upload of each version not deleted (what SpecSources.bundle finds)."""
        bundles: set[str] = set()
        for spec_id, versions in self._store.live_spec_versions(project_id).items():
            latest: dict[int, str | None] = {}
            stream = spec_log(project_id, spec_id)
            after = 0
            while events := self._store.events_after(stream, after):
                for event in events:
                    if event.type == "uploaded" and event.data.get("version") in versions:
                        latest[event.data["version"]] = event.data.get("bundle")
                after = events[-1].id
            bundles.update(bundle for bundle in latest.values() if isinstance(bundle, str))
        return bundles

    def collect(self, *, dry_run: bool = False) -> GcReport:
        """Release, sweep and remove (or, `dry_run`, only say what would be). Skipped (`report.skipped`)
        while another collector, in this process or another on the same store, is at work."""
        report = GcReport(dry_run)
        if not self._lock.acquire(blocking=False):
            report.skipped = True
            return report
        try:
            if not self._store.take_lease(LEASE, self._holder, LEASE_TTL):
                report.skipped = True
                return report
            try:
                started = time.monotonic()
                self._collect(report)
                report.seconds = time.monotonic() - started
            finally:
                self._store.drop_lease(LEASE, self._holder)
        finally:
            self._lock.release()
        return report

    def _collect(self, report: GcReport) -> None:
        cutoff = self._now() - self._policy.grace
        released: dict[str, dict[str, int]] = {}
        deleted: set[str] = set()

        def delete(digest: str) -> None:
            self._backend.delete(digest)
            deleted.add(digest)

        for project in self._store.list_projects():
            unused = self._store.blobs_held_before(project.id, cutoff)
            if unused:
                used = self.used_blobs(project.id)
                unused = {digest: size for digest, size in unused.items() if digest not in used}
            if unused and not report.dry_run:
                unused = self._store.release_blobs(project.id, list(unused), cutoff, delete)
            if unused:
                released[project.id] = unused
                report.released.append(ProjectRelease(project.id, len(unused), sum(unused.values())))
        sizes = {digest: size for blobs in released.values() for digest, size in blobs.items()}
        if report.dry_run:
            owners = self._store.blob_owners(list(sizes))
            deleted = {
                digest
                for digest in sizes
                if all(digest in released.get(project, {}) for project in owners.get(digest, ()))
            }
        report.deleted_blobs = len(deleted)
        report.deleted_bytes = sum(sizes[digest] for digest in deleted)
        for root in self._written_out:
            report.removed_dirs += self._remove_written_out(root, deleted, report.dry_run)

    def _remove_written_out(self, root: Path, orphaned: set[str], dry_run: bool) -> int:
        """Remove the directories of `root` whose blob no project owns (a dry run counts those, and those
        whose blob it would have orphaned)."""
        if not root.is_dir():
            return 0
        blobs = {path.name: path.name.removeprefix("snap_") for path in root.iterdir()}
        blobs = {name: blob for name, blob in blobs.items() if not name.startswith(".")}
        owners = self._store.blob_owners(list(blobs.values()))
        removed = 0
        for name, blob in blobs.items():
            if blob in owners and not (dry_run and blob in orphaned):
                continue
            removed += 1
            if not dry_run:
                _remove_directory(root, name)
        return removed


def _remove_directory(root: Path, name: str) -> None:
    """Rename away first, so a reader never finds half a directory under the blob's name."""
    trash = root / f".gc-{name}-{uuid.uuid4().hex[:8]}"
    try:
        (root / name).rename(trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


class ScheduledCollection:
    """Collects every `interval_s` seconds on a daemon thread, the first time one interval after start
    (a restarting server does not sweep on its way up)."""

    def __init__(self, collector: BlobCollector, interval_s: float) -> None:
        self._collector = collector
        self._interval_s = interval_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="keystone-blob-gc", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopping.wait(self._interval_s):
            try:
                report = self._collector.collect()
            except Exception:
                log.exception("blob garbage collection failed; trying again in %ss", self._interval_s)
                continue
            freed = sum(release.bytes for release in report.released)
            log.info(
                "blob garbage collection: released %d bytes, deleted %d blob(s) in %.1fs",
                freed,
                report.deleted_blobs,
                report.seconds,
            )

    def close(self) -> None:
        """Stop, waiting for a collection under way to finish."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
