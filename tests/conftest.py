"""Shared fixtures. Docker-backed tests need an engine (`scripts/bootstrap` starts one); in CI they
run for real, and a missing engine is a failure, never a skip."""

from __future__ import annotations

import secrets
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from docker.models.containers import Container
from psycopg import sql

from polarity_keystone.engine import PreparedSpec, RunOptions, prepare, run_experiment
from polarity_keystone.results import RunResults
from polarity_keystone.sandbox import DockerBackend, ImageResolver
from polarity_keystone.sandbox import _labels as labels
from polarity_keystone.spec import load_spec
from tests.examples.shipped_examples import EXAMPLES, RunSpec
from tests.waiting import wait_until


@pytest.fixture(scope="session")
def backend() -> Iterator[DockerBackend]:
    backend = DockerBackend()
    yield backend
    backend.reap()


@pytest.fixture(scope="session")
def resolver(backend: DockerBackend) -> ImageResolver:
    return ImageResolver(backend.client)


WriteSpec = Callable[..., Path]


@pytest.fixture
def write_spec(tmp_path: Path) -> WriteSpec:
    """Write a spec (and any side files, e.g. agent scripts) into a temp dir; returns the spec path."""

    def write(yaml_text: str, files: dict[str, str] | None = None, name: str = "spec.yaml") -> Path:
        for relative, content in (files or {}).items():
            target = tmp_path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(content))
        path = tmp_path / name
        path.write_text(textwrap.dedent(yaml_text))
        return path

    return write


@pytest.fixture
def prepared_from(resolver: ImageResolver, write_spec: WriteSpec) -> Callable[..., PreparedSpec]:
    def make(yaml_text: str, files: dict[str, str] | None = None) -> PreparedSpec:
        return prepare(load_spec(write_spec(yaml_text, files)), resolver)

    return make


@pytest.fixture(scope="session")
def example(resolver: ImageResolver) -> Callable[[str], PreparedSpec]:
    """A shipped example, prepared: example("hello-world/hello.yaml")."""

    def make(relative: str) -> PreparedSpec:
        return prepare(load_spec(EXAMPLES / relative), resolver)

    return make


@pytest.fixture(scope="session")
def run(backend: DockerBackend) -> RunSpec:
    """run_experiment with small defaults: run(prepared, replicas=2, seed=7)."""

    def execute(prepared: PreparedSpec, **options: Any) -> RunResults:
        options.setdefault("concurrency", 4)
        return run_experiment(prepared, backend, RunOptions(**options))

    return execute


POSTGRES_READY_TIMEOUT_S = 60


@pytest.fixture(scope="session")
def postgres_url(backend: DockerBackend, resolver: ImageResolver) -> Iterator[str]:
    """A real Postgres (Keystone's local image) for the session, published on a random port of
    127.0.0.1: `postgresql://keystone:<password>@127.0.0.1:<port>/keystone`. Labelled like a sandbox of
    this process, so the reaper removes it if the session crashes."""
    name = f"store-{secrets.token_hex(4)}"
    password = secrets.token_hex(8)
    backend.hold_lease()
    container = backend.client.containers.run(
        resolver.local("postgres").ref,
        detach=True,
        environment={"POSTGRES_USER": "keystone", "POSTGRES_PASSWORD": password, "POSTGRES_DB": "keystone"},
        ports={"5432/tcp": ("127.0.0.1", None)},
        labels={
            **labels.sandbox_labels(name, f"test-{name}", "", 3 * 3600, backend.owner),
            labels.ROLE: "test-store",
        },
    )
    try:
        yield _wait_for_postgres(container, password)
    finally:
        container.remove(force=True, v=True)


def _wait_for_postgres(container: Container, password: str) -> str:
    """The URL of the container's Postgres once it accepts connections (the entrypoint's ready marker
    comes before it listens on TCP, so only a real connection tells)."""

    def accepting() -> str | None:
        container.reload()
        if container.status in ("exited", "dead"):
            raise RuntimeError(
                f"the test Postgres exited: {container.logs().decode(errors='replace')[-2000:]}"
            )
        bindings = container.ports.get("5432/tcp")
        if not bindings:
            return None
        url = f"postgresql://keystone:{password}@127.0.0.1:{bindings[0]['HostPort']}/keystone"
        try:
            psycopg.connect(url, connect_timeout=2).close()
        except psycopg.OperationalError:
            return None
        return url

    return wait_until(accepting, POSTGRES_READY_TIMEOUT_S, "the test Postgres accepting connections", 0.1)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.docker)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store for one test, once with SQLite (a temp file) and once with Postgres (a new
    database on the session's server, dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'keystone.db'}"
        return
    server_url: str = request.getfixturevalue("postgres_url")
    database = f"test_{secrets.token_hex(6)}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    yield f"{server_url.rsplit('/', 1)[0]}/{database}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database)))
