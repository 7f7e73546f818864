"""Serve the app on a real socket from a background thread: the embedded mode and tests that need a
network (SSE)."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from ._app import close_app, create_app
from ._settings import ServerSettings

STARTUP_TIMEOUT_S = 30.0


class RunningServer:
    """A server running in a thread; `url` is its base URL. `stop()` (or leaving the `with` block) shuts
    it down and closes the app."""

    def __init__(self, app: FastAPI, server: uvicorn.Server, thread: threading.Thread, url: str) -> None:
        self.app = app
        self.url = url
        self._server = server
        self._thread = thread

    def stop(self, timeout: float = 30.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        close_app(self.app)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_in_thread(settings: ServerSettings, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Start uvicorn in a daemon thread and return once it accepts connections; port 0 picks a free
    port. A server without auth may only listen on a loopback address."""
    if not settings.auth_required and not _is_loopback(host):
        raise ValueError(f"a server without auth must listen on a loopback address, not {host}")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without, a response's header and body segments wait on delayed
    # ACKs (about 40 ms per request on Linux).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    app = create_app(settings)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="keystone-server", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        server.should_exit = True
        thread.join(5)
        sock.close()
        close_app(app)
        raise RuntimeError(f"the Keystone server did not start on {host}:{port}")
    bound = sock.getsockname()[1]
    # On every address, the server is reached from this machine through loopback.
    shown = "127.0.0.1" if host == "0.0.0.0" else f"[{host}]" if ":" in host else host
    return RunningServer(app, server, thread, f"http://{shown}:{bound}")
