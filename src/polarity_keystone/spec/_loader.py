"""Read a spec file into a validated `Spec`, or raise one `SpecError` listing every problem.

The stages run in order (YAML, shape, cross-field rules plus unsupported features) because each
needs the previous one to succeed; within a stage every problem is collected, not just the first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ._errors import SpecError, SpecIssue
from ._models import Spec
from ._semantic import semantic_issues
from ._unsupported import unsupported_features
from ._validation import validate
from ._yaml import read_yaml


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec plus what the runtime needs about its file (for relative paths, replay)."""

    spec: Spec
    path: Path | None
    """The absolute path of the file, or None when parsed from a string."""
    text: str
    sha256: str
    """Hex digest of the raw bytes, so a replay can tell whether the spec changed."""
    spec_dir: Path
    """Where the spec's relative paths start: the file's directory, or the cwd for a string."""
    local_files: bool = True
    """Whether it may name files under `spec_dir`; False for a spec from someone who may not read this
    machine's files, which names none (then `spec_dir` is only the cwd, not the spec's)."""


def load_spec(path: str | Path) -> LoadedSpec:
    """Load and validate the spec at `path`; issues name the path as the caller wrote it."""
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        message = f"cannot read the spec: {exc.strerror or exc}"
        raise SpecError([SpecIssue(file, None, None, "", message)]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        message = f"the spec is not UTF-8 text (byte {exc.start} cannot be decoded)"
        raise SpecError([SpecIssue(file, None, None, "", message)]) from None
    absolute = Path(path).resolve()
    return _load(text, raw, file, absolute, absolute.parent)


def load_specs(paths: Sequence[str | Path]) -> list[LoadedSpec]:
    """Load every file, or raise one `SpecError` with the issues of all of them (not only the first
    broken file's), so a command reports everything wrong in one go."""
    loaded, issues = [], []
    for path in paths:
        try:
            loaded.append(load_spec(path))
        except SpecError as exc:
            issues += exc.issues
    if issues:
        raise SpecError(issues)
    return loaded


def parse_spec(
    text: str, filename: str = "<string>", spec_dir: Path | None = None, *, local_paths: bool = True
) -> LoadedSpec:
    """Validate spec text that is not (or not yet) a file; relative paths resolve from `spec_dir`
    (the cwd when None), e.g. where a spec uploaded to the server came from, and stay inside it.
    `local_paths=False` refuses every local path: the spec comes from someone who may not read the
    files of the machine validating it (a shared server with no spec root)."""
    raw = text.encode("utf-8", "surrogatepass")  # the YAML reader refuses surrogates, with a line
    return _load(text, raw, filename, None, spec_dir or Path.cwd(), local_paths)


def _load(
    text: str, raw: bytes, file: str, path: Path | None, spec_dir: Path, local_paths: bool = True
) -> LoadedSpec:
    data, source = read_yaml(text, file)
    spec = validate(data, source)
    root = spec_dir if local_paths else None
    issues = semantic_issues(spec, source, root) + unsupported_features(spec, source)
    if issues:
        raise SpecError(sorted(issues, key=lambda issue: (issue.line or 0, issue.column or 0)))
    return LoadedSpec(spec, path, text, hashlib.sha256(raw).hexdigest(), spec_dir, local_paths)
