"""Resolve the spec's `secrets` on the caller's machine and keep their values out of every output."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

from ..spec._models import Secret, SecretScope
from ._redaction import Redactor as Redactor  # re-exported: the gate and server import it here

_TEMPLATE = re.compile(r"\{\{\s*secrets\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class SecretError(Exception):
    """Raised when a secret cannot be resolved; names the secret and its source. Input error (exit 2)."""


def resolve_fixed(declared: list[Secret], provided: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every secret but the generated ones, resolved once per run (a `command:` source may call a vault);
    empty or unset values are skipped, as the Keystone SDKs do. `provided` values (secrets a client sent
    to the server with its request) win over the declared source."""
    provided = provided or {}
    values: dict[str, str] = {}
    for secret in declared:
        value = None if secret.from_ == "generated" else provided.get(secret.name) or _resolve(secret)
        if value:
            values[secret.name] = value
    return values


def generated(declared: list[Secret], seed: int) -> dict[str, str]:
    """`from: generated` secrets, derived from the replica's seed so a replay gets the same values."""
    return {
        secret.name: hashlib.sha256(f"{seed}/{secret.name}".encode()).hexdigest()
        for secret in declared
        if secret.from_ == "generated"
    }


def _resolve(secret: Secret) -> str | None:
    if secret.from_ is not None:
        if secret.from_.startswith("static://"):
            return secret.from_.removeprefix("static://")
        raise SecretError(
            f"secret {secret.name}: unknown `from` {secret.from_!r} (use static://VALUE or generated)"
        )
    source = secret.source or "env"
    kind, _, arg = source.partition(":")
    if kind == "env":
        return os.environ.get(arg or secret.name)
    if kind == "file":
        try:
            return Path(arg).expanduser().read_text().strip()
        except OSError as exc:
            raise SecretError(f"secret {secret.name}: cannot read {arg}: {exc.strerror}") from exc
    if kind == "command":
        done = subprocess.run(["sh", "-c", arg], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise SecretError(f"secret {secret.name}: command exited {done.returncode}")
        return done.stdout.strip()
    raise SecretError(
        f'unknown secret source "{source}" for {secret.name} (use env, env:NAME, file:PATH, command:CMD)'
    )


def in_env(declared: list[Secret], values: Mapping[str, str]) -> dict[str, str]:
    """The secrets the agent gets as environment variables: all but those scoped `env: false`."""
    hidden = {s.name for s in declared if isinstance(s.scope, SecretScope) and not s.scope.env}
    return {name: value for name, value in values.items() if name not in hidden}


def secret_files(declared: list[Secret], values: Mapping[str, str]) -> dict[str, str]:
    """`scope.file_template` secrets as {path in the sandbox: content}; `~` is the agent's home (/root).
    Content ends with a newline, which key files such as SSH keys need."""
    files = {}
    for secret in declared:
        if isinstance(secret.scope, SecretScope) and secret.scope.file_template and secret.name in values:
            path = secret.scope.file_template
            path = "/root" + path[1:] if path.startswith("~") else path
            files[path] = values[secret.name].rstrip("\n") + "\n"
    return files


def interpolate(text: str, values: Mapping[str, str]) -> str:
    """Replace `{{ secrets.NAME }}`; an undeclared or unresolved name is an error, never an empty string."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise SecretError(
                f"{{{{ secrets.{name} }}}} is used but secret {name} is not declared or has no value"
            )
        return values[name]

    return _TEMPLATE.sub(substitute, text)
