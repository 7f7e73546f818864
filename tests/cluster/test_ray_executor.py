"""`ks serve --executor ray`: replicas run as Ray tasks on the worker nodes, each in a sandbox on its own
node's Docker engine; results come back into the store as with the local executor, recording the node
each replica ran on; agents on every node reach the server and what they report is scored there."""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path

import pytest

from polarity_keystone import Keystone
from tests.cluster.conftest import RayServer
from tests.cluster.nodes import RayNodes
from tests.engine.test_service_reset import REPORTER
from tests.waiting import wait_until

pytestmark = pytest.mark.docker

SPREAD_SPEC = """
version: 1
id: spread
base: ubuntu:24.04
task: {prompt: "report, then write the file"}
agent: {type: cli, path: agent, command: "python3 /opt/agent/report.py && echo done > done.txt"}
setup: {packages: [python3]}
invariants:
  wrote: {check: {type: file_exists, path: done.txt}}
"""


def test_a_40_replica_run_spreads_over_both_workers_and_scores_what_agents_reported(
    ray_server: RayServer, ray_nodes: RayNodes, tmp_path: Path
) -> None:
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "report.py").write_text(REPORTER)
    with Keystone(api_key=ray_server.api_key, base_url=ray_server.serve.url) as ks:
        ks.specs.create(SPREAD_SPEC, source_dir=tmp_path)
        experiment = ks.experiments.create("spread", "spread", replicas=40, concurrency=8)
        results = ks.experiments.run_and_wait(experiment.id, timeout=600)
        replicas = results.scenarios[0].replicas
        first_trace = [event.tool for event in ks.sandboxes.get_trace(replicas[0].sandbox_id).events]
        sandbox = ks.sandboxes.get(replicas[-1].sandbox_id)

    assert [r.status for r in replicas] == ["pass"] * 40, [(r.replica, r.error) for r in replicas if r.error]
    per_node = Counter(r.node for r in replicas)
    assert set(per_node) == set(ray_nodes.workers), per_node  # both workers, never the head
    assert min(per_node.values()) >= 5, per_node
    assert [r.tool_calls for r in replicas] == [1] * 40, "each agent's reported trace was scored on its node"
    assert first_trace == ["replica-0"]
    assert len({r.sandbox_id for r in replicas}) == 40
    assert sandbox.state == "destroyed"
    left = lambda: any(engine.sandbox_containers() for engine in ray_nodes.engines)  # noqa: E731
    wait_until(lambda: not left(), 60, "every sandbox removed")


def test_each_node_loads_the_images_it_lacks_from_the_image_source(ray_nodes: RayNodes) -> None:
    """After the run above, both engines hold the spec's agent image, with the id the server's has."""
    import docker

    main = docker.from_env()
    agent_images = {image.id for image in main.images.list(filters={"reference": "keystone-setup"})}
    for engine in ray_nodes.engines:
        with contextlib.closing(engine.client()) as client:
            loaded = {image.id for image in client.images.list(filters={"reference": "keystone-setup"})}
        assert loaded and loaded <= agent_images, engine.name
