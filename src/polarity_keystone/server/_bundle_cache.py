"""Spec bundles on the server: a manifest checked against the server's limits when a spec is uploaded with
it, and its files written out as a directory the spec is loaded from.

The manifest itself is stored as a blob (its digest is the bundle's), so a bundle needs nothing but the
blob store. A bundle's directory is written once, under a temporary name renamed into place, and never
written again: its name is its content's digest.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from .._files import write_atomically
from ..spec import BundleFile, Manifest, bundle_digest, canonical_manifest, entry_problem, layout_problem
from ._errors import InvalidRequest, PayloadTooLarge
from ._limits import describe_size
from ._project_blobs import ProjectBlobs

MISSING_SHOWN = 20
"""Missing digests named in the refusal of an upload (the client asks /v1/blobs/missing for all)."""


@dataclass(frozen=True)
class BundleLimits:
    max_bytes: int
    max_files: int


class BundleCache:
    def __init__(self, blobs: ProjectBlobs, root: Path, limits: BundleLimits) -> None:
        self.blobs = blobs
        self.root = root
        self.limits = limits
        self._lock = threading.Lock()

    def accept(self, manifest: Manifest, project_id: str) -> str:
        """Check `manifest` (InvalidRequest, PayloadTooLarge) and that the project holds every blob it
        names (another project's blob is missing to it); store the manifest as the project's and return
        the bundle's digest."""
        if len(manifest) > self.limits.max_files:
            raise PayloadTooLarge(
                f"the bundle has {len(manifest)} files; this server takes at most {self.limits.max_files}",
                code="bundle_too_many_files",
            )
        total = sum(entry.size for entry in manifest.values())
        if total > self.limits.max_bytes:
            raise PayloadTooLarge(
                f"the bundle holds {describe_size(total)}; this server takes at most "
                f"{describe_size(self.limits.max_bytes)}",
                code="bundle_too_large",
            )
        problems = [problem for path, entry in manifest.items() if (problem := entry_problem(path, entry))]
        if not problems and (clash := layout_problem(list(manifest))):
            problems.append(clash)
        if problems:
            raise InvalidRequest(f"invalid bundle manifest: {'; '.join(problems[:5])}", code="invalid_bundle")
        missing = self.blobs.hold(project_id, (entry.sha256 for entry in manifest.values()))
        if missing:
            shown = ", ".join(missing[:MISSING_SHOWN])
            raise InvalidRequest(
                f"{len(missing)} blob(s) of the bundle are not uploaded (PUT /v1/blobs/{{sha256}}): {shown}",
                code="missing_blobs",
                details={"missing": missing},
            )
        digest = bundle_digest(manifest)
        self.blobs.put(project_id, digest, canonical_manifest(manifest))
        return digest

    def directory(self, digest: str) -> Path:
        """The bundle's files as a directory, written now if this server has not written them before."""
        final = self.root / digest
        with self._lock:
            if final.is_dir():
                return final
            self.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=self.root, prefix=".tmp-"))
            try:
                self._write(read_manifest(self.blobs.backend.get(digest)), staging)
                staging.rename(final)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return final

    def _write(self, manifest: Manifest, directory: Path) -> None:
        for path, entry in sorted(manifest.items()):
            target = directory / path
            target.parent.mkdir(parents=True, exist_ok=True)
            data = self.blobs.backend.get(entry.sha256)
            if len(data) != entry.size:
                message = f"{path!r}: the manifest says {entry.size} bytes, its blob has {len(data)}"
                raise InvalidRequest(message)
            write_atomically(target, data, entry.mode)


def read_manifest(raw: bytes) -> Manifest:
    """A stored manifest (`{path: {sha256, size, mode}}`)."""
    data = json.loads(raw)
    return {path: BundleFile(entry["sha256"], entry["size"], entry["mode"]) for path, entry in data.items()}
