"""Forwarding the secrets a spec declares, as the Keystone SDK's `spec_path=` does on create calls."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..secrets import resolve_fixed
from ..spec import Secret, read_yaml


def collect_declared_secrets_from_file(spec_path: str | Path) -> dict[str, str]:
    """Values of the secrets declared in the spec at `spec_path` that the caller's machine resolves
    (`env`, `env:NAME`, `file:PATH`, `command:CMD`); unset or empty values are skipped. `dashboard` and
    `from:` entries are left to the server. Raises `polarity_keystone.secrets.SecretError` for an unknown
    source or a failing command (an input error, like a bad spec), and `SpecError` for a file that is not a
    spec's YAML (read with the spec's size and depth bounds)."""
    data, _ = read_yaml(Path(spec_path).read_text(encoding="utf-8"), str(spec_path))
    entries = data.get("secrets") or []
    declared = [Secret.model_validate({"name": e} if isinstance(e, str) else e) for e in entries]
    resolved_here = [s for s in declared if s.from_ is None and (s.source or "env") != "dashboard"]
    return resolve_fixed(resolved_here)


def request_secrets(secrets: Mapping[str, str] | None, spec_path: str | Path | None) -> dict[str, str] | None:
    """The `secrets` of a create request: the spec's declared ones, overridden by explicit ones."""
    if spec_path is None and secrets is None:
        return None
    merged = collect_declared_secrets_from_file(spec_path) if spec_path is not None else {}
    merged.update(secrets or {})
    return merged
