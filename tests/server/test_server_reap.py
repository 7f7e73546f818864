"""A `ks serve` killed with -9 leaves no sandboxes behind: its reaper container removes them within seconds
(issue 9, finding 7; issue 11). A real `ks serve` process on a temporary SQLite store, a real kill -9, a
real Docker engine."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from polarity_keystone.sandbox import DockerBackend, SandboxError
from polarity_keystone.sandbox import _labels as labels
from tests.ks_serve import ServeProcess, free_port, start_ks_serve
from tests.server.server_api import MakeApi, spec_yaml
from tests.waiting import wait_until

pytestmark = pytest.mark.docker

START_TIMEOUT_S = 60.0
REAP_TIMEOUT_S = 10.0


def _ks(*args: str) -> list[str]:
    return [sys.executable, "-m", "polarity_keystone", *args]


class Servers:
    """`ks serve` processes on one store; every one still running is killed at the end."""

    def __init__(self, store_url: str, workdir: Path) -> None:
        self.store_url = store_url
        self.workdir = workdir
        self.started: list[ServeProcess] = []

    def start(self, port: int) -> ServeProcess:
        server = start_ks_serve(self.store_url, self.workdir, port=port, timeout=START_TIMEOUT_S)
        self.started.append(server)
        return server

    def stop_all(self) -> None:
        for server in self.started:
            if server.process.poll() is None:
                server.process.kill()
            server.process.wait(30)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    made = Servers(f"sqlite://{tmp_path / 'keystone.db'}", tmp_path)
    yield made
    made.stop_all()


def _sandboxes_of(client: docker.DockerClient, pid: int) -> tuple[set[str], set[str]]:
    """(containers, networks) of Keystone sandboxes whose owner is process `pid` of this host."""
    owner = f"@{socket.gethostname()}/{pid}"
    selector = {"label": f"{labels.MANAGED}=true"}
    containers = {
        container.name or ""
        for container in client.containers.list(all=True, filters=selector, ignore_removed=True)
        if container.labels.get(labels.OWNER, "").endswith(owner)
        and container.labels.get(labels.ROLE) not in labels.PROCESS_ROLES
    }
    networks = {
        network.name or ""
        for network in client.networks.list(filters=selector)
        if (network.attrs.get("Labels") or {}).get(labels.OWNER, "").endswith(owner)
    }
    return containers, networks


def test_the_sandboxes_of_a_server_killed_with_minus_9_are_removed_by_its_reaper(
    servers: Servers, backend: DockerBackend
) -> None:
    created = subprocess.run(
        _ks("keys", "create", "test", "--store", servers.store_url),
        capture_output=True,
        text=True,
        check=True,
    )
    key = created.stdout.strip()
    port = free_port()
    first = servers.start(port)
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"})
    with api:
        uploaded = api.post(
            "/v1/specs",
            content=spec_yaml("sleeper", command="sleep 300", replicas=2),
            headers={"Content-Type": "application/x-yaml"},
        )
        assert uploaded.status_code == 201, uploaded.text
        experiment = api.post("/v1/experiments", json={"name": "killed", "spec_id": "sleeper"}).json()
        assert api.post(f"/v1/experiments/{experiment['id']}/run").status_code == 202
        wait_until(
            lambda: len(_sandboxes_of(backend.client, first.process.pid)[1]) == 2,
            START_TIMEOUT_S,
            "two sandboxes",
        )

    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait()
    wait_until(
        lambda: _sandboxes_of(backend.client, first.process.pid) == (set(), set()),
        REAP_TIMEOUT_S,
        "the killed server's containers and networks removed",
    )


def test_the_engine_starts_at_start_up_in_the_background_without_holding_up_the_api(
    make_api: MakeApi,
) -> None:
    called, release = threading.Event(), threading.Event()

    def slow_engine() -> DockerBackend:
        called.set()
        release.wait(10)
        raise SandboxError("no Docker engine answers (none in this test)")

    started = time.monotonic()
    api = make_api(backend_factory=slow_engine)
    try:
        assert api.client.get("/health").status_code == 200
        assert time.monotonic() - started < 5
        assert called.wait(5), "connecting (and reaping) starts with the server, not on a sandbox request"
    finally:
        release.set()
