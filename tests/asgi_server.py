"""Any ASGI app on a real socket for a test: uvicorn in a thread, on a free port of 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from tests.waiting import wait_until

START_TIMEOUT_S = 10


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """`with serve_app(asgi_app) as base_url:`; the server stops at the end of the block."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "uvicorn stopped before it started"
        return bool(server.started)

    wait_until(started, START_TIMEOUT_S, "uvicorn started", interval=0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
