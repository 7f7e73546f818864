"""Ranges the operator denies every sandbox (KEYSTONE_SANDBOX_DENY), attempted for real: whatever the spec
allows, a sandbox reaches nothing there, directly (no network policy) or through its gateway (a host
allowed by name), but for the ADDRESS:PORTs excepted; its own services stay reachable; the lists of the
servers and nodes on one host add up."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from polarity_keystone.sandbox import DockerBackend, DockerSandbox, NetworkPolicy, SandboxError, SandboxPlan
from polarity_keystone.sandbox._deny import denied_from_environment, denied_ranges
from polarity_keystone.sandbox._isolation import _on_host, _script, deny_rules
from tests.sandbox.gateway_probes import direct, proxied
from tests.sandbox.outside_host import Outside

DENIED_REASON = "is in a range the operator denies every sandbox (KEYSTONE_SANDBOX_DENY)"


@contextlib.contextmanager
def denying(
    outside_backend: DockerBackend, gateway_image: str, deny: str, excepted: str = ""
) -> Iterator[DockerBackend]:
    """A backend on the session's engine with this deny list; its chain is removed afterwards, so the
    rest of the session runs as before."""
    denied = denied_ranges(deny, excepted)
    backend = DockerBackend(
        outside_backend.client,
        owner=outside_backend.owner,
        gateway_hosts=outside_backend.gateway_hosts,
        denied=denied,
    )
    try:
        yield backend
    finally:
        _, jump = deny_rules(denied)
        chain = jump.rsplit(" ", 1)[1]
        remove = f"while $ipt -D {jump} 2>/dev/null; do :; done; $ipt -F {chain}; $ipt -X {chain}; exit 0"
        _on_host(backend.client, gateway_image, _script((), remove))


def open_direct(backend: DockerBackend, base_image: str, gateway_image: str) -> DockerSandbox:
    """No network policy: egress straight out, no gateway."""
    plan = SandboxPlan(
        spec_id="deny-direct", run_id="test-deny", image=base_image, gateway_image=gateway_image
    )
    return backend.create(plan)


def through_gateway(backend: DockerBackend, base_image: str, gateway_image: str) -> DockerSandbox:
    """A gateway allowing the outside's names, the private one included (allowed by name)."""
    policy = NetworkPolicy(default_allow=False, allow=("api.example.test", "private.test"))
    plan = SandboxPlan(
        spec_id="deny-gateway",
        run_id="test-deny",
        image=base_image,
        network=policy,
        gateway_image=gateway_image,
    )
    return backend.create(plan)


@pytest.mark.docker
def test_a_denied_range_is_out_of_reach_directly_and_through_the_gateway(
    outside_backend: DockerBackend, base_image: str, gateway_image: str, outside: Outside
) -> None:
    hits_before = len(outside.hits())
    with denying(outside_backend, gateway_image, f"{outside.address}/32,{outside.private}") as backend:
        plain = open_direct(backend, base_image, gateway_image)
        gated = through_gateway(backend, base_image, gateway_image)
        try:
            directly = direct(plain, outside.address, 80, wait=3)
            by_name = proxied(gated, "http://api.example.test/")
            private_by_name = proxied(gated, "http://private.test/")
            log = gated.network_log()
        finally:
            plain.destroy()
            gated.destroy()
        hits = outside.hits()[hits_before:]

    assert directly.startswith("FAILED"), directly
    assert by_name == f"HTTP 403 keystone: destination {outside.address} {DENIED_REASON}"
    assert private_by_name == f"HTTP 403 keystone: destination {outside.private} {DENIED_REASON}"
    refused = [entry for entry in log if entry.get("allowed") is False and entry["kind"] == "http"]
    assert {entry["reason"] for entry in refused} == {
        f"destination {outside.address} {DENIED_REASON}",
        f"destination {outside.private} {DENIED_REASON}",
    }
    assert hits == []


