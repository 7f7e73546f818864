"""What a backend runs for a backing service: a container plan with a readiness strategy.

The sandbox knows no kind of service. Each kind (in `services/`) turns a spec's service into a
`ServiceContainer`; a backend starts it and waits by its `readiness`, whatever the kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LogLine:
    """Ready once the container has printed `text` (cheap: no process is started to probe)."""

    text: str


@dataclass(frozen=True)
class CommandSucceeds:
    """Ready once `command` (a shell command) exits 0 inside the container."""

    command: str


@dataclass(frozen=True)
class StaysUp:
    """No readiness signal: ready once the container has run for `seconds` without exiting, so one
    that crashes at start is an error rather than a service the agent cannot reach."""

    seconds: float = 0.5


Readiness = LogLine | CommandSucceeds | StaysUp


@dataclass(frozen=True)
class ServiceTls:
    """How a service answers TLS for the hosts the network policy overrides to it: the backend issues it
    a certificate for those names from its engine's CA, placed at `cert_path` and `key_path` before the
    container starts, sends TLS for those names to `port`, and makes the agent trust the CA."""

    port: int
    cert_path: str
    key_path: str


@dataclass(frozen=True)
class ServiceContainer:
    """One service container of a sandbox; the agent reaches it by `name`."""

    name: str
    kind: str
    """The service's kind (`postgres`, `generic`...), reported with its endpoint."""
    image: str
    readiness: Readiness
    ports: tuple[int, ...] = ()
    """The ports it listens on, the one the agent is told first; empty when unknown."""
    command: tuple[str, ...] | None = None
    """The container's command; None keeps the image's."""
    env: Mapping[str, str] = field(default_factory=dict)
    url: str = ""
    """How the agent reaches it (e.g. `postgres://postgres@db:5432/postgres`)."""
    tls: ServiceTls | None = None
    """Set when the service can stand in for an overridden host over TLS (the model proxy)."""

    @property
    def port(self) -> int | None:
        return self.ports[0] if self.ports else None
