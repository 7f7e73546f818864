"""Redis: readiness from its own log line, connection URL, key snapshots through redis-cli."""

from __future__ import annotations

import hashlib
import re

from ..sandbox import CommandSucceeds, LogLine, Readiness, Sandbox, SandboxError
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

    resettable = True

    def reset(self, sandbox: Sandbox, service: Service) -> None:
        """Every key of every database, and loaded scripts and functions, gone; users and settings are
        left: `state_digest` shows whether the agent changed them."""
        flush = ("FLUSHALL SYNC", "SCRIPT FLUSH", "FUNCTION FLUSH")
        script = " && ".join(f'redis-cli -p "$0" {command}' for command in flush)
        result = sandbox.service_exec(service.name, ["sh", "-c", script, str(self.port(service))])
        if result.exit_code != 0 or "ERR" in result.stdout:
            output = (result.stderr or result.stdout).strip()
            raise SandboxError(f"resetting Redis service {service.name!r} failed: {output}")

    def state_digest(self, sandbox: Sandbox, service: Service) -> str:
        """Keys (every database's count, database 0's keys and values), users, settings, functions; read
        in one exec."""
        reads = ("INFO keyspace", "ACL LIST", "CONFIG GET *", "FUNCTION LIST", 'EVAL "$1" 0')
        script = f'; echo "{_SECTION}"; '.join(f'redis-cli -p "$0" --raw {read}' for read in reads)
        command = ["sh", "-c", script, str(self.port(service)), _SNAPSHOT_SCRIPT]
        result = sandbox.service_exec(service.name, command)
        if result.exit_code != 0:
            output = result.stderr.strip()
            raise SandboxError(f"reading the state of Redis service {service.name!r}: {output}")
        keyspace, users, config, functions, keys = result.stdout.split(_SECTION + "\n")
        lines = config.split("\n")  # name/value pairs, in no fixed order
        config = "\n".join(sorted(f"{n}={v}" for n, v in zip(lines[0::2], lines[1::2], strict=False)))
        keyspace = re.sub(r",avg_ttl=\d+", "", keyspace)  # the mean TTL moves as time passes
        return hashlib.sha256("\0".join((keyspace, users, config, functions, keys)).encode()).hexdigest()

    def snapshot(self, sandbox: Sandbox, service: Service) -> ServiceSnapshot:
        """Every key: its type, a hash of its value, the start of a string value."""
        port = str(self.port(service))
        result = sandbox.service_exec(
            service.name, ["redis-cli", "-p", port, "--raw", "EVAL", _SNAPSHOT_SCRIPT, "0"]
        )
        lines = result.stdout.splitlines() if result.exit_code == 0 else []
        items = dict(zip(lines[0::2], lines[1::2], strict=False))
        return ServiceSnapshot(dict(list(items.items())[:ITEM_LIMIT]), len(items) > ITEM_LIMIT)


_SECTION = "--keystone-section--"
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
