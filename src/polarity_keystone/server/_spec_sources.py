"""Uploaded specs, validated by the spec loader, and where their relative paths point.

A spec's `agent.path` and fixture files are relative to the spec's directory, and confined to it. In
embedded mode the client names that directory (`source_dir`) with the upload; it is recorded on the
spec's upload log (stream `spec:<id>`, one `uploaded` event per upload with its version), so every later
use of that version finds its files. Elsewhere relative paths resolve from the server's spec root; a
shared server without one refuses every local path, since its working directory holds the server's
own files, not the spec author's.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ..spec import LoadedSpec, parse_spec
from ..store import SpecRecord, Store
from ._errors import InvalidRequest
from ._events import EventBus


def spec_log(spec_id: str) -> str:
    return f"spec:{spec_id}"


class SpecSources:
    def __init__(
        self, store: Store, bus: EventBus, *, allow_local_paths: bool, spec_root: Path | None
    ) -> None:
        self._store = store
        self._bus = bus
        self._allow_local_paths = allow_local_paths
        self._spec_root = spec_root
        self._source_dirs: dict[tuple[str, int], str | None] = {}
        self._lock = threading.Lock()

    def _parse(self, text: str, filename: str, source_dir: str | None) -> LoadedSpec:
        """The spec validated against its root (SpecError): `source_dir` (embedded), the spec root, the
        working directory of an embedded server, or none at all (a shared server without a spec root)."""
        if source_dir is None and self._spec_root is None and not self._allow_local_paths:
            return parse_spec(text, filename, local_paths=False)
        return parse_spec(text, filename, self._spec_dir(source_dir))

    def _spec_dir(self, source_dir: str | None) -> Path:
        if source_dir is None:
            return self._spec_root or Path.cwd()
        if not self._allow_local_paths:
            raise InvalidRequest(
                "source_dir is only accepted by an embedded server (allow_local_paths); a shared server "
                "resolves spec paths from its own spec root",
                code="local_paths_not_allowed",
            )
        path = Path(source_dir)
        if not path.is_absolute() or not path.is_dir():
            raise InvalidRequest(f"source_dir must be an existing absolute directory, got {source_dir!r}")
        return path

    def upload(self, text: str, filename: str, source_dir: str | None) -> tuple[SpecRecord, LoadedSpec]:
        """Validate (SpecError with every issue) and store a new version, or the latest one if the text
        is unchanged."""
        loaded = self._parse(text, filename, source_dir)
        record = self._store.put_spec(loaded.spec.id, text, loaded.sha256)
        self._bus.publish(
            spec_log(record.id),
            "uploaded",
            {"version": record.version, "sha256": record.sha256, "source_dir": source_dir},
        )
        with self._lock:
            self._source_dirs[(record.id, record.version)] = source_dir
        return record, loaded

    def source_dir(self, record: SpecRecord) -> str | None:
        """The directory named by the latest upload of this version (None: the spec root)."""
        key = (record.id, record.version)
        with self._lock:
            if key in self._source_dirs:
                return self._source_dirs[key]
        found, after = None, 0
        while events := self._store.events_after(spec_log(record.id), after):
            for event in events:
                if event.data.get("version") == record.version:
                    found = event.data.get("source_dir")
            after = events[-1].id
        with self._lock:
            self._source_dirs[key] = found
        return found

    def load(self, spec_id: str, version: int | None, source_dir: str | None) -> LoadedSpec:
        """A stored spec, validated again against its files (which may have changed since the upload)."""
        record = self._store.get_spec(spec_id, version)
        return self._parse(record.yaml, f"{spec_id}.yaml", source_dir)
