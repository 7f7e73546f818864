"""A ray-executor server stopped mid-experiment: the replicas it sent to the nodes end with their
sandboxes, the experiment ends `interrupted` keeping what finished, and nothing stays on any engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from polarity_keystone import Keystone
from polarity_keystone.store import open_store
from tests.cluster.conftest import RayServer, serve_on
from tests.cluster.nodes import RayNodes
from tests.cluster.test_ray_lost_node import SLOW_SPEC, running_agents
from tests.waiting import wait_until

pytestmark = pytest.mark.docker


def test_a_stopped_server_ends_its_replicas_on_the_nodes(
    ray_server: RayServer, ray_nodes: RayNodes, tmp_path: Path
) -> None:
    second = serve_on(ray_nodes, ray_server.store_url, tmp_path)
    try:
        with Keystone(api_key=ray_server.api_key, base_url=second.url) as ks:
            ks.specs.create(SLOW_SPEC, source_dir=tmp_path)
            experiment = ks.experiments.create("stopped", "slow", replicas=4, concurrency=4)
            ks.experiments.run(experiment.id)
            wait_until(
                lambda: sum(running_agents(ray_nodes, node) for node in ray_nodes.workers) >= 2,
                300,
                "replicas running on the nodes",
            )
    finally:
        assert second.stop() == 0, second.log()

    store = open_store(ray_server.store_url)
    try:
        record = store.get_experiment(experiment.id)
    finally:
        store.close()
    assert record.status == "interrupted", record.error
    wait_until(
        lambda: not any(engine.sandbox_containers() for engine in ray_nodes.engines),
        60,
        "the stopped server's sandboxes removed from every node",
    )
