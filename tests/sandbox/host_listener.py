"""A plain HTTP server on every address of the machine running Docker: what a sandbox must never reach."""

from __future__ import annotations

import http.server
import threading


class HostServer(http.server.ThreadingHTTPServer):
    """Answers "hello from the host" and counts the requests that reached it."""

    hits = 0

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Hello(http.server.BaseHTTPRequestHandler):
    server: HostServer

    def do_GET(self) -> None:
        self.server.hits += 1
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello from the host")

    def log_message(self, *args: object) -> None:
        pass


def serve_on_every_address() -> HostServer:
    """A started server on 0.0.0.0 and a free port; `shutdown()` and `server_close()` end it."""
    server = HostServer(("0.0.0.0", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
