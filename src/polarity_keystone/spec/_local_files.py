"""Every local file a loaded spec depends on: the spec file itself and each path it names on the machine
that runs it (the agent directory, fixture sources, SQL files, custom check scripts, local git repos).

What uses it: the gate's changed-paths filter (a spec none of whose local files changed since the
baseline need not run again), and anything that must ship a spec together with its files.

Not listed, because they are not files of the spec: paths inside the sandbox (`setup.files[].path` with
its inline `content`, a directory fixture's `path`, a secret's `scope.file_template`, the file checks'
`path`), and a secret's `source: file:…`, a file of the machine that holds the secret's value, which is
never part of the spec.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ._loader import LoadedSpec
from ._paths import PathKind
from ._semantic import local_paths
from ._source import dotted

SPEC_FILE_FIELD = "(spec file)"
"""The `field` of the spec file itself, which no field of the spec names."""


@dataclass(frozen=True)
class LocalFile:
    field: str
    """The spec field that names it, as users write it (`agent.path`, `fixtures[0].source`), or
    SPEC_FILE_FIELD."""
    path: str
    """Relative to the spec's directory, POSIX, after symlinks are resolved; it may start with `..` (a
    spec parsed from text may name files outside its directory)."""
    kind: PathKind


def _relative(spec_dir: Path, value: str) -> str:
    resolved = (spec_dir / value).resolve()
    return Path(os.path.relpath(resolved, spec_dir.resolve())).as_posix()


def local_files(loaded: LoadedSpec) -> list[LocalFile]:
    """The spec file (when it was loaded from one) and every local path the spec names, in spec order."""
    files = []
    if loaded.path is not None:
        files.append(LocalFile(SPEC_FILE_FIELD, _relative(loaded.spec_dir, str(loaded.path)), "file"))
    for where, value, kind in local_paths(loaded.spec):
        files.append(LocalFile(dotted(where), _relative(loaded.spec_dir, value), kind))
    return files
