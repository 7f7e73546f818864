"""A real Ray cluster on this machine for the `--executor ray` tests: a head that offers no sandbox slot
and two worker nodes, each with its own Docker engine (see tests/cluster/nodes.py), and
`ks serve --executor ray` as the cluster's driver."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from polarity_keystone.server import create_api_key
from polarity_keystone.store import ProjectRecord, open_store
from tests.cluster.nodes import NodeEngine, RayNodes, start_cluster, start_engines
from tests.ks_serve import ServeProcess, start_ks_serve


@pytest.fixture(scope="package")
def node_engines() -> Iterator[list[NodeEngine]]:
    engines = start_engines(2)
    yield engines
    for engine in engines:
        engine.stop()


@pytest.fixture(scope="package")
def ray_nodes(node_engines: list[NodeEngine]) -> Iterator[RayNodes]:
    cluster = start_cluster()
    nodes = RayNodes(cluster, node_engines, {}, {})
    try:
        for engine in node_engines:
            nodes.add_worker(engine)
        cluster.wait_for_nodes()
        yield nodes
    finally:
        cluster.shutdown()


def serve_on(ray_nodes: RayNodes, store_url: str, workdir: Path) -> ServeProcess:
    """`ks serve --executor ray` on the cluster, answering on all interfaces (agents reach it there).
    Its data directory and temporary files (uploaded specs, agent code, git clones) are its own, as on
    a machine of its own: a tmpfs in a mount namespace of its own over `workdir/server-files`, where the
    nodes see an empty directory, so they have what replicas read only from what the server sends."""
    hidden = workdir / "server-files"
    hidden.mkdir()
    private = f'mount -t tmpfs tmpfs {hidden} && mkdir {hidden}/data {hidden}/tmp && exec "$@"'
    return start_ks_serve(
        store_url,
        workdir,
        *("--host", "0.0.0.0", "--warm-pool", "0", "--data-dir", str(hidden / "data")),
        *("--executor", "ray", "--ray-address", ray_nodes.cluster.address),
        timeout=120,
        wrapper=["unshare", "--mount", "--propagation", "private", "sh", "-c", private, "sh"],
        env={"TMPDIR": str(hidden / "tmp")},
    )


@dataclass
class RayServer:
    serve: ServeProcess
    api_key: str
    store_url: str


@pytest.fixture(scope="package")
def ray_server(ray_nodes: RayNodes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayServer]:
    workdir = tmp_path_factory.mktemp("ray-server")
    store_url = f"sqlite://{workdir / 'keystone.db'}"
    store = open_store(store_url)
    try:
        api_key, _ = create_api_key(store, "ray tests")
        store.add_project(ProjectRecord("prj_other", "other", datetime.now(UTC)))
    finally:
        store.close()
    serve = serve_on(ray_nodes, store_url, workdir)
    yield RayServer(serve, api_key, store_url)
    assert serve.stop() == 0, serve.log()
