"""Real Keystone servers for the SDK tests (imported by them): the app in-process or on a socket."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from anyio.from_thread import start_blocking_portal

from polarity_keystone import Keystone
from polarity_keystone.server import ServerSettings, close_app, create_api_key, create_app, serve_in_thread
from polarity_keystone.store import Store, open_store
from tests.asgi_sync import SyncASGITransport

SPEC = """\
version: 1
id: {id}
description: {description}
base: "ubuntu:24.04"
task: {{prompt: "write a.txt"}}
agent: {{type: cli, command: "{command}"}}
secrets:
  - name: SDK_TEST_TOKEN
invariants:
  wrote_a:
    gate: true
    check: {{type: file_exists, path: a.txt}}
parallelism: {{replicas: {replicas}}}
"""


OPERATOR_SECRETS = {"SDK_TEST_TOKEN": "env:SDK_TEST_TOKEN"}
"""The test servers are shared servers: the spec's secret reaches a run from the request, or from the
operator's allow-list (`ks serve --secret`), never from the spec's own source."""


def spec_yaml(
    spec_id: str = "sdk-spec",
    *,
    description: str = "an SDK test",
    command: str = "echo a > a.txt",
    replicas: int = 1,
) -> str:
    return SPEC.format(id=spec_id, description=description, command=command, replicas=replicas)


@dataclass
class KeystoneServer:
    """A Keystone server under test: its store (for keys and test set-up) and clients of it."""

    store: Store
    base_url: str
    transport: httpx.BaseTransport | None
    key: str
    _clients: list[Keystone] = field(default_factory=list)

    def new_key(self, name: str = "test") -> str:
        return create_api_key(self.store, name)[0]

    def client(self, api_key: str | None = None, **options: Any) -> Keystone:
        client = Keystone(
            api_key=api_key or self.key, base_url=self.base_url, transport=self.transport, **options
        )
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self.store.close()


@contextmanager
def keystone_in_process(store_url: str, **settings: Any) -> Iterator[KeystoneServer]:
    """The app called in-process (no socket) through `SyncASGITransport`."""
    app = create_app(
        ServerSettings(store_url=store_url, **{"operator_secrets": OPERATOR_SECRETS, **settings})
    )
    server = _server(store_url, "http://keystone.test", None)
    try:
        with start_blocking_portal() as portal:
            server.transport = SyncASGITransport(app, portal)
            yield server
    finally:
        server.close()
        close_app(app)


@contextmanager
def keystone_on_socket(store_url: str, **settings: Any) -> Iterator[KeystoneServer]:
    """The app on uvicorn on a free 127.0.0.1 port (`serve_in_thread`), for streams and env-built clients."""
    with serve_in_thread(
        ServerSettings(store_url=store_url, **{"operator_secrets": OPERATOR_SECRETS, **settings})
    ) as running:
        server = _server(store_url, running.url, None)
        try:
            yield server
        finally:
            server.close()


def _server(store_url: str, base_url: str, transport: httpx.BaseTransport | None) -> KeystoneServer:
    store = open_store(store_url)
    return KeystoneServer(store, base_url, transport, create_api_key(store, "sdk tests")[0])
