"""Loading spec files for a command: every error of every file printed, then one verdict."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from ..spec import LoadedSpec, SpecError, load_spec


def load_or_report(paths: Sequence[Path], console: Console) -> list[LoadedSpec] | None:
    """The loaded specs, or None after printing each issue (file:line:column, field, fix)."""
    loaded, failed = [], False
    for path in paths:
        try:
            loaded.append(load_spec(path))
        except SpecError as exc:
            failed = True
            for issue in exc.issues:
                console.print(issue.format(), markup=False, highlight=False)
    return None if failed else loaded
