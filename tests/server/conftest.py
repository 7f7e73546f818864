"""The server under test: the real app over a real store (SQLite and Postgres, from `store_url`),
called in-process through httpx's ASGI transport, or on a real uvicorn socket where the network
matters (SSE)."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI

from polarity_keystone.sandbox import DockerBackend, SandboxError
from polarity_keystone.server import (
    RunningServer,
    ServerSettings,
    close_app,
    create_api_key,
    create_app,
    serve_in_thread,
)
from polarity_keystone.server._context import ServerContext


def spec_yaml(
    spec_id: str = "hello",
    *,
    command: str = "echo hi",
    replicas: int = 1,
    extra: str = "",
    description: str = "a server test",
) -> str:
    """A small cli-agent spec: the agent runs `command`, one `command_exit` invariant."""
    return textwrap.dedent(
        f"""\
        version: 1
        id: {spec_id}
        description: {description}
        base: "debian:bookworm-slim"
        task: {{prompt: "say hi"}}
        agent: {{type: cli, command: '{command}'}}
        invariants:
          ok: {{check: {{type: command_exit, command: "true"}}}}
        parallelism: {{replicas: {replicas}}}
        """
    ) + textwrap.dedent(extra)


TERMINAL = ("completed", "failed", "cancelled", "interrupted")


def unreachable_engine() -> DockerBackend:
    """What `DockerBackend()` raises when no Docker engine answers (the server's backend factory)."""
    raise SandboxError("no Docker engine answers (none in this test); start one, or set DOCKER_HOST")


def sse_events(text: str) -> list[tuple[int, str, str]]:
    """(id, event, data) of each event in an SSE body; comment lines (keep-alives) are skipped."""
    events = []
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if line and not line.startswith(":")]
        fields = dict(line.split(": ", 1) for line in lines)
        if fields:
            events.append((int(fields["id"]), fields["event"], fields["data"]))
    return events


class SyncASGITransport(httpx.BaseTransport):
    """httpx's (async) ASGI transport driven from synchronous tests through an anyio portal, so the app
    runs in-process; a response is complete when returned (no streaming)."""

    def __init__(self, app: FastAPI, portal: BlockingPortal) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._portal = portal

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._portal.call(self._send, request)

    async def _send(self, request: httpx.Request) -> httpx.Response:
        forwarded = httpx.Request(
            request.method, request.url, headers=request.headers, content=request.read()
        )
        response = await self._inner.handle_async_request(forwarded)
        body = b"".join([chunk async for chunk in response.aiter_raw()])
        return httpx.Response(response.status_code, headers=response.headers, stream=httpx.ByteStream(body))


@dataclass
class Api:
    """A running app and clients for it: `client` carries a `ks_live_` key."""

    app: FastAPI
    base_url: str
    transport: httpx.BaseTransport | None
    key: str
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def context(self) -> ServerContext:
        context: ServerContext = self.app.state.keystone
        return context

    def as_key(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        client = httpx.Client(base_url=self.base_url, transport=self.transport, headers=headers, timeout=120)
        self.clients.append(client)
        return client

    def __post_init__(self) -> None:
        self.client = self.as_key(self.key)

    def upload(self, text: str, **params: Any) -> httpx.Response:
        return self.client.post(
            "/v1/specs", content=text, params=params, headers={"Content-Type": "application/x-yaml"}
        )


MakeApi = Callable[..., Api]


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


def wait_until_finished(api: Api, experiment_id: str, timeout: float = 120) -> dict[str, Any]:
    """The experiment's results once it reached a terminal status (polling GET)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = api.client.get(f"/v1/experiments/{experiment_id}").json()
        if body["status"] in TERMINAL:
            return body
        time.sleep(0.05)
    raise AssertionError(f"experiment {experiment_id} did not finish in {timeout}s")
