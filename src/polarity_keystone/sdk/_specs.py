"""`ks.specs`: upload spec YAML (versioned by its `id:`), read, list and delete specs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from ._http import HttpClient
from ._models import Spec


class SpecService:
    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def create(self, yaml_content: str, *, source_dir: str | Path | None = None) -> Spec:
        """Upload raw YAML; uploading the same `id:` with other content adds a version.

        `source_dir` tells a server on this machine (embedded mode) where the spec's relative paths
        (agent code, fixture files) are; a shared server refuses it with 400."""
        params = {"source_dir": str(Path(source_dir).resolve())} if source_dir is not None else None
        data = self._http.json(
            "POST",
            "/v1/specs",
            content=yaml_content.encode("utf-8"),
            params=params,
            headers={"Content-Type": "application/x-yaml"},
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


def _path(spec_id: str) -> str:
    return f"/v1/specs/{quote(spec_id, safe='')}"
