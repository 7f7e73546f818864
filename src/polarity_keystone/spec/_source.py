"""Where each key of a spec sits in its file, so any problem found later can point at a line.

Validation works on plain Python data, which has forgotten the YAML positions; `SourceMap` keeps
them keyed by data path (mapping keys and list indexes) and turns a path into a `SpecIssue`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ._errors import SpecIssue

DataPath = tuple[str | int, ...]
"""A location in the loaded data: mapping keys and list indexes, outermost first."""


def dotted(path: Sequence[object]) -> str:
    """`('services', 0, 'image')` → `services[0].image`, the way users write field names."""
    text = ""
    for segment in path:
        if isinstance(segment, int):
            text += f"[{segment}]"
        else:
            text += f".{segment}" if text else str(segment)
    return text


class SourceMap:
    """Positions (1-based line, column) of every mapping key and list item of one spec file."""

    def __init__(self, file: str, positions: Mapping[DataPath, tuple[int, int]] | None = None) -> None:
        self.file = file
        self._positions = dict(positions or {})

    def position(self, path: DataPath) -> tuple[int, int] | None:
        """The position of the deepest node on `path` that exists in the file.

        A missing field therefore points at its parent's key, and a wrong value at its own key.
        """
        for end in range(len(path), -1, -1):
            found = self._positions.get(path[:end])
            if found is not None:
                return found
        return None

    def issue(self, path: DataPath, message: str, suggestion: str | None = None) -> SpecIssue:
        position = self.position(path)
        line, column = position if position else (None, None)
        return SpecIssue(self.file, line, column, dotted(path), message, suggestion)
