"""Fixtures of the server tests: an app on each store (`store_url`), with a `ks_live_` key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from anyio.from_thread import start_blocking_portal

from polarity_keystone.server import (
    RunningServer,
    ServerSettings,
    close_app,
    create_api_key,
    create_app,
    serve_in_thread,
)
from tests.asgi_sync import SyncASGITransport
from tests.server.server_api import Api, MakeApi


@pytest.fixture
def settings_for(store_url: str) -> Callable[..., ServerSettings]:
    def make(**overrides: Any) -> ServerSettings:
        return ServerSettings(store_url=store_url, **overrides)

    return make


@pytest.fixture
def make_api(settings_for: Callable[..., ServerSettings]) -> Iterator[MakeApi]:
    """`make_api(**settings)` in-process; `make_api(socket=True, **settings)` on a uvicorn socket."""
    made: list[Api] = []
    servers: list[RunningServer] = []
    with start_blocking_portal() as portal:

        def make(socket: bool = False, **overrides: Any) -> Api:
            settings = settings_for(**overrides)
            if socket:
                server = serve_in_thread(settings)
                servers.append(server)
                app, base_url, transport = server.app, server.url, None
            else:
                app = create_app(settings)
                base_url, transport = "http://keystone.test", SyncASGITransport(app, portal)
            key, _ = create_api_key(app.state.keystone.store, "test")
            api = Api(app, base_url, transport, key)
            made.append(api)
            return api

        yield make
        for api in made:
            for client in api.clients:
                client.close()
        for server in servers:
            server.stop()
        for api in made:
            close_app(api.app)


@pytest.fixture
def api(make_api: MakeApi) -> Api:
    return make_api()
