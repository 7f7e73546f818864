"""What every kind of service provides: its port, how to tell it is ready, what the agent is told."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..spec._models import Service


@dataclass(frozen=True)
class LogLine:
    """Ready once the container has printed `text` (cheap: no process is started to probe)."""

    text: str


@dataclass(frozen=True)
class ExecProbe:
    """Ready once `command` exits 0 inside the service container (the spec's `wait_for`)."""

    command: str


Readiness = LogLine | ExecProbe | None


class ServiceKind:
    """A kind of backing service; subclasses register themselves in `services.KINDS`."""

    name = "generic"
    default_port: int | None = None
    local_image: str | None = None
    """Keystone's local image that stands in for this kind's canonical image."""
    images: frozenset[str] = frozenset()
    """Image names (without registry, namespace or tag) that run this kind when `type` is not given."""

    def matches(self, service: Service) -> bool:
        if service.type:
            return service.type == self.name
        repository = (service.image or "").split("@")[0].rsplit(":", 1)[0]
        return repository.rsplit("/", 1)[-1] in self.images

    def readiness(self, service: Service, local: bool) -> Readiness:
        """How to wait for the service; `local` tells whether Keystone's own image runs it."""
        return ExecProbe(service.wait_for) if service.wait_for else None

    def port(self, service: Service) -> int | None:
        return service.ports[0] if service.ports else self.default_port

    def url(self, service: Service) -> str:
        port = self.port(service)
        return f"{service.name}:{port}" if port else service.name

    def container_env(self, service: Service) -> dict[str, str]:
        """Environment the service's own container gets on top of the spec's `env` (its config)."""
        return {}

    def agent_env(self, service: Service) -> dict[str, str]:
        """Environment the agent gets for this service: `<NAME>_HOST` / `<NAME>_PORT` (+ kind extras)."""
        prefix = service.name.upper().replace("-", "_")
        env = {f"{prefix}_HOST": service.name}
        port = self.port(service)
        if port:
            env[f"{prefix}_PORT"] = str(port)
        return env


@dataclass
class ServicePlan:
    """A spec service resolved for one sandbox: its kind, the image to run and its final env."""

    spec: Service
    kind: ServiceKind
    image: str
    env: dict[str, str] = field(default_factory=dict)
    local_image: bool = False

    @property
    def name(self) -> str:
        return self.spec.name
