"""Blobs as one project sees them. The backend holds each blob once for every project, but a project may
use only the blobs it uploaded itself: another project's blob is "missing" to it (else `missing` would
tell B whether A holds a given file), naming one in a bundle is refused like a missing blob, and
uploading content the backend already holds still takes the bytes (proof of possession) before the
project owns it. Each project's blobs count against its byte quota.

A project owns a blob only once its bytes are stored, so an owned blob is always in the backend (garbage
collection deletes only blobs no project owns, see BlobCollector): `missing` needs no call to the
backend, which for S3 is a request per blob. Naming a blob the project owns in an upload (`hold`: asking
which blobs are missing, a bundle's manifest; `put`) holds it anew, so garbage collection, which spares
ownerships held within its grace period, cannot release it while the upload that names it goes on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NoReturn

from ..store import Store
from ._blobs import BlobStore, check_digest
from ._errors import PayloadTooLarge
from ._limits import describe_size


class ProjectBlobs:
    def __init__(self, store: Store, backend: BlobStore, max_project_bytes: int) -> None:
        """`max_project_bytes`: the quota of each project's blobs; 0 for none."""
        self.backend = backend
        self._store = store
        self._quota = max_project_bytes or None

    def missing(self, project_id: str, digests: Iterable[str]) -> list[str]:
        """The digests of `digests` the project does not hold, in their order, once each."""
        wanted = list(dict.fromkeys(digests))
        owned = self._store.owned_blobs(project_id, wanted)
        return [digest for digest in wanted if digest not in owned]

    def hold(self, project_id: str, digests: Iterable[str]) -> list[str]:
        """Like `missing`, and the digests the project does own are held anew (see above)."""
        wanted = list(dict.fromkeys(digests))
        held = self._store.hold_blobs(project_id, wanted)
        return [digest for digest in wanted if digest not in held]

    def put(self, project_id: str, digest: str, data: bytes) -> None:
        """Store `data` as `digest` for the project: InvalidRequest when `data` has another digest,
        PayloadTooLarge (`quota_exceeded`) when the project's blobs would exceed the quota, checked
        before anything is written (and again, atomically, when the ownership is recorded)."""
        check_digest(digest, data)
        if not self.hold(project_id, [digest]):
            return
        if self._quota is not None:
            usage = self._store.blob_usage(project_id)
            if usage + len(data) > self._quota:
                self._refuse(usage, len(data))
        self.backend.put(digest, data)
        if not self._store.add_blob_owner(project_id, digest, len(data), self._quota):
            self._refuse(self._store.blob_usage(project_id), len(data))
        if not self.backend.exists(digest):
            # Garbage collection swept the blob between our write and our claim (it deletes only blobs
            # no project owns, and a claim waits for a release of the same blob): store it again.
            self.backend.put(digest, data)

    def _refuse(self, usage: int, size: int) -> NoReturn:
        raise PayloadTooLarge(
            f"this project's blobs take {describe_size(usage)} of its {describe_size(self._quota or 0)} "
            f"quota; {describe_size(size)} more would exceed it",
            code="quota_exceeded",
        )
