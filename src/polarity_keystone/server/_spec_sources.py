"""Uploaded specs, validated by the spec loader, and where their relative paths point.

A spec's `agent.path` and fixture files are relative to the spec's directory, and confined to it. In
embedded mode the client names that directory (`source_dir`) with the upload; it is recorded on the
spec's upload log (stream `spec:<id>`, one `uploaded` event per upload with its version), so every later
use of that version finds its files. Elsewhere relative paths resolve from the server's spec root; a
shared server without one refuses every local path, since its working directory holds the server's
own files, not the spec author's. An upload with a bundle (the spec's files sent by content, see
BundleCache) names no directory of the server: its version is loaded from the bundle's files, written
out by the server, on any server.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ..spec import LoadedSpec, Manifest, parse_spec
from ..store import SpecRecord, Store
from ._bundle_cache import BundleCache
from ._errors import InvalidRequest
from ._events import EventBus


def spec_log(project_id: str, spec_id: str) -> str:
    return f"spec:{project_id}/{spec_id}"


class SpecSources:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        bundles: BundleCache,
        *,
        allow_local_paths: bool,
        spec_root: Path | None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._bundles = bundles
        self._allow_local_paths = allow_local_paths
        self._spec_root = spec_root
        self._uploads: dict[tuple[str, str, int], dict[str, str | None]] = {}
        self._lock = threading.Lock()

    def _parse(self, text: str, filename: str, source_dir: str | None, bundle: str | None) -> LoadedSpec:
        """The spec validated against its root (SpecError): its bundle's files, `source_dir` (embedded),
        the spec root, the working directory of an embedded server, or none at all (a shared server
        without a spec root)."""
        if bundle is not None:
            return parse_spec(text, filename, self._bundles.directory(bundle))
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

    def upload(
        self,
        project_id: str,
        text: str,
        filename: str,
        source_dir: str | None,
        manifest: Manifest | None = None,
    ) -> tuple[SpecRecord, LoadedSpec]:
        """Validate (SpecError with every issue) and store a new version, or the latest one if the text
        is unchanged (its files are then the ones of this upload: its `source_dir` or bundle)."""
        if manifest is not None and source_dir is not None:
            raise InvalidRequest("an upload names its files either by source_dir or by a bundle, not both")
        bundle = self._bundles.accept(manifest, project_id) if manifest is not None else None
        loaded = self._parse(text, filename, source_dir, bundle)
        record = self._store.put_spec(project_id, loaded.spec.id, text, loaded.sha256)
        origin = {"source_dir": source_dir, "bundle": bundle}
        self._bus.publish(
            spec_log(project_id, record.id),
            "uploaded",
            {"version": record.version, "sha256": record.sha256, **origin},
        )
        with self._lock:
            self._uploads[(project_id, record.id, record.version)] = origin
        return record, loaded

    def source_dir(self, record: SpecRecord) -> str | None:
        """The directory named by the latest upload of this version (None: the spec root or a bundle)."""
        return self._origin(record)["source_dir"]

    def bundle(self, record: SpecRecord) -> str | None:
        """The digest of the bundle of the latest upload of this version, if it had one."""
        return self._origin(record)["bundle"]

    def _origin(self, record: SpecRecord) -> dict[str, str | None]:
        key = (record.project_id, record.id, record.version)
        with self._lock:
            if key in self._uploads:
                return self._uploads[key]
        found: dict[str, str | None] = {"source_dir": None, "bundle": None}
        after = 0
        while events := self._store.events_after(spec_log(record.project_id, record.id), after):
            for event in events:
                if event.data.get("version") == record.version:
                    found = {name: event.data.get(name) for name in found}
            after = events[-1].id
        with self._lock:
            self._uploads[key] = found
        return found

    def load(
        self,
        project_id: str,
        spec_id: str,
        version: int | None,
        source_dir: str | None,
        bundle: str | None = None,
    ) -> LoadedSpec:
        """A stored spec, validated again against its files (which may have changed since the upload,
        unless they came in a bundle). Without `source_dir` or `bundle`: the bundle of the version's
        latest upload, if it had one."""
        record = self._store.get_spec(project_id, spec_id, version)
        if source_dir is None and bundle is None:
            bundle = self.bundle(record)
        return self._parse(record.yaml, f"{spec_id}.yaml", source_dir, bundle)
