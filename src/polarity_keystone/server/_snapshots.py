"""Agent snapshot tarballs are untrusted input: what one may hold, checked when it is uploaded and again,
member by member, when a run unpacks it.

A bundle must be a gzip'd tar of regular files and directories (symbolic and hard links allowed only
when they stay inside the bundle) under relative paths without `..`. It is read as a stream, once, with
the decompressed bytes counted as they come: a gzip bomb stops at the unpacked-size limit, however small
its compressed form, and a forged header (a huge pax record) cannot make the reader allocate past it.
The member count and the total size of the files are bounded too. Every refusal names the member.
"""

from __future__ import annotations

import gzip
import posixpath
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from ._errors import InvalidRequest, PayloadTooLarge

GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class SnapshotLimits:
    max_bytes: int = 200 * 1024**2
    """The uploaded (compressed) tarball."""
    max_unpacked_bytes: int = 1024**3
    """The tar stream once decompressed: every header, file and padding block."""
    max_members: int = 10_000
    """Files, directories and links."""


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Unpacked(Exception):
    """The decompressed stream passed the unpacked-size limit."""


class _CountingReader:
    """A read-only file over the decompressed stream that refuses to go past `limit` bytes, checked
    before each read so that no single read can ask for more."""

    def __init__(self, stream: _Readable, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        wanted = self._limit + 1 - self.count if size < 0 else size
        if self.count + wanted > self._limit + 1:
            raise _Unpacked
        data = self._stream.read(wanted)
        self.count += len(data)
        if self.count > self._limit:
            raise _Unpacked
        return data


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(message, code="invalid_bundle")


def _member_problem(member: tarfile.TarInfo) -> str | None:
    """Why `member` may not be in a snapshot, or None."""
    name = member.name
    parts = name.split("/")
    if name.startswith("/") or ".." in parts:
        return "its path is absolute or climbs out with '..'"
    if member.isdev() or member.isfifo():
        return "it is a device or a FIFO (only files, directories and links are allowed)"
    if member.issym() or member.islnk():
        target = member.linkname
        base = posixpath.dirname(name) if member.issym() else ""
        resolved = posixpath.normpath(posixpath.join(base, target))
        if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
            return f"it links to {target!r}, outside the bundle"
    elif not (member.isfile() or member.isdir()):
        return "it is neither a file, a directory nor a link"
    return None


def _read(
    bundle: IO[bytes], limits: SnapshotLimits, use: Callable[[tarfile.TarFile, tarfile.TarInfo], None]
) -> int:
    """Read the gzip'd tarball `bundle` from its current position, handing each member that passes the
    rules above to `use`; returns the member count. InvalidRequest (400) or PayloadTooLarge (413)."""
    if bundle.read(2) != GZIP_MAGIC:
        raise _invalid("the bundle is not gzip'd: send a .tar.gz")
    bundle.seek(-2, 1)
    reader = _CountingReader(gzip.GzipFile(fileobj=bundle, mode="rb"), limits.max_unpacked_bytes)
    members = 0
    try:
        with tarfile.open(fileobj=reader, mode="r|") as archive:  # type: ignore[call-overload]
            for member in archive:
                members += 1
                if members > limits.max_members:
                    raise PayloadTooLarge(
                        f"the bundle has more than {limits.max_members} members", code="bundle_too_large"
                    )
                problem = _member_problem(member)
                if problem:
                    raise _invalid(f"the bundle's member {member.name!r} is refused: {problem}")
                use(archive, member)
    except _Unpacked:
        raise PayloadTooLarge(
            f"the bundle unpacks to more than {limits.max_unpacked_bytes} bytes", code="bundle_too_large"
        ) from None
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise _invalid(f"the bundle is not a valid gzip'd tar: {exc}") from None
    if members == 0:
        raise _invalid("the bundle is empty")
    return members


def inspect_bundle(bundle: IO[bytes], limits: SnapshotLimits) -> int:
    """Check the tarball `bundle` against the rules above without unpacking it; returns its member count."""
    return _read(bundle, limits, lambda archive, member: None)


def extract_bundle(bundle: IO[bytes], destination: Path, limits: SnapshotLimits) -> None:
    """Unpack the tarball `bundle` into the empty directory `destination`, each member only once it passed
    the rules above, and through tarfile's `data` filter as a second guard (no setuid bits, no owners,
    nothing outside `destination`)."""
    _read(bundle, limits, lambda archive, member: archive.extract(member, destination, filter="data"))
