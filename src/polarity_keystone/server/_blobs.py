"""Content-addressed blobs: the files of uploaded spec bundles, each stored once under its sha256.

`BlobStore` is what the server needs of a store; `LocalBlobStore` keeps blobs as files in a directory
of the server's data dir, each written to a temporary file and renamed into place, so a reader never sees
half a blob and two uploads of the same blob cannot corrupt each other. (No S3-backed store: the project
has no S3 client library among its dependencies.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from .._files import write_atomically
from ._errors import InvalidRequest


class BlobStore(Protocol):
    def missing(self, digests: Iterable[str]) -> list[str]:
        """The digests of `digests` the store does not hold, in their order, once each."""

    def put(self, digest: str, data: bytes) -> None:
        """Store `data` as `digest`; raises InvalidRequest when `data` has another digest."""

    def get(self, digest: str) -> bytes:
        """The blob's bytes; raises FileNotFoundError."""


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def missing(self, digests: Iterable[str]) -> list[str]:
        return [digest for digest in dict.fromkeys(digests) if not self._path(digest).is_file()]

    def put(self, digest: str, data: bytes) -> None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise InvalidRequest(
                f"the body's sha256 is {actual}, not the {digest} it was sent as", code="digest_mismatch"
            )
        path = self._path(digest)
        if path.is_file():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, data)

    def get(self, digest: str) -> bytes:
        return self._path(digest).read_bytes()
