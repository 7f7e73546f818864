"""What a spec's page shows: its live versions, one version's YAML, and a unified diff between two."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

from ...store import SpecRecord, Store

VERSIONS_SHOWN = 100
"""The page lists the newest this many versions; an older one is still shown when asked for."""

LineKind = Literal["file", "hunk", "added", "removed", "same"]


@dataclass(frozen=True)
class DiffLine:
    kind: LineKind
    text: str
    """The line as `unified_diff` writes it, its `+`, `-` or space prefix included."""


def versions(store: Store, project_id: str, spec_id: str) -> list[SpecRecord]:
    """The spec's versions that are not deleted, newest first (numbers skip those deleted before a
    re-upload)."""
    numbers = sorted(store.live_spec_versions(project_id).get(spec_id, ()), reverse=True)
    return [store.get_spec(project_id, spec_id, number) for number in numbers[:VERSIONS_SHOWN]]


def diff(older: SpecRecord, newer: SpecRecord) -> list[DiffLine]:
    """`older` to `newer` as a unified diff, each line with its kind; empty when the texts are equal."""
    lines = list(
        difflib.unified_diff(
            older.yaml.splitlines(),
            newer.yaml.splitlines(),
            fromfile=f"{older.id} v{older.version}",
            tofile=f"{newer.id} v{newer.version}",
            lineterm="",
        )
    )
    # The first two lines name the files; after them every line's first character says what it is (a
    # removed `---` line reads `----`, so the header cannot be told by its text).
    headers, body = lines[:2], lines[2:]
    return [DiffLine("file", line) for line in headers] + [DiffLine(_kind(line), line) for line in body]


_KINDS: dict[str, LineKind] = {"@": "hunk", "+": "added", "-": "removed"}


def _kind(line: str) -> LineKind:
    return _KINDS.get(line[:1], "same")
