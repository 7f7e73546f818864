"""`ks.specs`: upload spec YAML (versioned by its `id:`), read, list and delete specs, and read the
manifest of the files a spec was uploaded with."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import quote

from ..spec import collect_bundle, parse_spec
from ._bundle_upload import BundleUpload, send_blobs
from ._http import HttpClient
from ._models import Spec, SpecBundle


class SpecService:
    def __init__(self, http: HttpClient) -> None:
        self._http = http
        self.last_bundle: BundleUpload | None = None
        """What the latest `create` sent of its spec's local files (None: it had none)."""

    def create(
        self,
        yaml_content: str | None = None,
        *,
        path: str | Path | None = None,
        source_dir: str | Path | None = None,
    ) -> Spec:
        """Upload raw YAML, or the spec file at `path`; uploading the same `id:` with other content adds
        a version.

        The local files the spec names (agent code, fixture files, check scripts) are uploaded with it
        as a bundle, only those the server does not hold yet, so any server runs the spec with them.
        Their relative paths start from `source_dir`, by default the directory of `path`; YAML without
        either names no local file (a server without a spec root refuses one). With a directory, the
        spec is validated here first: SpecError (every issue, or a path a bundle cannot hold, such as
        one with `..` or a symlink leading out, by file and field) is raised before anything is sent."""
        if (yaml_content is None) == (path is None):
            raise TypeError("specs.create takes the spec's YAML or its path, one of the two")
        filename = "spec.yaml"
        if path is not None:
            yaml_content = Path(path).read_text(encoding="utf-8")
            filename = str(path)
            source_dir = Path(path).parent if source_dir is None else source_dir
        assert yaml_content is not None
        self.last_bundle = None
        if source_dir is None:
            return self._post(yaml_content, filename, None)
        loaded = parse_spec(yaml_content, filename, Path(source_dir).resolve())
        bundle = collect_bundle(loaded, filename)
        if not bundle.manifest:
            return self._post(yaml_content, filename, None)
        self.last_bundle = send_blobs(self._http, bundle)
        manifest = {name: entry.as_json() for name, entry in bundle.manifest.items()}
        return self._post(yaml_content, filename, manifest)

    def _post(self, yaml_content: str, filename: str, manifest: Mapping[str, object] | None) -> Spec:
        params = {"filename": filename}
        if manifest is None:
            data = self._http.json(
                "POST",
                "/v1/specs",
                content=yaml_content.encode("utf-8"),
                params=params,
                headers={"Content-Type": "application/x-yaml"},
            )
        else:
            data = self._http.json(
                "POST", "/v1/specs", json={"yaml": yaml_content, "bundle": manifest}, params=params
            )
        return Spec.from_dict(data)

    def get(self, spec_id: str, *, version: int | None = None) -> Spec:
        return Spec.from_dict(self._http.json("GET", _path(spec_id), params={"version": version}))

    def list(self, *, limit: int | None = None) -> list[Spec]:
        """The latest version of every spec (the first `limit`), fetching page after page."""
        return [Spec.from_dict(item) for item in self._http.list_items("/v1/specs", limit=limit)]

    def iter_all(self) -> Iterator[Spec]:
        """Every spec, fetching each page only when the iteration reaches it."""
        return (Spec.from_dict(item) for item in self._http.iter_items("/v1/specs"))

    def delete(self, spec_id: str) -> None:
        self._http.request("DELETE", _path(spec_id))

    def bundle(self, digest: str) -> SpecBundle:
        """The manifest of a bundle this project uploaded (a run's fingerprint names it as `bundle`):
        every file's path, sha256, size and mode. NotFoundError for a digest the project has no bundle of."""
        return SpecBundle.from_dict(self._http.json("GET", f"/v1/bundles/{quote(digest, safe='')}"))


def _path(spec_id: str) -> str:
    return f"/v1/specs/{quote(spec_id, safe='')}"
