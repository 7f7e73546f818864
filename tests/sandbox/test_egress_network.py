"""The gateways' egress network of an older Keystone, on the one fixed `ks-egress` bridge every engine
used, is made again on the engine's own bridge once no container uses it; one in use is left as it is
(its gateways keep working), and replaced by the first boot after they are gone."""

from __future__ import annotations

import contextlib
import subprocess

import docker
import docker.errors
import pytest

from polarity_keystone.sandbox import DockerBackend
from polarity_keystone.sandbox._egress import BRIDGE_OPTION, LEGACY_BRIDGE, NAME, bridge_name, egress_network

pytestmark = pytest.mark.docker


def older_keystones_network(client: docker.DockerClient) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        client.networks.get(NAME).remove()  # no sandbox runs between tests: nothing uses it
    client.networks.create(
        NAME,
        driver="bridge",
        labels={"keystone.role": "egress"},
        options={BRIDGE_OPTION: LEGACY_BRIDGE, "com.docker.network.bridge.enable_icc": "false"},
    )


def bridge_of_the_network(client: docker.DockerClient) -> str:
    return str(client.networks.get(NAME).attrs["Options"][BRIDGE_OPTION])


def test_an_older_keystones_egress_network_moves_to_the_engines_own_bridge_once_unused(
    backend: DockerBackend, base_image: str
) -> None:
    client = backend.client
    older_keystones_network(client)
    user = client.containers.run(
        base_image, "sleep 300", detach=True, network=NAME, labels={"keystone.test": "egress"}
    )
    try:
        egress_network(client)
        in_use = bridge_of_the_network(client)
    finally:
        user.remove(force=True)

    egress_network(client)

    assert in_use == LEGACY_BRIDGE
    assert bridge_of_the_network(client) == bridge_name(client.info())
    gone = subprocess.run(["ip", "link", "show", LEGACY_BRIDGE], capture_output=True, check=False)
    assert gone.returncode != 0, "the old bridge went with its network"
