"""What the Docker backend tells the gateway container and the agent about a sandbox's network policy.

The gateway program itself is `dockerfiles/gateway/gateway.py`; this module builds its configuration,
the agent's proxy environment and resolver, and reads back its log.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass

from ..spec import INTERNAL_SUFFIX
from ._base import NetworkPolicy, SandboxError
from ._deny import NOTHING_DENIED, DeniedRanges
from ._service_plan import ServiceContainer

ALIAS = "keystone-gateway"
PROXY_PORT = 3128
LOG_PATH = "/var/log/keystone/gateway.jsonl"
READY_MARKER = "keystone: gateway ready"
INGRESS_BASE_PORT = 20000
"""The gateway listens for ingress to agent port N on INGRESS_BASE_PORT + i, so an agent port may be any
port, 80 and 443 included."""
HOSTS_VARIABLE = "KEYSTONE_GATEWAY_HOSTS"
SERVER_HOST = "keystone-server"
"""The agent's name for the Docker host's address on its sandbox network, where it reaches the server
that booted it (`SandboxPlan.server_port`): direct, never through the gateway, which refuses the host."""


@dataclass(frozen=True)
class Fence:
    """What a gateway must never connect to, whatever the spec allows (enforced by the gateway's
    destinations.py, together with loopback, link-local and the other ranges it refuses on its own)."""

    host: tuple[str, ...]
    """The Docker host's addresses."""
    docker_networks: tuple[str, ...]
    """Docker networks that belong to no single sandbox (the gateways' egress network)."""
    ingress_from: str
    """The only peer ingress ports serve: the address Docker's port forwarding connects from."""
    denied: DeniedRanges = NOTHING_DENIED
    """Ranges the operator denies every sandbox."""


def gateway_hosts(value: str) -> dict[str, str]:
    """Extra names for the gateway's resolver, like `docker run --add-host`, from the operator's
    `KEYSTONE_GATEWAY_HOSTS="name=address,name=address"` (e.g. an internal mirror without public DNS);
    raises SandboxError naming the bad entry."""
    hosts: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        name, _, address = entry.partition("=")
        try:
            hosts[name.strip().lower()] = str(ipaddress.ip_address(address.strip()))
        except ValueError:
            raise SandboxError(
                f"{HOSTS_VARIABLE}: {entry!r} is not name=address (e.g. mirror.internal=10.0.0.5)"
            ) from None
        if not name.strip():
            raise SandboxError(f"{HOSTS_VARIABLE}: {entry!r} has no host name before '='")
    return hosts


def gateway_hosts_from_environment() -> dict[str, str]:
    return gateway_hosts(os.environ.get(HOSTS_VARIABLE, ""))


def ingress_ports(policy: NetworkPolicy) -> dict[int, int]:
    """Gateway port -> agent port."""
    return {INGRESS_BASE_PORT + index: port for index, port in enumerate(policy.ingress)}


def tls_hosts(policy: NetworkPolicy | None, services: list[ServiceContainer]) -> dict[str, tuple[str, ...]]:
    """Service -> the overridden host names it answers TLS for (the names its certificate holds), for
    each service that answers TLS (`ServiceContainer.tls`) and has hosts overridden to it."""
    hosts: dict[str, tuple[str, ...]] = {}
    answering = {service.name for service in services if service.tls is not None}
    for host, service in sorted((policy.overrides if policy is not None else {}).items()):
        if service in answering:
            hosts[service] = (*hosts.get(service, ()), host)
    return hosts


def gateway_config(policy: NetworkPolicy, services: list[ServiceContainer], subnet: str, fence: Fence) -> str:
    ports = {service.name: service.port for service in services}
    tls = {service.name: service.tls.port for service in services if service.tls is not None}
    return json.dumps(
        {
            "default": "allow" if policy.default_allow else "deny",
            "allow": list(policy.allow),
            "overrides": dict(policy.overrides),
            "services": {"agent": None, **ports},
            "tls_ports": {name: tls[name] for name in tls_hosts(policy, services)},
            "subnet": subnet,
            "ingress": {str(listen): port for listen, port in ingress_ports(policy).items()},
            "host": list(fence.host),
            "docker_networks": list(fence.docker_networks),
            "ingress_from": [fence.ingress_from],
            "denied": [str(network) for network in fence.denied.denied],
            "denied_except": [f"{address}:{port}" for address, port in fence.denied.excepted],
            "log": LOG_PATH,
        }
    )


def proxy_env(services: list[ServiceContainer]) -> dict[str, str]:
    """Proxy variables for clients that honour them (curl, requests, httpx, pip, ...); sandbox names
    stay direct. Clients that ignore them still go through the gateway by DNS (ports 80 and 443)."""
    proxy = f"http://{ALIAS}:{PROXY_PORT}"
    direct = ",".join(
        ["localhost", "127.0.0.1", "agent", ALIAS, SERVER_HOST, INTERNAL_SUFFIX, *(s.name for s in services)]
    )
    env = {"HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "NO_PROXY": direct}
    return {**env, **{name.lower(): value for name, value in env.items()}}


def resolv_conf(gateway_ip: str) -> str:
    return f"nameserver {gateway_ip}\noptions ndots:0\n"
