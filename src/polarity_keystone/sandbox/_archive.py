"""In-memory tar archives: how files travel in and out of containers through the Docker API."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator, Mapping


def tar_files(files: Mapping[str, bytes], modes: Mapping[str, int] | None = None) -> bytes:
    """A tar of `files` (archive path -> content); parent directories are created on extraction."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name in sorted(files):
            info = tarfile.TarInfo(name.lstrip("/"))
            info.size = len(files[name])
            info.mode = (modes or {}).get(name, 0o644)
            archive.addfile(info, io.BytesIO(files[name]))
    return buffer.getvalue()


def tar_directory(local_dir: str) -> bytes:
    """A tar of a local directory's contents (not the directory itself), symlinks kept as links."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for entry in sorted(os.listdir(local_dir)):
            archive.add(os.path.join(local_dir, entry), arcname=entry)
    return buffer.getvalue()


def first_file(chunks: Iterator[bytes]) -> bytes:
    """The content of the single regular file in a tar stream (Docker's get_archive of a file)."""
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks)), mode="r") as archive:
        for member in archive:
            if member.isfile():
                extracted = archive.extractfile(member)
                return extracted.read() if extracted else b""
    raise IsADirectoryError("not a regular file")
