"""Escapes through the gateway, attempted for real: with egress open to everything, an agent must still not
reach the Docker host (any of its addresses, by any name), another sandbox, link-local addresses (the
cloud metadata service) or private ranges it did not name, through the proxy, a CONNECT tunnel, the
transparent HTTP forwarder or TLS pass-through. Every refusal is in the gateway's log with its reason.

Real listeners wait at each destination (a server of this process on every host address, servers in the
`outside` namespace on a link-local and a private address), so a hole shows as an answer."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator

import pytest

from polarity_keystone.sandbox import DockerBackend, DockerSandbox, NetworkPolicy, SandboxPlan
from polarity_keystone.sandbox._egress import bridge_name as egress_bridge_name
from polarity_keystone.sandbox._isolation import bridge_name
from tests.sandbox.gateway_probes import direct, proxied, tunnelled
from tests.sandbox.host_listener import HostServer
from tests.sandbox.outside_host import Outside

pytestmark = pytest.mark.docker

AGENT_PORT = 3000
INGRESS_PORT = 20000
"""Where the gateway listens for ingress to the first declared agent port."""


def host_addresses() -> dict[str, str]:
    """Every IPv4 address of this machine but loopback, with its interface: its own interfaces, docker0
    and every bridge (read from the interfaces: the default bridge's IPAM config carries no gateway here)."""
    listing = json.loads(subprocess.run(["ip", "-j", "-4", "addr"], check=True, capture_output=True).stdout)
    found = {
        a["local"]: link["ifname"]
        for link in listing
        for a in link.get("addr_info", [])
        if a.get("scope") == "global"
    }
    assert found, listing
    return found


def _boot(
    backend: DockerBackend, image: str, gateway_image: str, name: str, policy: NetworkPolicy
) -> DockerSandbox:
    plan = SandboxPlan(
        spec_id=name, run_id=f"test-{name}", image=image, network=policy, gateway_image=gateway_image
    )
    return backend.create(plan)


@pytest.fixture(scope="module")
def open_box(outside_backend: DockerBackend, base_image: str, gateway_image: str) -> Iterator[DockerSandbox]:
    """Egress open to everything; an agent port published to the host; `mock.example.test` leads to the
    agent itself (a dns override), where a server answers on AGENT_PORT."""
    policy = NetworkPolicy(
        default_allow=True, overrides={"mock.example.test": "agent"}, ingress=(AGENT_PORT,)
    )
    sandbox = _boot(outside_backend, base_image, gateway_image, "escapes-open", policy)
    sandbox.exec("echo agent server > index.html")
    sandbox.exec(f"nohup python3 -m http.server {AGENT_PORT} >/dev/null 2>&1 & sleep 0.5")
    yield sandbox
    sandbox.destroy()


@pytest.fixture(scope="module")
def neighbour(outside_backend: DockerBackend, base_image: str, gateway_image: str) -> Iterator[DockerSandbox]:
    sandbox = _boot(outside_backend, base_image, gateway_image, "escapes-neighbour", NetworkPolicy(True))
    yield sandbox
    sandbox.destroy()


def _refusals(sandbox: DockerSandbox) -> list[dict[str, object]]:
    return [entry for entry in sandbox.network_log() if entry.get("allowed") is False]


# --- the Docker host ---------------------------------------------------------------------------------


def test_the_proxy_refuses_every_address_of_the_docker_host(
    backend: DockerBackend, open_box: DockerSandbox, host_server: HostServer
) -> None:
    """Bridges of sandboxes that other processes created after this gateway started are not in its list
    of host addresses: they are refused as private ranges (and the host rule drops them anyway)."""
    port = host_server.server_address[1]
    addresses = host_addresses()
    # The host really serves on each of them: this process reaches itself through every one.
    for address in addresses:
        with urllib.request.urlopen(f"http://{address}:{port}/", timeout=5) as response:
            assert response.read() == b"hello from the host"
    served = host_server.hits
    egress_bridge = egress_bridge_name(backend.client.info())
    known = {egress_bridge, bridge_name(open_box.id)}
    named_host = [a for a, link in addresses.items() if not link.startswith("ks-") or link in known]

    answers = {address: proxied(open_box, f"http://{address}:{port}/") for address in addresses}

    assert host_server.hits == served
    assert all(answer.startswith(f"HTTP 403 keystone: destination {a} is") for a, answer in answers.items())
    assert {a: answers[a] for a in named_host} == {
        a: f"HTTP 403 keystone: destination {a} is the Docker host" for a in named_host
    }
    assert {"docker0", egress_bridge} <= {addresses[a] for a in named_host}
    reasons = {entry["host"]: entry["reason"] for entry in _refusals(open_box) if entry["kind"] == "http"}
    assert all(reasons[a] == f"destination {a} is the Docker host" for a in named_host)


def test_connect_tunnels_to_the_docker_host_are_refused(
    open_box: DockerSandbox, host_server: HostServer
) -> None:
    port = host_server.server_address[1]
    served = host_server.hits

    for address in host_addresses():
        assert tunnelled(open_box, address, port).startswith("REFUSED HTTP/1.1 403"), address
    assert host_server.hits == served


def test_host_docker_internal_does_not_lead_to_the_host(
    open_box: DockerSandbox, host_server: HostServer
) -> None:
    port = host_server.server_address[1]
    served = host_server.hits

    answers = [
        proxied(open_box, f"http://host.docker.internal:{port}/"),
        tunnelled(open_box, "host.docker.internal", port),
        direct(open_box, "keystone-gateway", 80, name=f"host.docker.internal:{port}"),
    ]

    assert not any("hello from the host" in answer for answer in answers), answers
    assert host_server.hits == served


# --- link-local, loopback and private destinations ---------------------------------------------------


def test_link_local_destinations_are_refused_every_way(open_box: DockerSandbox, outside: Outside) -> None:
    link_local = outside.link_local
    answers = {
        "proxy": proxied(open_box, f"http://{link_local}/latest/meta-data/"),
        "proxy, metadata service": proxied(open_box, "http://169.254.169.254/latest/meta-data/"),
        "proxy, by name": proxied(open_box, "http://metadata.example.test/"),
        "transparent http": direct(open_box, "keystone-gateway", 80, name=link_local),
        "connect": tunnelled(open_box, link_local, 80),
        "connect, tls by name": tunnelled(open_box, "metadata.example.test", 443, tls=True),
        "transparent tls (sni)": direct(open_box, "metadata.example.test", 443, tls=True),
    }

    assert not [hit for hit in outside.hits() if hit["local"] == link_local]
    why = "is link-local (where cloud metadata services answer)"
    assert answers["proxy"] == f"HTTP 403 keystone: destination {link_local} {why}"
    assert answers["proxy, metadata service"].startswith(
        "HTTP 403 keystone: destination 169.254.169.254 is link-local"
    )
    assert answers["proxy, by name"].startswith(f"HTTP 403 keystone: destination {link_local} is link-local")
    assert answers["transparent http"].startswith(f"keystone: destination {link_local} is link-local")
    assert answers["connect"].startswith("REFUSED HTTP/1.1 403")
    assert answers["connect, tls by name"].startswith("REFUSED HTTP/1.1 403")
    assert answers["transparent tls (sni)"].startswith("FAILED")
    refused = {(e["kind"], e["host"]) for e in _refusals(open_box) if "link-local" in str(e.get("reason"))}
    assert {("http", "169.254.169.254"), ("connect", link_local), ("tls", "metadata.example.test")} <= refused


def test_a_name_that_resolves_to_a_forbidden_address_is_refused_after_resolution(
    open_box: DockerSandbox,
) -> None:
    answer = proxied(open_box, "http://loopback.example.test:3128/")
    sni = direct(open_box, "loopback.example.test", 443, tls=True)

    assert answer == "HTTP 403 keystone: destination 127.0.0.1 is a loopback address"
    assert sni.startswith("FAILED")
    tls = [e for e in _refusals(open_box) if e["kind"] == "tls" and e["host"] == "loopback.example.test"]
    assert tls[-1]["reason"] == "destination 127.0.0.1 is a loopback address"


def test_private_ranges_are_refused_unless_the_host_is_allowed_by_name(
    open_box: DockerSandbox,
    outside: Outside,
    outside_backend: DockerBackend,
    base_image: str,
    gateway_image: str,
) -> None:
    by_default = proxied(open_box, "http://private.test/")
    by_address = proxied(open_box, f"http://{outside.private}/")
    catch_all = _boot(outside_backend, base_image, gateway_image, "star", NetworkPolicy(False, allow=("*",)))
    named = _boot(
        outside_backend, base_image, gateway_image, "named", NetworkPolicy(False, allow=("private.test",))
    )
    try:
        through_star = proxied(catch_all, "http://private.test/")
        through_name = proxied(named, "http://private.test/")
        through_name_sni = direct(named, "private.test", 443, tls=True)
    finally:
        catch_all.destroy()
        named.destroy()

    hint = "is in a private range; allow the host by name in network.egress.allow to reach it"
    assert by_default == f"HTTP 403 keystone: destination {outside.private} {hint}"
    assert by_address == by_default
    assert through_star == by_default
    assert through_name == f"outside http private.test at {outside.private}"
    assert through_name_sni == f"outside tls private.test at {outside.private}"


# --- other sandboxes and ingress ---------------------------------------------------------------------


def test_a_sandbox_cannot_reach_another_sandboxs_ingress_through_its_gateway(
    open_box: DockerSandbox, neighbour: DockerSandbox
) -> None:
    assert open_box.gateway is not None
    open_box.gateway.reload()
    addresses = [n["IPAddress"] for n in open_box.gateway.attrs["NetworkSettings"]["Networks"].values()]
    targets = [*addresses, open_box.gateway.name or ""]
    served_before = [e for e in open_box.network_log() if e["kind"] == "ingress" and e["allowed"]]

    answers = {target: proxied(neighbour, f"http://{target}:{INGRESS_PORT}/index.html") for target in targets}
    tunnels = {target: tunnelled(neighbour, target, INGRESS_PORT) for target in targets}

    assert not any("agent server" in answer for answer in [*answers.values(), *tunnels.values()]), answers
    assert all(answer.startswith("HTTP 403 keystone: destination") for answer in answers.values()), answers
    assert all(answer.startswith("REFUSED HTTP/1.1 403") for answer in tunnels.values()), tunnels
    served_after = [e for e in open_box.network_log() if e["kind"] == "ingress" and e["allowed"]]
    assert served_after == served_before


def test_ingress_serves_the_hosts_loopback_clients_only(open_box: DockerSandbox) -> None:
    host, port = open_box.ingress[AGENT_PORT].split(":")
    with urllib.request.urlopen(f"http://{host}:{port}/index.html", timeout=10) as response:
        from_the_host = response.read()

    from_the_agent = direct(open_box, "keystone-gateway", INGRESS_PORT, name="keystone-gateway")

    assert from_the_host == b"agent server\n"
    assert from_the_agent in ("CLOSED", "FAILED ConnectionResetError: [Errno 104] Connection reset by peer")
    refused = [e for e in _refusals(open_box) if e["kind"] == "ingress"]
    assert str(refused[-1]["reason"]).endswith("refused: only the host's own clients reach ingress ports")


def test_sandbox_services_by_name_and_override_stay_reachable(open_box: DockerSandbox) -> None:
    by_override = proxied(open_box, f"http://mock.example.test:{AGENT_PORT}/index.html")
    by_name = proxied(open_box, f"http://agent:{AGENT_PORT}/index.html")

    assert by_override == "agent server"
    assert by_name == "agent server"
    calls = [e for e in open_box.network_log() if e.get("host") == "mock.example.test"]
    assert {"allowed": True, "service": "agent", "status": 200}.items() <= calls[-1].items()


# --- sandboxes without a gateway --------------------------------------------------------------------


@pytest.mark.parametrize("egress_allowed", [True, False])
def test_without_a_gateway_egress_reaches_the_outside_only_when_allowed_and_never_link_local(
    backend: DockerBackend, base_image: str, gateway_image: str, outside: Outside, egress_allowed: bool
) -> None:
    plan = SandboxPlan(
        spec_id="escapes-direct",
        run_id="test-escapes-direct",
        image=base_image,
        egress_allowed=egress_allowed,
        gateway_image=gateway_image,
    )
    sandbox = backend.create(plan)
    try:
        outside_answer = direct(sandbox, outside.address, 80, wait=3)
        link_local_answer = direct(sandbox, outside.link_local, 80, wait=3)
    finally:
        sandbox.destroy()

    if egress_allowed:
        assert outside_answer == f"outside http {outside.address} at {outside.address}"
    else:
        assert outside_answer.startswith("FAILED")
    assert link_local_answer.startswith("FAILED")


def test_gateways_share_one_egress_network_with_no_traffic_between_them_and_no_reaper_label(
    backend: DockerBackend, open_box: DockerSandbox, neighbour: DockerSandbox
) -> None:
    egress = backend.client.networks.get("keystone-egress")

    assert egress.attrs["Options"] == {
        "com.docker.network.bridge.name": egress_bridge_name(backend.client.info()),
        "com.docker.network.bridge.enable_icc": "false",
    }
    assert egress.attrs["Labels"] == {"keystone.role": "egress"}
    for sandbox in (open_box, neighbour):
        assert sandbox.gateway is not None
        sandbox.gateway.reload()
        assert set(sandbox.gateway.attrs["NetworkSettings"]["Networks"]) == {
            egress.name,
            sandbox.network.name,
        }
