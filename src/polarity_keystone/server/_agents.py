"""Agent snapshots of a project: an upload is checked (see `inspect_bundle`), its tarball stored as a blob
of the project, and the snapshot recorded as the next version of its name, or found to be one already."""

from __future__ import annotations

import hashlib
from typing import IO, Protocol

from ..store import AgentSnapshotRecord, Store
from ._errors import PayloadTooLarge
from ._limits import describe_size
from ._models import AgentAuth, AgentSnapshotOut, AgentUpload
from ._snapshots import SnapshotLimits, inspect_bundle

_CHUNK = 1024**2


class ProjectBlobWriter(Protocol):
    def put(self, project_id: str, digest: str, data: bytes) -> None: ...


def _digest_and_size(bundle: IO[bytes]) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while chunk := bundle.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


class AgentSnapshots:
    def __init__(self, store: Store, blobs: ProjectBlobWriter, limits: SnapshotLimits) -> None:
        self._store = store
        self._blobs = blobs
        self.limits = limits

    def upload(self, project_id: str, metadata: AgentUpload, bundle: IO[bytes]) -> AgentSnapshotRecord:
        """Check and keep the tarball `bundle` (a seekable file, e.g. the spooled upload)."""
        digest, size = _digest_and_size(bundle)
        if size > self.limits.max_bytes:
            raise PayloadTooLarge(
                f"the bundle is larger than this server's limit of {describe_size(self.limits.max_bytes)}"
            )
        bundle.seek(0)
        inspect_bundle(bundle, self.limits)
        bundle.seek(0)
        self._blobs.put(project_id, digest, bundle.read())
        return self._store.put_agent_snapshot(
            project_id,
            metadata.name,
            digest,
            size,
            entrypoint=metadata.entrypoint,
            runtime=metadata.runtime,
            auth=metadata.auth.model_dump(),
            tag=metadata.tag,
        )


def snapshot_out(record: AgentSnapshotRecord, tag: str | None = None) -> AgentSnapshotOut:
    """The API's view of a snapshot; `tag` is the one an upload set (else the first of its tags)."""
    return AgentSnapshotOut(
        id=record.id,
        name=record.name,
        version=record.version,
        tag=tag or next(iter(record.tags), None),
        tags=list(record.tags),
        digest=f"sha256:{record.digest}",
        size_bytes=record.size_bytes,
        storage_path=f"/agents/{record.name}/v{record.version}",
        runtime=record.runtime,
        entrypoint=record.entrypoint,
        auth=AgentAuth.model_validate(record.auth),
        created_at=record.created_at,
    )
