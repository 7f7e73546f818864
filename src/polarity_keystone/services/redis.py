"""Redis: readiness from its own log line, connection URL, redis-cli for checks."""

from __future__ import annotations

from ..spec._models import Service
from ._base import ExecProbe, LogLine, Readiness, ServiceKind


class Redis(ServiceKind):
    name = "redis"
    default_port = 6379
    local_image = "redis"
    images = frozenset({"redis", "valkey", "redis-stack-server"})

    def readiness(self, service: Service, local: bool) -> Readiness:
        if service.wait_for:
            return ExecProbe(service.wait_for)
        return LogLine("Ready to accept connections")

    def url(self, service: Service) -> str:
        return f"redis://{service.name}:{self.port(service)}/0"

    def agent_env(self, service: Service) -> dict[str, str]:
        env = super().agent_env(service)
        env[f"{service.name.upper().replace('-', '_')}_URL"] = self.url(service)
        return env
