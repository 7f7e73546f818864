"""Content-addressed blobs: the files of uploaded spec bundles, each stored once under its sha256.

`BlobStore` is what the server needs of a backend: `LocalBlobStore` keeps blobs as files in a directory
of the server's data dir, `S3BlobStore` (the `s3` extra) as objects of an S3-compatible bucket that
several servers can share. Blobs are shared by every project; which project may use one is recorded
beside them (see ProjectBlobs); a blob no project owns any more is deleted by garbage collection
(see BlobCollector).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from .._files import write_atomically
from ._errors import InvalidRequest


class BlobStore(Protocol):
    def put(self, digest: str, data: bytes) -> None:
        """Store `data` (whose sha256 the caller checked) as `digest`. A blob already stored is written
        again all the same: an upload that took as long only when the blob was new would tell a caller
        whether another project holds the content it sent."""

    def get(self, digest: str) -> bytes:
        """The blob's bytes; raises FileNotFoundError."""

    def exists(self, digest: str) -> bool: ...

    def delete(self, digest: str) -> None:
        """Remove the blob (a no-op when it is not stored)."""


def check_digest(digest: str, data: bytes) -> None:
    """InvalidRequest unless `data`'s sha256 is `digest`: a blob is stored only under its own digest."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise InvalidRequest(
            f"the body's sha256 is {actual}, not the {digest} it was sent as", code="digest_mismatch"
        )


class LocalBlobStore:
    """Each blob is written to a temporary file and renamed into place, so a reader never sees half a
    blob and two uploads of the same blob cannot corrupt each other."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def put(self, digest: str, data: bytes) -> None:
        path = self._path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, data)

    def get(self, digest: str) -> bytes:
        return self._path(digest).read_bytes()

    def exists(self, digest: str) -> bool:
        return self._path(digest).is_file()

    def delete(self, digest: str) -> None:
        self._path(digest).unlink(missing_ok=True)


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str
    """Prepended to every key: `blobs/` or `` (the bucket's root)."""


def s3_location(url: str) -> S3Location:
    """`s3://bucket/some/prefix` as a bucket and a key prefix ending in `/`; ValueError for another URL."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"a blob store URL is s3://bucket/prefix, not {url!r}")
    prefix = parts.path.strip("/")
    return S3Location(parts.netloc, f"{prefix}/" if prefix else "")


def open_blob_store(url: str | None, endpoint: str | None, data_dir: Path) -> BlobStore:
    """The blob store `url` names: None for the `blobs/` directory of `data_dir`, `s3://bucket/prefix`
    for a bucket (at `endpoint`, e.g. MinIO or R2, else AWS; credentials from the usual AWS environment
    variables)."""
    if url is None:
        return LocalBlobStore(data_dir / "blobs")
    location = s3_location(url)
    try:
        from ._s3_blobs import S3BlobStore  # boto3 is the optional `s3` extra
    except ImportError as exc:
        raise RuntimeError(
            f"the blob store {url} needs boto3: pip install 'polarity-keystone[s3]' ({exc})"
        ) from exc
    return S3BlobStore(location, endpoint)
