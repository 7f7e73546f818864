"""In-memory tar archives: how files travel in and out of containers through the Docker API."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from ..spec import LocalPathError, read_regular, tree
from ._base import SandboxError

Owner = tuple[int, int]
"""(uid, gid) that extracted entries belong to: Docker extracts with the archive's numeric ids."""


def tar_files(
    files: Mapping[str, bytes], modes: Mapping[str, int] | None = None, owner: Owner = (0, 0)
) -> bytes:
    """A tar of `files` (archive path -> content); parent directories are created on extraction."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name in sorted(files):
            info = tarfile.TarInfo(name.lstrip("/"))
            info.size = len(files[name])
            info.mode = (modes or {}).get(name, 0o644)
            info.uid, info.gid = owner
            archive.addfile(info, io.BytesIO(files[name]))
    return buffer.getvalue()


def tar_directory(local_dir: str, owner: Owner = (0, 0), under: str = "") -> bytes:
    """A tar of a local directory's contents (not the directory itself), every entry owned by `owner`
    (not by whoever owns the files on this machine). Symlinks are kept as links, never followed, so
    one pointing out of the directory cannot copy what it points to; regular files are read without
    blocking (see `read_regular`); a FIFO, device or socket raises SandboxError (the spec's checks
    refuse them first; this catches a file swapped since). With `under` (e.g. `opt/agent`), the
    entries are put below that path, whose own entry belongs to root with mode 0755: extracted at /,
    the tar makes the directory too, which saves a `mkdir` in the container first."""
    try:
        return _tar_tree(Path(local_dir), owner, under.strip("/"))
    except LocalPathError as exc:
        raise SandboxError(f"cannot copy {local_dir} into the sandbox: {exc.message}") from None


def _tar_tree(local_dir: Path, owner: Owner, under: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        if under:
            top = tarfile.TarInfo(under)
            top.type, top.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(top)
        for entry in tree(local_dir):
            info = tarfile.TarInfo(f"{under}/{entry.relative}" if under else entry.relative)
            info.uid, info.gid = owner
            info.mode = stat.S_IMODE(entry.mode)
            info.mtime = int(entry.status.st_mtime)
            content = None
            if stat.S_ISDIR(entry.mode):
                info.type = tarfile.DIRTYPE
            elif stat.S_ISLNK(entry.mode):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(entry.path)
            else:
                data = read_regular(entry.path)
                info.size, content = len(data), io.BytesIO(data)
            archive.addfile(info, content)
    return buffer.getvalue()


class _ChunkReader:
    """`read(size)` over an iterator of byte chunks (all tarfile's stream mode asks of a file), read as
    far as the reader needs and no further."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = bytearray()

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._pending) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._pending += chunk
        end = len(self._pending) if size < 0 else min(size, len(self._pending))
        taken = bytes(self._pending[:end])
        del self._pending[:end]
        return taken


def first_file(chunks: Iterator[bytes], limit: int | None = None) -> bytes:
    """The content of the single regular file in a tar stream (Docker's get_archive of a file): its first
    `limit` bytes at most, read without holding more of the stream in memory."""
    with tarfile.open(fileobj=_ChunkReader(chunks), mode="r|") as archive:  # type: ignore[call-overload]
        for member in archive:
            if member.isfile():
                extracted = archive.extractfile(member)
                return extracted.read(-1 if limit is None else limit) if extracted else b""
    raise IsADirectoryError("not a regular file")
