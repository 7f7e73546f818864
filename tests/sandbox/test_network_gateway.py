"""The network policy, enforced for real: a sandbox behind the gateway reaches an allowed host (by the
proxy, a CONNECT tunnel, transparent HTTP and TLS pass-through), cannot reach a denied one any of those
ways or by name, cannot reach the Docker host or its socket, and every attempt is in the gateway's log.

The allowed hosts live in the `outside` namespace (conftest), so every test here can fail on a machine
without internet only when the gateway is wrong."""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator

import pytest
from docker.models.networks import Network

from polarity_keystone.sandbox import DockerBackend, DockerSandbox, NetworkPolicy, SandboxPlan
from tests.sandbox.gateway_probes import direct, proxied, tunnelled
from tests.sandbox.host_listener import HostServer
from tests.sandbox.outside_host import Outside

pytestmark = pytest.mark.docker

CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    print("CONNECTED")
except OSError as exc:
    print(f"FAILED {exc}")
"""


def _host_address_on(network: Network) -> str:
    """The host's address on a Docker bridge network, read from the network's Linux bridge: Docker's IPAM
    config may leave out `Gateway` (a fresh engine's default bridge had only a `Subnet`)."""
    options = network.attrs.get("Options") or {}
    interface = options.get("com.docker.network.bridge.name") or f"br-{network.id[:12]}"
    shown = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "dev", interface], capture_output=True, text=True, check=True
    )
    return shown.stdout.split()[3].split("/")[0]


@pytest.fixture(scope="module")
def guarded(outside_backend: DockerBackend, base_image: str, gateway_image: str) -> Iterator[DockerSandbox]:
    """Default deny; `*.example.test` allowed by a wildcard."""
    plan = SandboxPlan(
        spec_id="network",
        run_id="test-network",
        image=base_image,
        network=NetworkPolicy(default_allow=False, allow=("*.example.test",)),
        gateway_image=gateway_image,
    )
    sandbox = outside_backend.create(plan)
    yield sandbox
    sandbox.destroy()


def _python(sandbox: DockerSandbox, script: str, *args: str, proxy: bool = True) -> str:
    env = {} if proxy else {"HTTP_PROXY": "", "http_proxy": "", "HTTPS_PROXY": "", "https_proxy": ""}
    return sandbox.exec(["python3", "-c", script, *args], env=env, timeout=30).stdout.strip()


def test_an_allowed_host_answers_through_the_proxy_and_the_call_is_logged(
    guarded: DockerSandbox, outside: Outside
) -> None:
    answer = proxied(guarded, "http://api.example.test/report")

    assert answer == f"outside http api.example.test at {outside.address}"
    calls = [e for e in guarded.network_log() if e["kind"] == "http" and e["host"] == "api.example.test"]
    assert calls[-1] | {"ts": 0} == {
        "ts": 0,
        "kind": "http",
        "method": "GET",
        "host": "api.example.test",
        "port": 80,
        "path": "/report",
        "allowed": True,
        "status": 200,
    }


def test_an_allowed_host_answers_every_other_way(guarded: DockerSandbox, outside: Outside) -> None:
    """Transparent HTTP (the Host header), TLS pass-through (the SNI) and a CONNECT tunnel, to hosts a
    wildcard allows: the TLS session is the outside server's own, end to end."""
    answers = {
        "transparent http": direct(guarded, "www.example.test", 80),
        "transparent tls": direct(guarded, "api.example.test", 443, tls=True),
        "connect, tls": tunnelled(guarded, "www.example.test", 443, tls=True),
    }

    assert answers == {
        "transparent http": f"outside http www.example.test at {outside.address}",
        "transparent tls": f"outside tls api.example.test at {outside.address}",
        "connect, tls": f"outside tls www.example.test at {outside.address}",
    }
    logged = {(e["kind"], e["host"], e["allowed"]) for e in guarded.network_log()}
    assert {
        ("http", "www.example.test", True),
        ("tls", "api.example.test", True),
        ("connect", "www.example.test", True),
    } <= logged


