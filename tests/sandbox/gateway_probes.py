"""What an agent runs to reach a destination through its gateway, each way the gateway serves: the HTTP
proxy (urllib honours HTTP_PROXY), a CONNECT tunnel, transparent HTTP (the Host header names the
destination) and transparent TLS (the SNI does). Each prints what came back, or `FAILED …`."""

from __future__ import annotations

from polarity_keystone.sandbox import DockerSandbox

_FETCH = """
import sys, urllib.error, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=20).read().decode())
except urllib.error.HTTPError as exc:
    print(f"HTTP {exc.code} {exc.read().decode().strip()}")
except Exception as exc:
    print(f"FAILED {type(exc).__name__}: {exc}")
"""

_CLIENT = r"""
import socket, ssl, sys
host, port, mode, via, name, wait = sys.argv[1], int(sys.argv[2]), *sys.argv[3:6], float(sys.argv[6])
try:
    if via == "connect":
        stream = socket.create_connection(("keystone-gateway", 3128), timeout=wait)
        stream.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head and (byte := stream.recv(1)):
            head += byte
        if not head.startswith(b"HTTP/1.1 200"):
            print("REFUSED " + head.decode("latin-1").strip())
            sys.exit()
    else:
        stream = socket.create_connection((host, port), timeout=wait)
    if mode == "tls":
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        stream = context.wrap_socket(stream, server_hostname=name)
    stream.sendall(f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := stream.recv(65536):
        data += chunk
    print(data.decode("latin-1").split("\r\n\r\n", 1)[-1].strip() if data else "CLOSED")
except (OSError, ssl.SSLError) as exc:
    print(f"FAILED {type(exc).__name__}: {exc}")
"""


def _run(sandbox: DockerSandbox, script: str, *args: str) -> str:
    return sandbox.exec(["python3", "-c", script, *args], timeout=60).stdout.strip()


def proxied(sandbox: DockerSandbox, url: str) -> str:
    """GET `url` through the gateway's HTTP proxy: the body, `HTTP <status> <body>`, or `FAILED …`."""
    return _run(sandbox, _FETCH, url)


def tunnelled(sandbox: DockerSandbox, host: str, port: int, *, tls: bool = False) -> str:
    """A CONNECT tunnel to host:port, then a GET (inside TLS with `tls`): the body, `REFUSED <status>`,
    or `FAILED …`."""
    return _run(sandbox, _CLIENT, host, str(port), "tls" if tls else "http", "connect", host, "20")


def direct(
    sandbox: DockerSandbox,
    host: str,
    port: int,
    *,
    name: str | None = None,
    tls: bool = False,
    wait: float = 20,
) -> str:
    """A GET on a plain connection to host:port (a name resolves through the gateway's DNS, so it lands
    on the gateway's transparent ports); `name` is the Host header (and SNI with `tls`); `wait` bounds
    each socket operation (a dropped packet only ever times out)."""
    mode = "tls" if tls else "http"
    return _run(sandbox, _CLIENT, host, str(port), mode, "direct", name or host, str(wait))
