"""The one network every gateway leaves through, shared by all sandboxes of an engine.

Gateways used to sit on Docker's default bridge, where they could reach each other (and so the
published ingress port of another sandbox) and the host. On this network they cannot: its bridge's
name starts `ks-`, so the host rule of `_isolation.py` drops every new connection from a gateway to the
host, and inter-container traffic is off (`enable_icc=false`), so no gateway reaches another. Traffic to
the outside is routed and masqueraded as on any Docker bridge.

The bridge is named after the engine (`bridge_name`): several engines can share a host (a Ray node's
beside the server's, a second `dockerd` for another runtime), and a second engine creating its network
on a bridge of the same name took that bridge over from the first, whose gateways then reached nothing.
An unused network of an older Keystone, on the fixed `ks-egress`, is made again on the engine's own.

The network is part of the engine's set-up, like the host rule: it is created on first use (by whichever
process gets there first), is not a sandbox's, and carries no `keystone.managed` label, so the reaper
leaves it alone. A pruned network is simply created again by the next sandbox.
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
from docker.models.networks import Network

from . import _labels as labels
from ._isolation import BRIDGE_PREFIX

NAME = "keystone-egress"
BRIDGE_OPTION = "com.docker.network.bridge.name"
LEGACY_BRIDGE = f"{BRIDGE_PREFIX}egress"
"""The one bridge name every engine's egress network had before it was named after its engine."""
ROLE = "egress"

_lock = threading.Lock()


@dataclass(frozen=True)
class Egress:
    name: str
    subnet: str
    gateway: str
    """The bridge's address on the host: where Docker's port forwarding (ingress) connects from."""


def egress_network(client: docker.DockerClient) -> Egress:
    """The shared egress network, created if missing; safe to call from many threads and processes."""
    with _lock:
        try:
            network = client.networks.get(NAME)
        except docker.errors.NotFound:
            network = _create(client)
        legacy = network.attrs["Options"].get(BRIDGE_OPTION) == LEGACY_BRIDGE
        if legacy and not network.attrs.get("Containers"):
            network = _renamed(client, network)
    config = network.attrs["IPAM"]["Config"][0]
    return Egress(name=NAME, subnet=config["Subnet"], gateway=bridge_address(config))


def bridge_address(ipam_config: dict[str, str]) -> str:
    """The host's address on a Docker network: IPAM's `Gateway`, which some engines leave out of the
    config (then the bridge holds the subnet's first host, the address Docker's default IPAM gives it)."""
    if ipam_config.get("Gateway"):
        return ipam_config["Gateway"].split("/")[0]
    return str(next(ipaddress.ip_network(ipam_config["Subnet"], strict=False).hosts()))


def bridge_name(engine_info: dict[str, Any]) -> str:
    """The egress bridge of the engine `docker info` describes: at most 15 characters, as Linux allows.
    Named after its ID and data root: engines started on one host from one configuration share an ID,
    but no two engines can share a data root."""
    engine = f"{engine_info['ID']}\n{engine_info['DockerRootDir']}"
    return f"{BRIDGE_PREFIX}e{hashlib.sha256(engine.encode()).hexdigest()[:11]}"


def _renamed(client: docker.DockerClient, network: Network) -> Network:
    """An unused egress network of an older Keystone, on the fixed bridge, made again on this engine's
    own; left as it is when another process uses or replaces it first."""
    try:
        network.remove()
    except docker.errors.APIError:
        return network
    return _create(client)


def _create(client: docker.DockerClient) -> Network:
    try:
        return client.networks.create(
            NAME,
            driver="bridge",
            check_duplicate=True,
            labels={labels.ROLE: ROLE},
            options={
                BRIDGE_OPTION: bridge_name(client.info()),
                "com.docker.network.bridge.enable_icc": "false",
            },
        )
    except docker.errors.APIError as exc:
        try:  # another process created it first
            return client.networks.get(NAME)
        except docker.errors.NotFound:
            raise exc from None
