"""Uploaded specs, validated by the spec loader, and where their relative paths point.

A spec's `agent.path` and fixture files are relative to the spec's directory, and confined to it. The
client sends those files with the upload as a bundle (by content, see BundleCache), embedded server or
shared one alike: the version is loaded from the bundle's files, written out by the server. The bundle
is recorded on the spec's upload log (stream `spec:<project>/<id>`, one `uploaded` event per upload with
its version), so every later use of that version finds its files. An upload without a bundle resolves
relative paths from the server's spec root (an operator's own directory); a server without a spec root
refuses every local path in it, since its working directory holds the server's own files, not the spec
author's.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ..spec import LoadedSpec, Manifest, parse_spec
from ..store import SpecRecord, Store
from ._bundle_cache import BundleCache
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
        spec_root: Path | None,
    ) -> None:
        self._store = store
        self._bus = bus
        self._bundles = bundles
        self._spec_root = spec_root
        self._uploads: dict[tuple[str, str, int], str | None] = {}
        self._lock = threading.Lock()

    def _parse(self, text: str, filename: str, bundle: str | None) -> LoadedSpec:
        """The spec validated against its root (SpecError): its bundle's files, the spec root, or none
        at all (a server without a spec root)."""
        if bundle is not None:
            return parse_spec(text, filename, self._bundles.directory(bundle))
        if self._spec_root is None:
            return parse_spec(text, filename, local_paths=False)
        return parse_spec(text, filename, self._spec_root)

    def upload(
        self,
        project_id: str,
        text: str,
        filename: str,
        manifest: Manifest | None = None,
    ) -> tuple[SpecRecord, LoadedSpec]:
        """Validate (SpecError with every issue) and store a new version, or the latest one if the text
        is unchanged (its files are then the ones of this upload's bundle)."""
        bundle = self._bundles.accept(manifest, project_id) if manifest is not None else None
        loaded = self._parse(text, filename, bundle)
        record = self._store.put_spec(project_id, loaded.spec.id, text, loaded.sha256)
        self._bus.publish(
            spec_log(project_id, record.id),
            "uploaded",
            {"version": record.version, "sha256": record.sha256, "bundle": bundle},
        )
        with self._lock:
            self._uploads[(project_id, record.id, record.version)] = bundle
        return record, loaded

    def bundle(self, record: SpecRecord) -> str | None:
        """The digest of the bundle of the latest upload of this version, if it had one."""
        key = (record.project_id, record.id, record.version)
        with self._lock:
            if key in self._uploads:
                return self._uploads[key]
        found: str | None = None
        after = 0
        while events := self._store.events_after(spec_log(record.project_id, record.id), after):
            for event in events:
                if event.data.get("version") == record.version:
                    found = event.data.get("bundle")
            after = events[-1].id
        with self._lock:
            self._uploads[key] = found
        return found

    def load(
        self,
        project_id: str,
        spec_id: str,
        version: int | None,
        bundle: str | None = None,
    ) -> LoadedSpec:
        """A stored spec, validated again against its files (which may have changed since the upload,
        unless they came in a bundle). Without `bundle`: the bundle of the version's latest upload, if
        it had one."""
        record = self._store.get_spec(project_id, spec_id, version)
        return self._parse(record.yaml, f"{spec_id}.yaml", bundle or self.bundle(record))
