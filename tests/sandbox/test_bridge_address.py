"""The host's address on a Docker network, on engines that record IPAM's Gateway and on those that
leave it out (a fresh engine's default bridge: `{"Subnet": "172.17.0.0/16"}` only)."""

from __future__ import annotations

import pytest

from polarity_keystone.sandbox._egress import bridge_address


@pytest.mark.parametrize(
    ("config", "address"),
    [
        ({"Subnet": "172.30.0.0/16", "Gateway": "172.30.0.1"}, "172.30.0.1"),
        ({"Subnet": "172.30.0.0/16", "Gateway": "172.30.5.9/16"}, "172.30.5.9"),
        ({"Subnet": "172.17.0.0/16"}, "172.17.0.1"),
        ({"Subnet": "10.9.8.0/24", "Gateway": ""}, "10.9.8.1"),
    ],
)
def test_the_bridge_address_is_the_gateway_or_the_subnets_first_host(
    config: dict[str, str], address: str
) -> None:
    assert bridge_address(config) == address
