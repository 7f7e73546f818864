"""Where the gateway may connect: the address check that runs after DNS resolution.

Whatever the spec's egress policy says, a sandbox must never reach the machine running Docker, another
sandbox, or the cloud's metadata service through its gateway. The gateway resolves a host name itself,
checks every address it got here, and connects to a checked address (never resolving again), so neither
a name that resolves to 127.0.0.1 / 169.254.169.254 nor DNS rebinding gets through.

Refused always: the Docker host's own addresses, Docker networks that are not this sandbox's (the shared
egress network of the gateways, the default bridge), loopback, link-local (169.254.0.0/16, fe80::/10),
multicast, unspecified and reserved addresses. Private ranges (RFC 1918, CGNAT 100.64.0.0/10, ULA
fc00::/7) are refused unless the spec allows the host by name. Ranges the operator denies every sandbox
(KEYSTONE_SANDBOX_DENY) are refused even then, but for the ADDRESS:PORTs excepted from them. A sandbox
service (a host that leads to a service by name or `dns_overrides`) must resolve into this sandbox's own
network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

PRIVATE = tuple(
    ipaddress.ip_network(block)
    for block in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)


def _plain(address: str) -> Address:
    """The address, with an IPv4-mapped IPv6 address (::ffff:127.0.0.1) read as the IPv4 one it is."""
    parsed = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


@dataclass(frozen=True)
class Fence:
    host: frozenset[Address]
    """The Docker host's own addresses: its interfaces and the bridges' gateway addresses."""
    docker: tuple[Network, ...]
    """Docker networks that are not this sandbox's."""
    sandbox: Network | None
    """This sandbox's own network, where its services live."""
    denied: tuple[Network, ...] = ()
    """Ranges the operator denies every sandbox."""
    excepted: frozenset[tuple[Address, int]] = frozenset()
    """(address, port) pairs inside `denied` that stay reachable."""

    @classmethod
    def of(
        cls,
        host: Iterable[str],
        docker: Iterable[str],
        sandbox: str | None,
        denied: Iterable[str] = (),
        excepted: Iterable[str] = (),
    ) -> Fence:
        """`excepted`: `ADDRESS:PORT` strings."""
        return cls(
            host=frozenset(_plain(address) for address in host),
            docker=tuple(ipaddress.ip_network(network, strict=False) for network in docker),
            sandbox=ipaddress.ip_network(sandbox, strict=False) if sandbox else None,
            denied=tuple(ipaddress.ip_network(network, strict=False) for network in denied),
            excepted=frozenset(
                (_plain(address), int(port))
                for address, _, port in (pair.rpartition(":") for pair in excepted)
            ),
        )

    def refusal(self, address: str, port: int, *, service: bool, named: bool) -> str | None:
        """Why the gateway must not connect to `address`:`port`, or None when it may.

        `service`: the host leads to a sandbox service (it must be on the sandbox network).
        `named`: the spec allows the host by name, which opens private ranges (not the host itself)."""
        ip = _plain(address)
        if ip.is_loopback:
            return f"destination {ip} is a loopback address"
        if ip in self.host:
            return f"destination {ip} is the Docker host"
        if service:
            on_sandbox = self.sandbox is not None and ip in self.sandbox
            return None if on_sandbox else f"destination {ip} is not on the sandbox network"
        if ip.is_link_local:
            return f"destination {ip} is link-local (where cloud metadata services answer)"
        if any(ip in network for network in self.docker):
            return f"destination {ip} is on another Docker network (another sandbox or container)"
        if ip.is_multicast or ip.is_unspecified or ip.is_reserved or _site_local(ip):
            return f"destination {ip} is a multicast, unspecified or reserved address"
        if any(ip in network for network in self.denied) and (ip, port) not in self.excepted:
            return f"destination {ip} is in a range the operator denies every sandbox (KEYSTONE_SANDBOX_DENY)"
        if not named and any(ip in network for network in PRIVATE):
            return (
                f"destination {ip} is in a private range; allow the host by name in network.egress.allow "
                "to reach it"
            )
        return None


def _site_local(ip: Address) -> bool:
    return isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local
