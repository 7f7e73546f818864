"""A worker node lost mid-run: the replicas it ran run once more on the other worker, nothing finished
is lost, its sandboxes do not outlive it, and a node back on the same engine starts clean.

Runs after the other cluster tests (it takes a worker away, then gives one back)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from polarity_keystone import Keystone
from polarity_keystone.sandbox import _labels as labels
from polarity_keystone.store import open_store
from tests.cluster.conftest import RayServer
from tests.cluster.nodes import RayNodes
from tests.waiting import wait_until

pytestmark = pytest.mark.docker

SLOW_SPEC = """
version: 1
id: slow
base: ubuntu:24.04
task: {prompt: "take your time, then write the file"}
agent: {type: cli, command: "sleep 6 && echo done > done.txt", timeout: 2m}
invariants:
  wrote: {check: {type: file_exists, path: done.txt}}
"""


def running_agents(ray_nodes: RayNodes, node_id: str) -> int:
    engine = ray_nodes.engine_of[node_id]
    with contextlib.closing(engine.client()) as client:
        selector = {"label": [f"{labels.SPEC}=slow", f"{labels.ROLE}=agent"]}
        return len(client.containers.list(filters=selector, ignore_removed=True))


def _lost_sandboxes(server: RayServer) -> list[str]:
    """The sandboxes of `slow` the server recorded as lost with their node, and why."""
    store = open_store(server.store_url)
    try:
        errored = [
            record.id
            for record in store.list_sandboxes(project_id=None, include_destroyed=True)
            if record.spec_id == "slow" and record.state == "error"
        ]
        reasons = [
            event.data.get("reason", "")
            for sandbox_id in errored
            for event in store.events_after(f"sandbox:{sandbox_id}", 0)
        ]
    finally:
        store.close()
    return [reason for reason in reasons if reason.startswith("its node was lost: ")]


def test_a_node_lost_mid_run_retries_its_replicas_elsewhere_and_leaves_nothing(
    ray_server: RayServer, ray_nodes: RayNodes, tmp_path: Path
) -> None:
    doomed, survivor = sorted(ray_nodes.workers)
    doomed_engine = ray_nodes.engine_of[doomed]
    with Keystone(api_key=ray_server.api_key, base_url=ray_server.serve.url) as ks:
        ks.specs.create(SLOW_SPEC, source_dir=tmp_path)
        experiment = ks.experiments.create("slow", "slow", replicas=8, concurrency=8)
        ks.experiments.run(experiment.id)
        wait_until(lambda: running_agents(ray_nodes, doomed) >= 2, 300, "replicas running on the doomed node")
        ray_nodes.kill(doomed)
        results = ks.experiments.wait(experiment.id, timeout=600)
        replicas = results.scenarios[0].replicas

    assert [r.status for r in replicas] == ["pass"] * 8, [(r.replica, r.error) for r in replicas if r.error]
    assert {r.node for r in replicas} <= {doomed, survivor}
    retried = [r for r in replicas if r.node == survivor]
    assert len(retried) >= 2
    assert len(_lost_sandboxes(ray_server)) >= 2
    wait_until(lambda: not doomed_engine.sandbox_containers(), 120, "the lost node's sandboxes removed")

    back = ray_nodes.add_worker(doomed_engine)
    with Keystone(api_key=ray_server.api_key, base_url=ray_server.serve.url) as ks:
        again = ks.experiments.create("slow again", "slow", replicas=8, concurrency=8)
        replicas = ks.experiments.run_and_wait(again.id, timeout=600).scenarios[0].replicas
    assert [r.status for r in replicas] == ["pass"] * 8, [(r.replica, r.error) for r in replicas if r.error]
    assert back in {r.node for r in replicas}, "the node back on its engine runs replicas again"
