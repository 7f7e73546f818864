"""Keystone's network gateway: the only way out of a sandbox whose spec sets a network policy.

The sandbox network is `--internal` (no route out); this process runs in a container on that network and
on Keystone's egress network (shared by every gateway, no traffic between them, none to the host), and
serves the agent three ways, all through one policy:

* DNS on :53 (the agent's resolv.conf points here). `dns_overrides` hosts and allowed external hosts
  resolve to this gateway; sandbox names (services, `<name>.services.internal`) go to Docker's embedded
  DNS; any other name is NXDOMAIN.
* HTTP on :80 (transparent: the Host header names the destination) and an HTTP proxy on :3128
  (absolute-form requests and CONNECT, for clients that honour HTTP_PROXY / HTTPS_PROXY).
* TLS on :443 (transparent: the destination comes from the ClientHello's SNI; the bytes are passed
  through untouched, so only the host name is visible). TLS for a host overridden to a service that
  answers TLS itself (`tls_ports`, the model proxy standing in for api.openai.com) goes to that port, on
  :443 and through CONNECT alike; other traffic to a service goes to its first port.

Whatever the policy allows, the gateway connects only to addresses that destinations.py lets through
(never the Docker host, another sandbox, loopback or link-local), checked after it resolved the name.
Ingress ports (the host reaching the agent through a port Docker published on 127.0.0.1) accept only
the address Docker's port forwarding connects from.

Every attempt is one JSON line in the log file: DNS lookups, HTTP requests (method, host, path, status),
CONNECT tunnels and TLS connections, each with `allowed` (and `reason` when the destination was refused)
and, for hosts that lead to a sandbox service, `service`. Configuration is one JSON document in
KEYSTONE_GATEWAY_CONFIG:

    {"default": "deny", "allow": ["*.example.com"], "subnet": "172.18.0.0/16",
     "overrides": {"api.stripe.com": "stripe"}, "services": {"stripe": 8080, "db": 5432},
     "tls_ports": {"llm": 443},
     "host": ["172.17.0.1", "192.0.2.2"], "docker_networks": ["172.20.0.0/16"],
     "ingress": {"20000": 3000}, "ingress_from": ["172.20.0.1"], "log": "/var/log/keystone/gateway.jsonl"}
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import ipaddress
import json
import os
import socket
import struct
import sys
import time
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from destinations import Fence

READY_MARKER = "keystone: gateway ready"
EMBEDDED_DNS = ("127.0.0.11", 53)
INTERNAL_SUFFIX = ".services.internal"
HEAD_LIMIT = 64 * 1024
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Route:
    allowed: bool
    service: str | None
    """The sandbox service the host leads to (an override or a service name), else None."""
    target_host: str
    target_port: int
    named: bool = False
    """The spec allows the host by name (a pattern with a literal part), which opens private ranges."""


Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def _names_hosts(pattern: str) -> bool:
    """False for catch-alls such as `*` or `*.*`, which allow hosts without naming any."""
    return bool(pattern.strip("*?."))


class Policy:
    def __init__(self, config: dict[str, Any]) -> None:
        self.default_allow = config.get("default", "deny") == "allow"
        self.allow = [pattern.lower() for pattern in config.get("allow", [])]
        self.overrides = {host.lower(): service for host, service in config.get("overrides", {}).items()}
        self.services: dict[str, int | None] = config.get("services", {})
        self.tls_ports: dict[str, int] = config.get("tls_ports", {})

    def service_of(self, host: str) -> str | None:
        host = host.lower().rstrip(".")
        if host in self.overrides:
            return str(self.overrides[host])
        name = host.removesuffix(INTERNAL_SUFFIX)
        return name if name in self.services else None

    def is_sandbox_name(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return host.removesuffix(INTERNAL_SUFFIX) in self.services and host not in self.overrides

    def route(self, host: str, port: int) -> Route:
        host = host.lower().rstrip(".")
        service = self.service_of(host)
        if service is not None:
            tls_port = self.tls_ports.get(service) if port == 443 else None
            return Route(True, service, service, tls_port or self.services.get(service) or port)
        matches = [pattern for pattern in self.allow if fnmatch.fnmatch(host, pattern)]
        named = any(_names_hosts(pattern) for pattern in matches)
        return Route(self.default_allow or bool(matches), None, host, port, named)


class AuditLog:
    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._file = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - open for the process

    def write(self, **event: Any) -> None:
        event = {"ts": round(time.time(), 3), **{k: v for k, v in event.items() if v is not None}}
        self._file.write(json.dumps(event) + "\n")


# --- DNS -------------------------------------------------------------------------------------------------


def _question(packet: bytes) -> tuple[str, int, int]:
    """(name, qtype, end offset of the question) of a query's first question."""
    labels, offset = [], 12
    while packet[offset]:
        length = packet[offset]
        labels.append(packet[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    qtype = struct.unpack("!H", packet[offset + 1 : offset + 3])[0]
    return ".".join(labels).lower(), qtype, offset + 5


def _answer(query: bytes, question_end: int, rcode: int, address: str | None) -> bytes:
    flags = 0x8180 | rcode  # a response, recursion desired and available
    answers = 1 if address else 0
    header = query[:2] + struct.pack("!HHHHH", flags, 1, answers, 0, 0)
    body = query[12:question_end]
    if address:
        body += struct.pack("!HHHIH", 0xC00C, 1, 1, 5, 4) + socket.inet_aton(address)
    return header + body


class DnsServer(asyncio.DatagramProtocol):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.gateway.from_sandbox(addr[0]):
            asyncio.get_running_loop().create_task(self._reply(data, addr))

    async def _reply(self, query: bytes, addr: tuple[str, int]) -> None:
        try:
            name, qtype, end = _question(query)
        except (IndexError, struct.error):
            return
        policy, log = self.gateway.policy, self.gateway.log
        if policy.is_sandbox_name(name) or name == "keystone-gateway":
            response = await asyncio.get_running_loop().run_in_executor(None, _forward, query, name)
        else:
            route = policy.route(name, 0)
            if qtype == 1:  # only A queries are logged: one lookup, one line
                log.write(kind="dns", host=name, allowed=route.allowed, service=route.service)
            if route.allowed:
                response = _answer(query, end, 0, self.gateway.address if qtype == 1 else None)
            else:
                response = _answer(query, end, 3, None)
        if response and self.transport is not None:
            self.transport.sendto(response, addr)


def _forward(query: bytes, name: str) -> bytes:
    """Sandbox names are Docker's to answer: the embedded DNS knows every container's aliases."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as upstream:
        upstream.settimeout(2.0)
        try:
            upstream.sendto(query.replace(INTERNAL_SUFFIX.encode(), b""), EMBEDDED_DNS)
            return upstream.recv(4096)
        except OSError:
            return b""


# --- HTTP, CONNECT and TLS -------------------------------------------------------------------------------


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    with contextlib.suppress(ConnectionError, OSError):
        writer.close()


async def _splice(
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    await asyncio.gather(_pipe(client[0], upstream[1]), _pipe(upstream[0], client[1]))


def _split_host(value: str, default_port: int) -> tuple[str, int]:
    host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    return (host, int(port)) if port.isdigit() else (value, default_port)


def _destination(target: str, headers: list[str], default_port: int) -> tuple[str, int, str]:
    """(host, port, origin-form path) of a request: from an absolute URI (proxy requests) or the Host
    header (transparent ones)."""
    if target.startswith(("http://", "https://")):
        url = urlsplit(target)
        path = url.path + (f"?{url.query}" if url.query else "")
        return url.hostname or "", url.port or (443 if url.scheme == "https" else 80), path or "/"
    host = next((h.split(":", 1)[1].strip() for h in headers if h.lower().startswith("host:")), "")
    return (*_split_host(host, default_port), target)


def _refusal(status: int, reason: str, message: str) -> bytes:
    body = message.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\nX-Keystone-Gateway: denied\r\n\r\n"
    ).encode() + body


class Gateway:
    def __init__(self, config: dict[str, Any]) -> None:
        self.policy = Policy(config)
        self.log = AuditLog(config.get("log", "/var/log/keystone/gateway.jsonl"))
        self.subnet = ipaddress.ip_network(config["subnet"]) if config.get("subnet") else None
        self.address = _address_in(self.subnet) if self.subnet else "127.0.0.1"
        self.fence = Fence.of(
            config.get("host", []),
            config.get("docker_networks", []),
            config.get("subnet"),
            config.get("denied", []),
            config.get("denied_except", []),
        )
        self.ingress_from = frozenset(config.get("ingress_from", []))

    def from_sandbox(self, peer: str) -> bool:
        return self.subnet is None or ipaddress.ip_address(peer) in self.subnet

    async def _dial(self, route: Route) -> tuple[Streams | None, str | None]:
        """(streams, None) when connected; (None, why) when every address the host resolves to is refused;
        (None, None) when it does not resolve or does not answer. The connection goes to the address that
        was checked: nothing resolves the name again in between."""
        loop = asyncio.get_running_loop()
        try:
            found = await asyncio.wait_for(
                loop.getaddrinfo(route.target_host, route.target_port, type=socket.SOCK_STREAM),
                CONNECT_TIMEOUT_S,
            )
        except (TimeoutError, OSError, UnicodeError):
            return None, None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        refusals = [
            self.fence.refusal(
                address, route.target_port, service=route.service is not None, named=route.named
            )
            for address in addresses
        ]
        permitted = [address for address, refusal in zip(addresses, refusals, strict=True) if refusal is None]
        if not permitted:
            return None, refusals[0] if refusals else None
        try:
            streams = await asyncio.wait_for(
                asyncio.open_connection(permitted[0], route.target_port), CONNECT_TIMEOUT_S
            )
        except (TimeoutError, OSError):
            return None, None
        return streams, None

    async def http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        """Port 80 (transparent) and 3128 (proxy): one request per connection (`Connection: close`), so
        every request is seen and logged."""
        if not self.from_sandbox(writer.get_extra_info("peername")[0]):
            writer.close()
            return
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = [*lines[0].split(" ", 2), "", ""][:3]
        headers = [line for line in lines[1:] if line]
        if method == "CONNECT":
            await self._connect(reader, writer, target)
            return
        host, dest_port, path = _destination(target, headers, 80 if port == 3128 else port)
        route = self.policy.route(host, dest_port)
        entry = {"kind": "http", "method": method, "host": host, "port": dest_port, "path": path}
        if not route.allowed:
            self.log.write(**entry, allowed=False)
            writer.write(_refusal(403, "Forbidden", f"keystone: egress to {host} is denied by the spec\n"))
            await writer.drain()
            writer.close()
            return
        upstream, refused = await self._dial(route)
        if refused is not None:
            self.log.write(**entry, allowed=False, reason=refused)
            writer.write(_refusal(403, "Forbidden", f"keystone: {refused}\n"))
            writer.close()
            return
        if upstream is None:
            self.log.write(**entry, allowed=True, service=route.service, status=502)
            writer.write(_refusal(502, "Bad Gateway", f"keystone: {host} did not answer\n"))
            writer.close()
            return
        kept = [h for h in headers if not h.lower().startswith(("connection:", "proxy-", "keep-alive:"))]
        upstream[1].write(f"{method} {path} {version}\r\n".encode("latin-1"))
        upstream[1].write(("\r\n".join([*kept, "Connection: close"]) + "\r\n\r\n").encode("latin-1"))
        body = asyncio.ensure_future(_pipe(reader, upstream[1]))  # the request body, while we wait
        first = await upstream[0].read(65536)
        status_line = first.split(b"\r\n", 1)[0].split(b" ")
        status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else None
        self.log.write(**entry, allowed=True, service=route.service, status=status)
        writer.write(first)
        await asyncio.gather(body, _pipe(upstream[0], writer))

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: str) -> None:
        host, port = _split_host(target, 443)
        route = self.policy.route(host, port)
        upstream, refused = await self._dial(route) if route.allowed else (None, None)
        allowed = route.allowed and refused is None
        self.log.write(
            kind="connect",
            host=host,
            port=port,
            allowed=allowed,
            service=route.service if allowed else None,
            reason=refused,
        )
        if upstream is None:
            status = (403, "Forbidden") if not allowed else (502, "Bad Gateway")
            because = f": {refused}" if refused else ""
            writer.write(_refusal(*status, f"keystone: tunnel to {host}:{port} refused{because}\n"))
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await writer.drain()
        await _splice((reader, writer), upstream)

    async def ingress(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        """A connection from the host (through the port Docker published) to the agent's `port`. Only the
        address Docker's port forwarding connects from is served: never another container."""
        peer = writer.get_extra_info("peername")[0]
        if peer not in self.ingress_from:
            reason = f"ingress from {peer} refused: only the host's own clients reach ingress ports"
            self.log.write(kind="ingress", port=port, allowed=False, reason=reason)
            writer.close()
            return
        upstream, _ = await self._dial(Route(True, "agent", "agent", port))
        self.log.write(kind="ingress", port=port, allowed=True, status=None if upstream else 502)
        if upstream is None:
            writer.close()
            return
        await _splice((reader, writer), upstream)

    async def tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.from_sandbox(writer.get_extra_info("peername")[0]):
            writer.close()
            return
        try:
            hello = await asyncio.wait_for(reader.read(16384), CONNECT_TIMEOUT_S)
        except (TimeoutError, ConnectionError):
            writer.close()
            return
        host = _sni(hello) or ""
        route = self.policy.route(host, 443)
        upstream, refused = await self._dial(route) if route.allowed and host else (None, None)
        allowed = route.allowed and bool(host) and refused is None
        self.log.write(
            kind="tls",
            host=host or None,
            port=443,
            allowed=allowed,
            service=route.service if allowed else None,
            reason=refused,
        )
        if upstream is None:
            writer.close()
            return
        upstream[1].write(hello)
        await _splice((reader, writer), upstream)


def _sni(hello: bytes) -> str | None:
    """The server name of a TLS ClientHello, or None when there is none (or it is not a ClientHello)."""
    try:
        if hello[0] != 0x16 or hello[5] != 0x01:
            return None
        offset = 9 + 2 + 32  # record header 5, handshake header 4, version, random
        offset += 1 + hello[offset]  # session id
        offset += 2 + struct.unpack("!H", hello[offset : offset + 2])[0]  # cipher suites
        offset += 1 + hello[offset]  # compression methods
        end = offset + 2 + struct.unpack("!H", hello[offset : offset + 2])[0]
        offset += 2
        while offset + 4 <= end:
            kind, length = struct.unpack("!HH", hello[offset : offset + 4])
            if kind == 0:  # server_name: list length, name type, name length, name
                name_length = struct.unpack("!H", hello[offset + 7 : offset + 9])[0]
                return hello[offset + 9 : offset + 9 + name_length].decode("ascii", "replace").lower()
            offset += 4 + length
    except (IndexError, struct.error):
        return None
    return None


def _address_in(subnet: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """This container's address on the sandbox network (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((str(next(subnet.hosts())), 9))
        return str(probe.getsockname()[0])


async def main() -> None:
    config = json.loads(os.environ.get("KEYSTONE_GATEWAY_CONFIG", "{}"))
    gateway = Gateway(config)
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: DnsServer(gateway), local_addr=("0.0.0.0", 53))
    servers = [
        await asyncio.start_server(lambda r, w: gateway.http(r, w, 80), "0.0.0.0", 80, limit=HEAD_LIMIT),
        await asyncio.start_server(lambda r, w: gateway.http(r, w, 3128), "0.0.0.0", 3128, limit=HEAD_LIMIT),
        await asyncio.start_server(gateway.tls, "0.0.0.0", 443),
    ]
    for listen, port in config.get("ingress", {}).items():
        servers.append(
            await asyncio.start_server(partial(gateway.ingress, port=port), "0.0.0.0", int(listen))
        )
    print(READY_MARKER, flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    sys.exit(0)
