"""Resolve the spec's `secrets` (where from: see `_sources`) and keep their values out of every
output."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from ..spec import Secret, SecretScope
from ._sources import LOCAL, SecretError, SecretPolicy, read_source, require_available

_TEMPLATE = re.compile(r"\{\{\s*secrets\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def resolve_fixed(
    declared: list[Secret], provided: Mapping[str, str] | None = None, policy: SecretPolicy = LOCAL
) -> dict[str, str]:
    """Every secret but the generated ones, resolved once per run (a `command:` source may call a vault);
    empty or unset values are skipped, as the Keystone SDKs do. `provided` values (secrets a client sent
    to the server with its request) win, then the operator's sources of `policy`; the spec's own
    sources are read only when `policy.host_sources` (else SecretError, see `require_available`)."""
    provided = provided or {}
    require_available(declared, provided, policy)
    values: dict[str, str] = {}
    for secret in declared:
        value = None if secret.from_ == "generated" else provided.get(secret.name) or _resolve(secret, policy)
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


def _resolve(secret: Secret, policy: SecretPolicy) -> str | None:
    if secret.from_ is not None:
        if secret.from_.startswith("static://"):
            return secret.from_.removeprefix("static://")
        raise SecretError(
            f"secret {secret.name}: unknown `from` {secret.from_!r} (use static://VALUE or generated)"
        )
    if secret.name in policy.operator:
        return read_source(secret.name, policy.operator[secret.name])
    return read_source(secret.name, secret.source or "env")


def in_env(declared: list[Secret], values: Mapping[str, str]) -> dict[str, str]:
    """The secrets the agent gets as environment variables: all but those scoped `env: false`."""
    hidden = {s.name for s in declared if isinstance(s.scope, SecretScope) and not s.scope.env}
    return {name: value for name, value in values.items() if name not in hidden}


def secret_files(declared: list[Secret], values: Mapping[str, str], home: str) -> dict[str, str]:
    """`scope.file_template` secrets as {path in the sandbox: content}; `~` is `home`, the agent user's
    home (/home/agent by default, /root for `agent.user: root`). Content ends with a newline, which key
    files such as SSH keys need."""
    files = {}
    for secret in declared:
        if isinstance(secret.scope, SecretScope) and secret.scope.file_template and secret.name in values:
            path = secret.scope.file_template
            path = home + path[1:] if path.startswith("~") else path
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
