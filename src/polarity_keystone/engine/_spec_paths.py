"""A spec's local paths, checked again where they are used: the files may have changed since the spec
was validated."""

from __future__ import annotations

from pathlib import Path

from ..spec import LoadedSpec, LocalPathError, PathKind, confine


def local_path(loaded: LoadedSpec, field: str, value: str, kind: PathKind) -> Path:
    """`value` (the spec's `field`) resolved in the spec's directory; SpecError when it now leaves the
    spec's root or is no longer a regular file or directory."""
    try:
        return confine(loaded.spec_dir, value, kind)
    except LocalPathError as exc:
        raise exc.spec_error(spec_file(loaded), field) from None


def spec_file(loaded: LoadedSpec) -> str:
    """How errors name the spec's file."""
    return str(loaded.path or f"{loaded.spec.id}.yaml")
