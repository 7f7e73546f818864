"""A stand-in for a host outside the machine, run by the `outside` fixture inside its network namespace:
HTTP on :80 and TLS on :443 (any address of the namespace), answering with what they saw and appending
one JSON line per request to a hits file, so a test can tell what reached it.

    python3 outside_server.py HITS_FILE CERT_FILE KEY_FILE
"""

from __future__ import annotations

import json
import socket
import socketserver
import ssl
import sys
import threading
from pathlib import Path

HITS, CERT, KEY = (Path(arg) for arg in sys.argv[1:4])
_lock = threading.Lock()


def record(**hit: str) -> None:
    with _lock, HITS.open("a") as hits:
        hits.write(json.dumps(hit) + "\n")


def answer(stream: socket.socket, body: str) -> None:
    data = body.encode()
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    stream.sendall(head.encode() + data)


def read_head(stream: socket.socket) -> bytes:
    """The request line and headers, however many segments they arrive in."""
    head = b""
    while b"\r\n\r\n" not in head and (chunk := stream.recv(65536)):
        head += chunk
    return head


def host_header(request: bytes) -> str:
    for line in request.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "host":
            return value.strip()
    return ""


class Http(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        request = read_head(self.request)
        local = self.request.getsockname()[0]
        record(kind="http", host=host_header(request), local=local)
        answer(self.request, f"outside http {host_header(request)} at {local}")


class Tls(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        names: list[str] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(CERT, KEY)

        def remember(_sock: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
            names.append(name or "")

        context.sni_callback = remember
        with context.wrap_socket(self.request, server_side=True) as stream:
            read_head(stream)
            local = stream.getsockname()[0]
            record(kind="tls", host=names[0] if names else "", local=local)
            answer(stream, f"outside tls {names[0] if names else ''} at {local}")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main() -> None:
    servers = [Server(("0.0.0.0", 80), Http), Server(("0.0.0.0", 443), Tls)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()  # runs until the fixture closes our stdin


if __name__ == "__main__":
    main()
