"""Where a run's secret values may come from: the request, the server operator, or this machine.

A spec's `env:`, `file:` and `command:` sources read the machine that resolves them. That is right for
the local user running their own spec (`ks eval run`, the embedded server), and wrong for a shared
server, where the spec's author is a stranger: there a secret comes from the request that starts the
run, or from a source the operator allowed by name (`ks serve --secret NAME=env:VAR`), never from the
spec. `SecretPolicy` says which applies; `unavailable` names what a run would lack before it starts.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from ..spec import Secret

_SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HOST_KINDS = ("env", "file", "command")
"""Sources read on the machine that resolves them."""
_COMMAND_TIMEOUT_S = 60


class SecretError(Exception):
    """Raised when a secret cannot be resolved; names the secret and its source. Input error (exit 2)."""


@dataclass(frozen=True)
class SecretPolicy:
    """What a server may read for a secret that the request does not carry."""

    host_sources: bool = False
    """True for the local user's own (embedded) server: the spec's env/file/command sources are read on
    this machine. False for a shared server: the spec's sources are never read."""
    operator: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """name -> source (`env:VAR`, `file:PATH`, `command:CMD`) the operator allowed; used for that name
    whatever the spec declares."""

    def __post_init__(self) -> None:
        for name, source in self.operator.items():
            check_operator_secret(name, source)


LOCAL = SecretPolicy(host_sources=True)
"""The local user resolving their own spec on their own machine."""


def parse_operator_secret(text: str) -> tuple[str, str]:
    """`NAME=env:VAR` (or `file:PATH`, `command:CMD`) as (name, source); raises ValueError."""
    name, equals, source = text.partition("=")
    if not equals:
        raise ValueError(f"{text!r} is not NAME=SOURCE, e.g. API_KEY=env:API_KEY")
    check_operator_secret(name, source)
    return name, source


def check_operator_secret(name: str, source: str) -> None:
    kind, colon, arg = source.partition(":")
    if not _SECRET_NAME.fullmatch(name):
        raise ValueError(f"secret name {name!r} must be a valid environment variable name")
    if kind not in HOST_KINDS or not colon or not arg:
        raise ValueError(f"secret {name}: source {source!r} must be env:VAR, file:PATH or command:CMD")


def host_kind(secret: Secret) -> str | None:
    """The kind of machine-side source a declared secret reads (`env`, `file`, `command`), or None for
    one that reads nothing here (`from: static://…`, `from: generated`, `dashboard`)."""
    if secret.from_ is not None:
        return None
    kind = (secret.source or "env").partition(":")[0]
    return kind if kind in HOST_KINDS else None


def unavailable(declared: list[Secret], provided: Mapping[str, str], policy: SecretPolicy) -> list[str]:
    """One message per declared secret that `policy` cannot fill: neither in the request nor allowed by
    the operator, while the spec's own source may not be read. Reads nothing."""
    if policy.host_sources:
        return []
    problems = []
    for secret in declared:
        if secret.from_ is not None or provided.get(secret.name) or secret.name in policy.operator:
            continue
        kind = host_kind(secret) or (secret.source or "").partition(":")[0]
        problems.append(
            f"secret {secret.name}: its source ({kind}) would be read on the server, which a shared server"
            f" never does for a spec; send its value with the request (secrets={{{secret.name!r}: ...}},"
            f" or spec_path= in the SDK), or ask the operator to allow it: ks serve --secret"
            f" {secret.name}=env:VAR"
        )
    return problems


def require_available(declared: list[Secret], provided: Mapping[str, str], policy: SecretPolicy) -> None:
    """Raise SecretError (a 400 on the server, exit 2) naming every secret the run could not have."""
    problems = unavailable(declared, provided, policy)
    if problems:
        raise SecretError("; ".join(problems))


def read_source(name: str, source: str) -> str | None:
    """The value of a machine-side source; None for an unset variable. Raises SecretError."""
    kind, _, arg = source.partition(":")
    if kind == "env":
        return os.environ.get(arg or name)
    if kind == "file":
        try:
            return Path(arg).expanduser().read_text().strip()
        except OSError as exc:
            raise SecretError(f"secret {name}: cannot read {arg}: {exc.strerror}") from exc
    if kind == "command":
        try:
            done = subprocess.run(
                ["sh", "-c", arg], capture_output=True, text=True, timeout=_COMMAND_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            raise SecretError(f"secret {name}: command did not finish within {_COMMAND_TIMEOUT_S}s") from None
        if done.returncode != 0:
            raise SecretError(f"secret {name}: command exited {done.returncode}")
        return done.stdout.strip()
    raise SecretError(
        f'unknown secret source "{source}" for {name} (use env, env:NAME, file:PATH, command:CMD)'
    )
