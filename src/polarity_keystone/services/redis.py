"""Redis: readiness from its own log line, connection URL, key snapshots through redis-cli."""

from __future__ import annotations

from ..sandbox import CommandSucceeds, LogLine, Readiness, Sandbox
from ..spec import Service
from ._base import ServiceKind, register_kind
from ._snapshots import ITEM_LIMIT, ServiceSnapshot


@register_kind
class Redis(ServiceKind):
    name = "redis"
    default_port = 6379
    local_image = "redis"

    def readiness(self, service: Service, local: bool) -> Readiness:
        if service.wait_for:
            return CommandSucceeds(service.wait_for)
        return LogLine("Ready to accept connections")

    def url(self, service: Service) -> str:
        return f"redis://{service.name}:{self.port(service)}/0"

    def agent_env(self, service: Service) -> dict[str, str]:
        env = super().agent_env(service)
        env[f"{service.name.upper().replace('-', '_')}_URL"] = self.url(service)
        return env

    def snapshot(self, sandbox: Sandbox, service: Service) -> ServiceSnapshot:
        """Every key: its type, a hash of its value, the start of a string value."""
        port = str(self.port(service))
        result = sandbox.service_exec(
            service.name, ["redis-cli", "-p", port, "--raw", "EVAL", _SNAPSHOT_SCRIPT, "0"]
        )
        lines = result.stdout.splitlines() if result.exit_code == 0 else []
        items = dict(zip(lines[0::2], lines[1::2], strict=False))
        return ServiceSnapshot(dict(list(items.items())[:ITEM_LIMIT]), len(items) > ITEM_LIMIT)


_SNAPSHOT_SCRIPT = f"""
local out, cursor = {{}}, '0'
repeat
  local page = redis.call('SCAN', cursor, 'COUNT', 1000)
  cursor = page[1]
  for _, key in ipairs(page[2]) do
    local kind = redis.call('TYPE', key)['ok']
    local print = kind .. ':' .. redis.sha1hex(redis.call('DUMP', key))
    if kind == 'string' then print = print .. ':' .. string.sub(redis.call('GET', key), 1, 64) end
    table.insert(out, key)
    table.insert(out, print)
  end
until cursor == '0' or #out > {2 * ITEM_LIMIT}
return out
"""
