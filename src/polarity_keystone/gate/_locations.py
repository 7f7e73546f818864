"""Where each spec's invariants are written, so an annotation of a failed scenario points at the line of
the invariant that failed (GitHub shows it there in the PR's diff)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..spec import LoadedSpec, SourceMap, read_yaml


def shown_path(path: Path) -> str:
    """The path as the workspace names it: relative to the working directory when under it."""
    return os.path.relpath(path) if path.is_absolute() and path.is_relative_to(Path.cwd()) else str(path)


class InvariantLocations:
    """(spec id, invariant name) -> (file, line, column) of `invariants.<name>` in that spec's file."""

    def __init__(self, loaded: Sequence[LoadedSpec]) -> None:
        self._sources: dict[str, SourceMap] = {}
        for item in loaded:
            if item.path is not None:
                _, self._sources[item.spec.id] = read_yaml(item.text, shown_path(item.path))

    def __call__(self, spec_id: str, invariant: str) -> tuple[str, int | None, int | None] | None:
        source = self._sources.get(spec_id)
        position = source.position(("invariants", invariant)) if source is not None else None
        if source is None or position is None:
            return None
        return source.file, position[0], position[1]
