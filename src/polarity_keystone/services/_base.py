"""What every kind of service provides: its port, how to tell it is ready, what the agent is told, the
container the sandbox runs for it, and (where Keystone can read it) a snapshot of its data.

Kinds register themselves under the name the spec gives them (`@register_kind`); `kind_of` looks a
service up by the spec's kind, so the sandbox and the engine never name a kind.
"""

from __future__ import annotations

import shlex
from typing import TypeVar

from .._registry import Registry
from ..sandbox import CommandSucceeds, Readiness, Sandbox, SandboxError, ServiceContainer, StaysUp
from ..spec import Service, service_kind
from ._snapshots import ServiceSnapshot


class ServiceKind:
    """A kind of backing service; the base class runs any image as a generic container."""

    name = "generic"
    default_port: int | None = None
    local_image: str | None = None
    """Keystone's local image that stands in for this kind's canonical image."""

    def readiness(self, service: Service, local: bool) -> Readiness:
        """How to wait for the service; `local` tells whether Keystone's own image runs it."""
        return CommandSucceeds(service.wait_for) if service.wait_for else StaysUp()

    def ports(self, service: Service) -> tuple[int, ...]:
        """The ports the service listens on; the first is the one the agent is told."""
        if service.ports:
            return tuple(service.ports)
        return (self.default_port,) if self.default_port is not None else ()

    def port(self, service: Service) -> int | None:
        return next(iter(self.ports(service)), None)

    def url(self, service: Service) -> str:
        port = self.port(service)
        return f"{service.name}:{port}" if port else service.name

    def container_env(self, service: Service) -> dict[str, str]:
        """Environment the service's own container gets on top of the spec's `env` (its config)."""
        return {}

    def secret_env(self, service: Service) -> dict[str, str]:
        """Environment of the service's own container filled from secrets, as `{{ secrets.NAME }}`
        templates: the engine fills them like the spec's `env`, and redacts their values everywhere."""
        return {}

    def agent_env(self, service: Service) -> dict[str, str]:
        """Environment the agent gets for this service: `<NAME>_HOST` / `<NAME>_PORT` (+ kind extras)."""
        prefix = service.name.upper().replace("-", "_")
        env = {f"{prefix}_HOST": service.name}
        port = self.port(service)
        if port:
            env[f"{prefix}_PORT"] = str(port)
        return env

    def container(self, service: Service, image: str, *, local_image: bool = False) -> ServiceContainer:
        """What the sandbox runs for `service` (its env already filled in) from `image`; `local_image`
        tells whether that is Keystone's own image, which may signal readiness differently."""
        command = shlex.split(service.command) if isinstance(service.command, str) else service.command
        return ServiceContainer(
            name=service.name,
            kind=self.name,
            image=image,
            readiness=self.readiness(service, local_image),
            ports=self.ports(service),
            command=tuple(command) if command is not None else None,
            env={**service.env, **self.container_env(service)},
            url=self.url(service),
        )

    resettable = False
    """Whether `reset` puts the service back as a fresh boot left it; a sandbox with a service that is
    not is never renewed for another replica."""

    def reset(self, sandbox: Sandbox, service: Service) -> None:
        """Undo what an agent did, as far as a fresh boot (before fixtures) goes; raises SandboxError."""
        raise SandboxError(f"a {self.name} service cannot be reset")

    def state_digest(self, sandbox: Sandbox, service: Service) -> str:
        """A digest of every state of the service an agent could change (data, schema, users, settings):
        equal digests after a fresh boot and after a reset (fixtures applied to both) prove the reset."""
        raise SandboxError(f"the state of a {self.name} service cannot be read")

    def snapshot(self, sandbox: Sandbox, service: Service) -> ServiceSnapshot | None:
        """The service's data items now (`audit.service_state`), or None for a kind whose data
        Keystone cannot read."""
        return None


KINDS: Registry[ServiceKind] = Registry()
GENERIC = KINDS.register(ServiceKind.name)(ServiceKind())


K = TypeVar("K", bound=ServiceKind)


def register_kind(cls: type[K]) -> type[K]:
    """Class decorator: register one instance of the kind under its `name`."""
    KINDS.register(cls.name)(cls())
    return cls


def kind_of(service: Service) -> ServiceKind:
    """The kind the spec declares for `service` (its `type`, or what its image runs); generic otherwise."""
    return KINDS.get(service_kind(service)) or GENERIC
