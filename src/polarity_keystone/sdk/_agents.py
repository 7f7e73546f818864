"""`ks.agents`: agent snapshots, versioned tarballs of agent code that specs run with
`agent: {type: snapshot, name: ...}`.

`upload` takes a directory (tarred, skipping what is never part of an agent: VCS folders, caches,
virtualenvs, node_modules), one file (a one-file tarball) or a ready `.tar.gz` (sent as it is). A tarball
the SDK builds is the same bytes for the same files (sorted, times and owners cleared), so uploading an
unchanged directory again answers the snapshot it already is instead of a new version. The tarball is
written to a temporary file and streamed from there, never held in memory.
"""

from __future__ import annotations

import builtins
import gzip
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from ._http import HttpClient
from ._models import AgentAuth, AgentSnapshot

JUNK = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        "node_modules",
        ".venv",
        "venv",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".DS_Store",
    }
)
"""Names of files and folders a directory upload leaves out, wherever they are."""
JUNK_SUFFIXES = (".pyc", ".pyo")
TARBALL_SUFFIXES = (".tar.gz", ".tgz")


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """A member that depends on the file's content and executable bit only."""
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    executable = info.isdir() or info.mode & 0o111
    info.mode = 0o755 if executable else 0o644
    return info


def _members(root: Path) -> Iterator[Path]:
    """The files, folders and links under `root` that are not junk, in a fixed order."""
    for directory, folders, files in os.walk(root):
        folders[:] = sorted(name for name in folders if name not in JUNK)
        base = Path(directory)
        for name in folders:
            yield base / name
        for name in sorted(files):
            if name not in JUNK and not name.endswith(JUNK_SUFFIXES):
                yield base / name


def write_tarball(path: Path, into: IO[bytes]) -> None:
    """A gzip'd tar of the directory `path` (its contents at the top), or of the one file `path`."""
    with (
        gzip.GzipFile(fileobj=into, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        if path.is_dir():
            for member in _members(path):
                archive.add(member, member.relative_to(path).as_posix(), recursive=False, filter=_normalised)
        else:
            archive.add(path, path.name, filter=_normalised)


@contextmanager
def _bundle(path: Path) -> Iterator[IO[bytes]]:
    if not path.exists():
        raise FileNotFoundError(f"no file or directory {str(path)!r} to upload as an agent")
    if path.is_file() and path.name.endswith(TARBALL_SUFFIXES):
        with path.open("rb") as given:
            yield given
        return
    with tempfile.TemporaryFile() as built:
        write_tarball(path, built)
        built.seek(0)
        yield built


class AgentService:
    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def upload(
        self,
        name: str,
        path: str | os.PathLike[str],
        entrypoint: Sequence[str],
        *,
        runtime: str | None = None,
        auth: AgentAuth | Mapping[str, Any] | None = None,
        tag: str | None = None,
    ) -> AgentSnapshot:
        """Upload the agent at `path` as the next version of `name` (or get the snapshot these bytes
        already are); `tag` points a tag at it, moving the tag from another version."""
        metadata: dict[str, Any] = {"name": name, "entrypoint": list(entrypoint)}
        if runtime is not None:
            metadata["runtime"] = runtime
        if tag is not None:
            metadata["tag"] = tag
        if auth is not None:
            metadata["auth"] = AgentAuth.model_validate(auth).model_dump()
        with _bundle(Path(path)) as bundle:
            files = {"bundle": (f"{name}.tar.gz", bundle, "application/gzip")}
            form = ({"metadata": json.dumps(metadata)}, files)
            # Content-addressed: sending it again is harmless, so no Idempotency-Key (its record would
            # make the server hold the whole tarball in memory).
            body = self._http.json("POST", "/v1/agents", form=form, keyed=False)
        return AgentSnapshot.from_dict(body)

    def get(self, name: str, *, tag: str | None = None, version: int | None = None) -> AgentSnapshot:
        """The latest version of `name`, the one `tag` points at, or `version`."""
        if tag is not None and version is not None:
            raise ValueError("give tag or version, not both")
        where = "latest"
        if tag is not None:
            where = f"tags/{_part(tag)}"
        elif version is not None:
            where = f"versions/{version}"
        return AgentSnapshot.from_dict(self._http.json("GET", f"/v1/agents/{_part(name)}/{where}"))

    def get_by_id(self, snapshot_id: str) -> AgentSnapshot:
        return AgentSnapshot.from_dict(self._http.json("GET", f"/v1/snapshots/{_part(snapshot_id)}"))

    def list(
        self, limit: int = 50, cursor: str | None = None
    ) -> tuple[builtins.list[AgentSnapshot], str | None]:
        """One page of the project's agents (the latest version of each, by name) and the next page's
        cursor (None on the last page)."""
        return self._page("/v1/agents", limit, cursor)

    def list_versions(
        self, name: str, limit: int = 20, cursor: str | None = None
    ) -> tuple[builtins.list[AgentSnapshot], str | None]:
        """One page of `name`'s versions, newest first, and the next page's cursor."""
        return self._page(f"/v1/agents/{_part(name)}/versions", limit, cursor)

    def delete(self, snapshot: AgentSnapshot | str) -> None:
        """Delete one snapshot (a version; its number is never given again) and the tags on it."""
        snapshot_id = snapshot if isinstance(snapshot, str) else snapshot.id
        self._http.request("DELETE", f"/v1/snapshots/{_part(snapshot_id)}")

    def _page(
        self, path: str, limit: int, cursor: str | None
    ) -> tuple[builtins.list[AgentSnapshot], str | None]:
        page = self._http.json("GET", path, params={"limit": limit, "cursor": cursor})
        return [AgentSnapshot.from_dict(item) for item in page["items"]], page.get("next_cursor")


def _part(value: str) -> str:
    return quote(value, safe="")
