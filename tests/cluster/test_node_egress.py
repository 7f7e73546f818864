"""Engines sharing a host keep their egress networks apart: each engine's `keystone-egress` network is on
a bridge named after that engine. With one fixed bridge name, a node engine creating its network took
the main engine's bridge over (the bridge got the node's address), and the main engine's gateways
reached nothing from then on."""

from __future__ import annotations

import contextlib
import json
import subprocess

import docker

from polarity_keystone.sandbox._egress import egress_network
from tests.cluster.nodes import NodeEngine


def bridge_of(client: docker.DockerClient) -> str:
    return str(
        client.networks.get(egress_network(client).name).attrs["Options"]["com.docker.network.bridge.name"]
    )


def addresses_of(bridge: str) -> set[str]:
    shown = subprocess.run(
        ["ip", "-j", "-4", "addr", "show", "dev", bridge], capture_output=True, check=True, text=True
    )
    return {entry["local"] for link in json.loads(shown.stdout) for entry in link["addr_info"]}


def test_each_engine_on_the_host_has_its_own_egress_bridge(node_engines: list[NodeEngine]) -> None:
    with contextlib.closing(docker.from_env()) as main:
        main_egress = egress_network(main)
        main_bridge = bridge_of(main)
        node_bridges = []
        for engine in node_engines:
            with contextlib.closing(engine.client()) as node:
                node_bridges.append(bridge_of(node))

        assert len({main_bridge, *node_bridges}) == 1 + len(node_engines)
        assert all(bridge.startswith("ks-") for bridge in (main_bridge, *node_bridges))  # the host rule's
        assert addresses_of(main_bridge) == {main_egress.gateway}