@pytest.mark.docker
def test_an_excepted_address_and_port_stays_reachable_and_nothing_else_there(
    outside_backend: DockerBackend, base_image: str, gateway_image: str, outside: Outside
) -> None:
    with denying(outside_backend, gateway_image, f"{outside.address}/30", f"{outside.address}:80") as backend:
        plain = open_direct(backend, base_image, gateway_image)
        gated = through_gateway(backend, base_image, gateway_image)
        try:
            http_directly = direct(plain, outside.address, 80, wait=3)
            tls_directly = direct(plain, outside.address, 443, tls=True, name="api.example.test", wait=3)
            http_by_name = proxied(gated, "http://api.example.test/")
            tls_by_name = proxied(gated, "https://api.example.test/")
        finally:
            plain.destroy()
            gated.destroy()

    assert http_directly == f"outside http {outside.address} at {outside.address}"
    assert tls_directly.startswith("FAILED"), tls_directly
    assert http_by_name == f"outside http api.example.test at {outside.address}"
    assert tls_by_name.startswith("FAILED") or DENIED_REASON in tls_by_name, tls_by_name


@pytest.mark.docker
def test_a_sandbox_reaches_its_own_services_inside_a_denied_range_and_the_host_denies_it_to_every_sandbox(
    outside_backend: DockerBackend, base_image: str, gateway_image: str, outside: Outside
) -> None:
    """Docker's own address pools in the list: the sandbox and its gateway still talk (DNS, proxy); and
    a backend without a list of its own, on the same host, is denied the range too (the rule is the
    host's: each list adds to it)."""
    with denying(
        outside_backend, gateway_image, f"172.16.0.0/12,192.168.0.0/16,{outside.address}"
    ) as backend:
        gated = through_gateway(backend, base_image, gateway_image)
        bystander = open_direct(outside_backend, base_image, gateway_image)
        try:
            resolved = gated.exec(["getent", "hosts", "api.example.test"]).stdout
            refused = proxied(gated, "http://api.example.test/")
            alongside = direct(bystander, outside.address, 80, wait=3)
        finally:
            gated.destroy()
            bystander.destroy()

    assert resolved.strip(), "the gateway's DNS answers inside the denied range"
    assert refused == f"HTTP 403 keystone: destination {outside.address} {DENIED_REASON}"
    assert alongside.startswith("FAILED"), alongside


def test_the_operators_lists_are_read_and_a_bad_entry_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYSTONE_SANDBOX_DENY", " 10.0.0.0/8 , 192.168.4.7,10.0.0.0/8")
    monkeypatch.setenv("KEYSTONE_SANDBOX_DENY_EXCEPT", "10.0.5.7:8080")
    denied = denied_from_environment()
    assert [str(network) for network in denied.denied] == ["10.0.0.0/8", "192.168.4.7/32"]
    assert [(str(address), port) for address, port in denied.excepted] == [("10.0.5.7", 8080)]

    for deny, excepted, message in [
        ("10.0.0.0/33", "", "KEYSTONE_SANDBOX_DENY: '10.0.0.0/33' is not an address or range"),
        ("ray-head", "", "KEYSTONE_SANDBOX_DENY: 'ray-head' is not an address or range"),
        ("fd00::/8", "", "'fd00::/8' is IPv6: sandbox networks are IPv4 only"),
        ("10.0.0.0/8", "10.0.5.7", "KEYSTONE_SANDBOX_DENY_EXCEPT: '10.0.5.7' is not ADDRESS:PORT"),
        ("10.0.0.0/8", "server:8080", "'server:8080' is not ADDRESS:PORT"),
        ("10.0.0.0/8", "10.0.5.7:0", "'10.0.5.7:0' is not ADDRESS:PORT"),
        ("", "10.0.5.7:8080", "makes exceptions to KEYSTONE_SANDBOX_DENY, which is empty"),
    ]:
        with pytest.raises(SandboxError, match=message.replace("(", r"\(").replace("[", r"\[")):
            denied_ranges(deny, excepted)


def test_each_list_has_a_chain_of_its_own_that_returns_between_sandbox_bridges_first() -> None:
    rules, jump = deny_rules(denied_ranges("10.0.0.0/8", "10.0.5.7:8080"))
    _, other_jump = deny_rules(denied_ranges("10.0.0.0/8"))

    chain = jump.rsplit(" ", 1)[1]
    assert jump == f"DOCKER-USER -i ks-+ -j {chain}" and other_jump != jump
    assert rules.splitlines() == [
        "*filter",
        f":{chain} - [0:0]",
        f"-A {chain} -o ks-+ -j RETURN",
        f"-A {chain} -d 10.0.5.7/32 -p tcp --dport 8080 -j RETURN",
        f"-A {chain} -d 10.0.0.0/8 -j REJECT --reject-with icmp-admin-prohibited",
        "COMMIT",
    ]
    assert len(chain) <= 28
