"""Helpers shared by the Docker-backed sandbox tests: Keystone's own local images (always present, no
pull), service plans, and a look at what a sandbox left on the engine."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import docker
import pytest
from docker.models.containers import Container
from docker.models.networks import Network

from polarity_keystone.sandbox import DockerBackend, ImageResolver, ServiceContainer
from polarity_keystone.sandbox import _labels as labels
from polarity_keystone.services import kind_of
from polarity_keystone.spec import Service
from tests.sandbox.host_listener import HostServer, serve_on_every_address
from tests.sandbox.outside_host import Outside, outside_namespace


@pytest.fixture(scope="session")
def base_image(resolver: ImageResolver) -> str:
    """Keystone's agent base image (python3, psql, redis-cli), built once if its context changed."""
    return resolver.local("base").ref


@pytest.fixture(scope="session")
def service_plan(resolver: ImageResolver) -> Callable[[Service], ServiceContainer]:
    """A plan running a Postgres/Redis spec service on Keystone's local image, like the engine does
    when the canonical image cannot be pulled."""

    def make(service: Service) -> ServiceContainer:
        kind = kind_of(service)
        image = resolver.local(kind.local_image).ref if kind.local_image else str(service.image)
        return kind.container(service, image, local_image=True)

    return make


@pytest.fixture
def run_id() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@dataclass
class Leftovers:
    containers: list[Container]
    networks: list[Network]

    def __bool__(self) -> bool:
        return bool(self.containers or self.networks)


def leftovers(client: docker.DockerClient, label: str, value: str) -> Leftovers:
    """Every container (running or not) and network carrying `label=value`."""
    selector = {"label": f"{label}={value}"}
    containers = client.containers.list(all=True, filters=selector, ignore_removed=True)
    return Leftovers(containers, client.networks.list(filters=selector))


@pytest.fixture(scope="session")
def of_run() -> Callable[[docker.DockerClient, str], Leftovers]:
    return lambda client, run: leftovers(client, labels.RUN, run)


@pytest.fixture(scope="session")
def of_sandbox() -> Callable[[docker.DockerClient, str], Leftovers]:
    return lambda client, sandbox_id: leftovers(client, labels.SANDBOX, sandbox_id)


# --- a host "outside" the machine ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outside]:
    with outside_namespace(tmp_path_factory.mktemp("outside")) as host:
        yield host


@pytest.fixture(scope="session")
def outside_backend(backend: DockerBackend, outside: Outside) -> DockerBackend:
    """The session's engine, with gateways that resolve the `outside` names."""
    return DockerBackend(backend.client, owner=backend.owner, gateway_hosts=outside.names)


@pytest.fixture(scope="session")
def gateway_image(resolver: ImageResolver) -> str:
    return resolver.local("gateway").ref


@pytest.fixture(scope="module")
def host_server() -> Iterator[HostServer]:
    """An HTTP server on every address of the machine running Docker."""
    server = serve_on_every_address()
    yield server
    server.shutdown()
    server.server_close()
