"""The gateway's address check (dockerfiles/gateway/destinations.py, which runs inside the gateway image)
and the operator's extra gateway names, without Docker: every class of forbidden address, in both
address families, and the cases that must stay open."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

import polarity_keystone.sandbox
from polarity_keystone.sandbox import SandboxError
from polarity_keystone.sandbox._gateway import gateway_hosts


def _destinations() -> ModuleType:
    path = Path(polarity_keystone.sandbox.__file__).parent / "dockerfiles" / "gateway" / "destinations.py"
    spec = importlib.util.spec_from_file_location("keystone_gateway_destinations", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


FENCE = _destinations().Fence.of(
    host=["172.17.0.1", "192.0.2.2", "fd00::2"], docker=["172.30.0.0/16"], sandbox="172.22.0.0/16"
)


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("172.17.0.1", "is the Docker host"),
        ("192.0.2.2", "is the Docker host"),
        ("fd00::2", "is the Docker host"),
        ("::ffff:192.0.2.2", "is the Docker host"),
        ("127.0.0.1", "is a loopback address"),
        ("127.8.9.10", "is a loopback address"),
        ("::1", "is a loopback address"),
        ("::ffff:127.0.0.1", "is a loopback address"),
        ("169.254.169.254", "is link-local"),
        ("fe80::1", "is link-local"),
        ("172.30.4.5", "is on another Docker network"),
        ("0.0.0.0", "is a multicast, unspecified or reserved address"),
        ("::", "is a multicast, unspecified or reserved address"),
        ("224.0.0.1", "is a multicast, unspecified or reserved address"),
        ("ff02::1", "is a multicast, unspecified or reserved address"),
        ("240.0.0.1", "is a multicast, unspecified or reserved address"),
        ("255.255.255.255", "is a multicast, unspecified or reserved address"),
        ("10.1.2.3", "is in a private range"),
        ("172.16.0.9", "is in a private range"),
        ("192.168.1.1", "is in a private range"),
        ("100.64.0.1", "is in a private range"),
        ("fd12:3456::1", "is in a private range"),
        ("172.22.0.5", "is in a private range"),  # the sandbox's own network, reached by address
    ],
)
def test_a_forbidden_destination_is_refused_with_its_reason(address: str, why: str) -> None:
    refusal = FENCE.refusal(address, 443, service=False, named=False)

    assert refusal is not None
    assert refusal.startswith(f"destination {address.removeprefix('::ffff:')} {why}")


@pytest.mark.parametrize("address", ["198.18.0.2", "93.184.215.14", "2606:4700::1111"])
def test_a_public_destination_is_let_through(address: str) -> None:
    assert FENCE.refusal(address, 443, service=False, named=False) is None


def test_a_host_allowed_by_name_opens_private_ranges_but_never_the_host_or_link_local() -> None:
    assert FENCE.refusal("10.1.2.3", 443, service=False, named=True) is None
    assert FENCE.refusal("fd12:3456::1", 443, service=False, named=True) is None
    assert (
        FENCE.refusal("192.0.2.2", 443, service=False, named=True)
        == "destination 192.0.2.2 is the Docker host"
    )
    assert "link-local" in str(FENCE.refusal("169.254.169.254", 443, service=False, named=True))
    assert "another Docker network" in str(FENCE.refusal("172.30.4.5", 443, service=False, named=True))


def test_a_sandbox_service_must_resolve_into_the_sandbox_network() -> None:
    assert FENCE.refusal("172.22.0.5", 443, service=True, named=False) is None
    assert (
        FENCE.refusal("10.1.2.3", 443, service=True, named=False)
        == "destination 10.1.2.3 is not on the sandbox network"
    )
    assert (
        FENCE.refusal("172.17.0.1", 443, service=True, named=False)
        == "destination 172.17.0.1 is the Docker host"
    )


DENYING = _destinations().Fence.of(
    host=["192.0.2.2"],
    docker=[],
    sandbox="172.22.0.0/16",
    denied=["10.20.0.0/16", "203.0.113.0/24", "172.16.0.0/12"],
    excepted=["10.20.0.7:8080"],
)
DENIED = "is in a range the operator denies every sandbox (KEYSTONE_SANDBOX_DENY)"


def test_a_range_the_operator_denies_is_refused_even_to_a_host_allowed_by_name() -> None:
    assert DENYING.refusal("10.20.3.4", 80, service=False, named=True) == f"destination 10.20.3.4 {DENIED}"
    assert (
        DENYING.refusal("203.0.113.9", 443, service=False, named=False) == f"destination 203.0.113.9 {DENIED}"
    )
    assert (
        DENYING.refusal("::ffff:10.20.3.4", 80, service=False, named=True)
        == f"destination 10.20.3.4 {DENIED}"
    )
    assert DENYING.refusal("10.21.0.1", 80, service=False, named=True) is None


def test_an_excepted_address_is_reached_on_its_port_alone() -> None:
    assert DENYING.refusal("10.20.0.7", 8080, service=False, named=True) is None
    assert DENYING.refusal("10.20.0.7", 8081, service=False, named=True) == f"destination 10.20.0.7 {DENIED}"


def test_the_sandboxs_own_services_stay_reachable_inside_a_denied_range() -> None:
    assert DENYING.refusal("172.22.0.5", 5432, service=True, named=False) is None


def test_extra_gateway_names_are_parsed_and_bad_entries_named() -> None:
    assert gateway_hosts(" Mirror.Internal=10.0.0.5 , api.test=2001:db8::1,") == {
        "mirror.internal": "10.0.0.5",
        "api.test": "2001:db8::1",
    }
    assert gateway_hosts("") == {}
    with pytest.raises(SandboxError, match="KEYSTONE_GATEWAY_HOSTS: 'mirror=not-an-ip' is not name=address"):
        gateway_hosts("mirror=not-an-ip")
    with pytest.raises(SandboxError, match="has no host name"):
        gateway_hosts("=10.0.0.5")
