"""A host "outside" the machine for the network tests, built from a network namespace: sandboxes reach it
exactly as they would reach the internet, and only while Keystone lets them. Nothing leaves this machine.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SERVER = Path(__file__).with_name("outside_server.py")


@dataclass(frozen=True)
class Outside:
    """HTTP (:80) and TLS (:443) on three addresses of a namespace joined to the host by a veth pair: a
    benchmarking address (198.18.0.0/15, never routed publicly), a link-local one and a private one. The
    host routes to all three."""

    address: str
    link_local: str
    private: str
    hits_file: Path

    @property
    def names(self) -> dict[str, str]:
        """Host names for the gateways' resolver (the operator's KEYSTONE_GATEWAY_HOSTS); the last two
        lead where no gateway may go, whatever the spec allows."""
        return {
            "api.example.test": self.address,
            "www.example.test": self.address,
            "other.test": self.address,
            "private.test": self.private,
            "metadata.example.test": self.link_local,
            "loopback.example.test": "127.0.0.1",
        }

    def hits(self) -> list[dict[str, str]]:
        """What reached the servers: {kind: http|tls, host: Host header or SNI, local: address hit}."""
        text = self.hits_file.read_text() if self.hits_file.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@contextlib.contextmanager
def outside_namespace(folder: Path) -> Iterator[Outside]:
    """Create the namespace, its veth pair, routes and servers (addresses chosen at random, so sessions
    do not collide); remove them all on exit. Needs root (CI runs as root)."""
    tag = secrets.token_hex(3)
    block = secrets.randbelow(256 * 64) * 4  # one /30 of 198.18.0.0/16
    prefix = f"198.18.{block // 256}"
    host_side, inside = f"{prefix}.{block % 256 + 1}", f"{prefix}.{block % 256 + 2}"
    link_local = f"169.254.{100 + secrets.randbelow(100)}.{1 + secrets.randbelow(250)}"
    private = f"10.254.{secrets.randbelow(256)}.{1 + secrets.randbelow(250)}"
    namespace, veth, peer = f"kst-{tag}", f"kst{tag}h", f"kst{tag}n"
    cert, key, hits = folder / "cert.pem", folder / "key.pem", folder / "hits.jsonl"
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subprocess.run(
        [*openssl, "-subj", "/CN=example.test", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    server: subprocess.Popen[str] | None = None
    try:
        _ip("netns", "add", namespace)
        _ip("link", "add", veth, "type", "veth", "peer", "name", peer, "netns", namespace)
        _ip("addr", "add", f"{host_side}/30", "dev", veth)
        _ip("link", "set", veth, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        _ip("-n", namespace, "addr", "add", f"{inside}/30", "dev", peer)
        _ip("-n", namespace, "link", "set", peer, "up")
        for address in (link_local, private):
            _ip("-n", namespace, "addr", "add", f"{address}/32", "dev", "lo")
            _ip("route", "add", f"{address}/32", "via", inside, "dev", veth)
        _ip("-n", namespace, "route", "add", "default", "via", host_side)
        server = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, str(SERVER), str(hits), str(cert), str(key)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        yield Outside(address=inside, link_local=link_local, private=private, hits_file=hits)
    finally:
        if server is not None:
            server.communicate(timeout=10)  # closing its stdin stops it
        subprocess.run(["ip", "link", "del", veth], capture_output=True)  # its routes go with it
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