def test_a_host_the_wildcard_does_not_match_is_refused_every_way(
    guarded: DockerSandbox, outside: Outside
) -> None:
    """`other.test` resolves (for the gateway) to the same outside server, so only the policy stops it."""
    answers = {
        "proxy": proxied(guarded, "http://other.test/secret-path"),
        "connect": tunnelled(guarded, "other.test", 443, tls=True),
        "transparent http": direct(guarded, "keystone-gateway", 80, name="other.test"),
        "transparent tls": direct(guarded, "keystone-gateway", 443, name="other.test", tls=True),
        "by name": direct(guarded, "other.test", 80),
    }

    assert answers["proxy"] == "HTTP 403 keystone: egress to other.test is denied by the spec"
    assert answers["connect"].startswith("REFUSED HTTP/1.1 403")
    assert answers["transparent http"] == "keystone: egress to other.test is denied by the spec"
    assert answers["transparent tls"].startswith("FAILED")
    assert answers["by name"].startswith("FAILED gaierror")
    assert not [hit for hit in outside.hits() if hit["host"] == "other.test"]
    denied = {(e["kind"], e.get("path")) for e in guarded.network_log() if e.get("host") == "other.test"}
    assert {("http", "/secret-path"), ("connect", None), ("tls", None), ("dns", None)} <= denied
    assert all(e["allowed"] is False for e in guarded.network_log() if e.get("host") == "other.test")


def test_an_ip_literal_in_the_allow_list_is_reachable_and_nothing_else_is(
    outside_backend: DockerBackend, base_image: str, gateway_image: str, outside: Outside
) -> None:
    plan = SandboxPlan(
        spec_id="network-literal",
        run_id="test-network-literal",
        image=base_image,
        network=NetworkPolicy(default_allow=False, allow=(outside.address,)),
        gateway_image=gateway_image,
    )
    sandbox = outside_backend.create(plan)
    try:
        by_address = proxied(sandbox, f"http://{outside.address}/")
        by_name = proxied(sandbox, "http://api.example.test/")
    finally:
        sandbox.destroy()

    assert by_address == f"outside http {outside.address} at {outside.address}"
    assert by_name == "HTTP 403 keystone: egress to api.example.test is denied by the spec"


def test_the_agent_cannot_reach_the_docker_host_or_its_socket(
    guarded: DockerSandbox, host_server: HostServer
) -> None:
    bridge_ip = _host_address_on(guarded.network)
    docker0_ip = _host_address_on(guarded.network.client.networks.get("bridge"))
    # The host really serves on those addresses: the test process reaches itself through them.
    urllib.request.urlopen(f"http://{docker0_ip}:{host_server.port}/", timeout=3).close()

    for address in (bridge_ip, docker0_ip):
        assert _python(guarded, CONNECT, address, str(host_server.port), proxy=False).startswith("FAILED")
    assert guarded.exec(["test", "-e", "/var/run/docker.sock"]).exit_code != 0


def test_a_sandbox_with_open_egress_still_cannot_reach_the_host(
    backend: DockerBackend, base_image: str, gateway_image: str, host_server: HostServer
) -> None:
    plan = SandboxPlan(spec_id="open", run_id="test-open", image=base_image, gateway_image=gateway_image)
    sandbox = backend.create(plan)
    try:
        bridge_ip = _host_address_on(sandbox.network)
        assert _python(sandbox, CONNECT, bridge_ip, str(host_server.port), proxy=False).startswith("FAILED")
        assert sandbox.network_log() == []
    finally:
        sandbox.destroy()


def test_the_host_reaches_only_the_declared_ingress_port(
    backend: DockerBackend, base_image: str, gateway_image: str
) -> None:
    plan = SandboxPlan(
        spec_id="ingress",
        run_id="test-ingress",
        image=base_image,
        network=NetworkPolicy(default_allow=False, ingress=(3000,)),
        gateway_image=gateway_image,
    )
    sandbox = backend.create(plan)
    try:
        sandbox.exec("echo dev server > index.html")
        for agent_port in (3000, 3001):
            sandbox.exec(f"nohup python3 -m http.server {agent_port} >/dev/null 2>&1 &")
        sandbox.exec("sleep 0.5")

        assert list(sandbox.ingress) == [3000]
        host, port = sandbox.ingress[3000].split(":")
        assert host == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10) as response:
            assert response.read() == b"dev server\n"
        assert sandbox.describe()["ingress"] == {"3000": sandbox.ingress[3000]}
        assert {"kind": "ingress", "port": 3000, "allowed": True}.items() <= sandbox.network_log()[-1].items()
    finally:
        sandbox.destroy()
