"""The network policy, enforced for real: a sandbox behind the gateway reaches an allowed host, cannot
reach a denied one (by proxy, directly, or by name), cannot reach the Docker host or its socket, and
every attempt is in the gateway's log."""

from __future__ import annotations

import http.server
import socket
import threading
import urllib.request
from collections.abc import Iterator

import pytest

from polarity_keystone.sandbox import DockerBackend, DockerSandbox, ImageResolver, NetworkPolicy, SandboxPlan

pytestmark = pytest.mark.docker

FETCH = """
import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())
except Exception as exc:
    print(f"FAILED {type(exc).__name__}: {exc}")
"""

CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    print("CONNECTED")
except OSError as exc:
    print(f"FAILED {exc}")
"""


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello from the host")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def host_server() -> Iterator[int]:
    """An HTTP server on every address of the machine running Docker."""
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def gateway_image(resolver: ImageResolver) -> str:
    return resolver.local("gateway").ref


@pytest.fixture(scope="module")
def guarded(backend: DockerBackend, base_image: str, gateway_image: str) -> Iterator[DockerSandbox]:
    plan = SandboxPlan(
        spec_id="network",
        run_id="test-network",
        image=base_image,
        network=NetworkPolicy(default_allow=False, allow=("host.docker.internal",)),
        gateway_image=gateway_image,
    )
    sandbox = backend.create(plan)
    yield sandbox
    sandbox.destroy()


def _python(sandbox: DockerSandbox, script: str, *args: str, proxy: bool = True) -> str:
    env = {} if proxy else {"HTTP_PROXY": "", "http_proxy": "", "HTTPS_PROXY": "", "https_proxy": ""}
    return sandbox.exec(["python3", "-c", script, *args], env=env, timeout=30).stdout.strip()


def test_an_allowed_host_answers_and_the_call_is_logged(guarded: DockerSandbox, host_server: int) -> None:
    url = f"http://host.docker.internal:{host_server}/report"

    assert _python(guarded, FETCH, url) == "hello from the host"

    calls = [e for e in guarded.network_log() if e["kind"] == "http" and e["host"] == "host.docker.internal"]
    assert calls[-1] | {"ts": 0} == {
        "ts": 0,
        "kind": "http",
        "method": "GET",
        "host": "host.docker.internal",
        "port": host_server,
        "path": "/report",
        "allowed": True,
        "status": 200,
    }


def test_a_denied_host_is_unreachable_every_way_and_each_attempt_is_logged(guarded: DockerSandbox) -> None:
    through_proxy = _python(guarded, FETCH, "http://example.com/secret-path")
    by_name = _python(guarded, FETCH, "http://example.com/", proxy=False)
    resolved = guarded.exec(["getent", "hosts", "example.com"])

    assert through_proxy.startswith("FAILED HTTPError: HTTP Error 403")
    assert by_name.startswith("FAILED URLError")
    assert resolved.exit_code != 0
    log = [e for e in guarded.network_log() if e.get("host") == "example.com"]
    expected = {"kind": "http", "method": "GET", "path": "/secret-path", "allowed": False}
    assert expected.items() <= log[0].items()
    assert any(e["kind"] == "dns" and e["allowed"] is False for e in log)


def test_an_https_tunnel_to_a_denied_host_is_refused(guarded: DockerSandbox) -> None:
    out = _python(guarded, FETCH, "https://example.com/")

    assert out.startswith("FAILED")
    assert any(e["kind"] == "connect" and e["allowed"] is False for e in guarded.network_log())


def test_the_agent_cannot_reach_the_docker_host_or_its_socket(
    guarded: DockerSandbox, host_server: int, backend: DockerBackend
) -> None:
    bridge_ip = guarded.network.attrs["IPAM"]["Config"][0]["Gateway"]
    docker0_ip = backend.client.networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"]
    # The host really serves on those addresses: the test process reaches itself through them.
    socket.create_connection((docker0_ip, host_server), timeout=3).close()

    for address in (bridge_ip, docker0_ip):
        assert _python(guarded, CONNECT, address, str(host_server), proxy=False).startswith("FAILED")
    assert guarded.exec(["test", "-e", "/var/run/docker.sock"]).exit_code != 0


def test_a_sandbox_with_open_egress_still_cannot_reach_the_host(
    backend: DockerBackend, base_image: str, gateway_image: str, host_server: int
) -> None:
    plan = SandboxPlan(spec_id="open", run_id="test-open", image=base_image, gateway_image=gateway_image)
    sandbox = backend.create(plan)
    try:
        bridge_ip = sandbox.network.attrs["IPAM"]["Config"][0]["Gateway"]
        assert _python(sandbox, CONNECT, bridge_ip, str(host_server), proxy=False).startswith("FAILED")
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
        for port in (3000, 3001):
            sandbox.exec(f"nohup python3 -m http.server {port} >/dev/null 2>&1 &")
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
