"""Helpers shared by the server tests (the fixtures are in conftest.py): spec text, SSE parsing, the
running app and its clients."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from polarity_keystone.sandbox import DockerBackend, SandboxError
from polarity_keystone.server._context import ServerContext
from tests.waiting import wait_until


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


def wait_until_finished(api: Api, experiment_id: str, timeout: float = 120) -> dict[str, Any]:
    """The experiment's results once it reached a terminal status (polling GET)."""

    def finished() -> dict[str, Any] | None:
        body: dict[str, Any] = api.client.get(f"/v1/experiments/{experiment_id}").json()
        return body if body["status"] in TERMINAL else None

    return wait_until(finished, timeout, f"experiment {experiment_id} finished")
