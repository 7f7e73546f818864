"""Embedded mode: a Keystone server in this process, for `Keystone.local()` (and the CLI and the gate when
no server is configured) — the same API and code path as a shared server, with no set-up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..server import ServerSettings, create_api_key, serve_in_thread
from ..store import open_store

DB_FILE = "keystone.db"


@dataclass(frozen=True)
class EmbeddedServer:
    base_url: str
    api_key: str
    stop: Callable[[], None]
    """Stops the server and revokes its key, so no credential outlives the process that used it."""


def start_embedded_server(directory: Path) -> EmbeddedServer:
    """Serve on a free port (reached here through 127.0.0.1) from SQLite in `directory/keystone.db`, with
    a fresh API key. Specs reach it as they reach any server, their local files in a bundle; their
    secrets may read this machine's environment, files and commands: server and caller are the same local
    user, who trusts their own specs (a shared server does not; see ServerSettings.host_sources)."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# Keystone's embedded server state (Keystone.local)\n*\n")
    store_url = f"sqlite://{directory / DB_FILE}"
    store = open_store(store_url)
    try:
        key, record = create_api_key(store, "embedded server (Keystone.local)")
    finally:
        store.close()

    def revoke_key() -> None:
        store = open_store(store_url)
        try:
            store.revoke_api_key(record.id)
        finally:
            store.close()

    try:
        settings = ServerSettings.for_local_user(store_url)
        # On every address, so the agents of its sandboxes reach it at the host's address on their
        # network (each sandbox lets its agent through to this port alone); every route but the health
        # probe and the OpenAPI document needs this process's key or a sandbox token.
        running = serve_in_thread(settings, host="0.0.0.0")
    except BaseException:
        revoke_key()
        raise

    def stop() -> None:
        try:
            running.stop()
        finally:
            revoke_key()

    return EmbeddedServer(running.url, key, stop)
