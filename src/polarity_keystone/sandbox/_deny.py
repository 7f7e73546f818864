"""Address ranges the operator denies every sandbox, whatever its spec allows: `KEYSTONE_SANDBOX_DENY`.

A spec without a network policy reaches private ranges directly, and one that allows a host by name
reaches it through the gateway. Spec authors are not trusted, so on a server next to things no agent may
touch (a Ray cluster, whose ports run code on every node; a company network) the operator names those
ranges, and sandboxes reach none of them: a kernel rule refuses what any `ks+` bridge (sandbox networks
and the gateways' egress network alike) sends there (`_isolation.deny_rules`), and the gateways refuse
them with a reason of their own, which the audit shows (the gateway's destinations.py).
`KEYSTONE_SANDBOX_DENY_EXCEPT` names the `ADDRESS:PORT`s inside those ranges that stay reachable (the
Keystone server's own, for agents that call it).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from ._base import SandboxError

DENY_VARIABLE = "KEYSTONE_SANDBOX_DENY"
EXCEPT_VARIABLE = "KEYSTONE_SANDBOX_DENY_EXCEPT"


@dataclass(frozen=True)
class DeniedRanges:
    denied: tuple[ipaddress.IPv4Network, ...] = ()
    excepted: tuple[tuple[ipaddress.IPv4Address, int], ...] = ()
    """(address, TCP port) pairs sandboxes still reach inside the denied ranges."""

    def __bool__(self) -> bool:
        return bool(self.denied)


NOTHING_DENIED = DeniedRanges()


def denied_ranges(deny: str, excepted: str = "") -> DeniedRanges:
    """The operator's lists (comma-separated: `10.0.0.0/8,192.168.4.7` and `10.0.5.7:8080`); SandboxError
    naming the variable and the entry it cannot read."""
    networks = []
    for entry in _entries(deny):
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise SandboxError(
                f"{DENY_VARIABLE}: {entry!r} is not an address or range (e.g. 10.0.0.0/8)"
            ) from None
        if not isinstance(network, ipaddress.IPv4Network):
            raise SandboxError(
                f"{DENY_VARIABLE}: {entry!r} is IPv6: sandbox networks are IPv4 only, so list IPv4 ranges"
            )
        networks.append(network)
    pairs = []
    for entry in _entries(excepted):
        address, _, port = entry.rpartition(":")
        try:
            ip = ipaddress.IPv4Address(address)
        except ValueError:
            ip = None
        if ip is None or not port.isdigit() or not 0 < int(port) < 65536:
            raise SandboxError(f"{EXCEPT_VARIABLE}: {entry!r} is not ADDRESS:PORT (e.g. 10.0.5.7:8080)")
        pairs.append((ip, int(port)))
    if pairs and not networks:
        raise SandboxError(f"{EXCEPT_VARIABLE} makes exceptions to {DENY_VARIABLE}, which is empty")
    return DeniedRanges(tuple(dict.fromkeys(networks)), tuple(dict.fromkeys(pairs)))


def denied_from_environment() -> DeniedRanges:
    return denied_ranges(os.environ.get(DENY_VARIABLE, ""), os.environ.get(EXCEPT_VARIABLE, ""))


def _entries(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]
