"""Every shipped example gives the same verdict with `--executor ray` as on this machine's engine: the
same scenario status, and each invariant and forbidden rule the same way, for the same seed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from polarity_keystone import Keystone
from polarity_keystone.engine import PreparedSpec
from polarity_keystone.results import ScenarioResult
from tests.cluster.conftest import RayServer
from tests.cluster.nodes import RayNodes
from tests.examples.shipped_examples import EXAMPLES, RunSpec

pytestmark = pytest.mark.docker

SPECS = sorted(EXAMPLES.glob("*/*.yaml"))
SEED = 7
"""A seed on which flaky-agent answers right (as the example tests use)."""


def _verdict(scenario: ScenarioResult) -> tuple[str, dict[str, bool], dict[str, bool]]:
    (replica,) = scenario.replicas
    invariants = {check.name: check.passed for check in replica.invariants}
    forbidden = {check.rule: check.violated for check in replica.forbidden_checks}
    return scenario.status, invariants, forbidden


@pytest.mark.parametrize("spec", SPECS, ids=[path.relative_to(EXAMPLES).as_posix() for path in SPECS])
def test_the_example_gets_the_verdict_it_gets_locally(
    spec: Path,
    ray_server: RayServer,
    ray_nodes: RayNodes,
    example: Callable[[str], PreparedSpec],
    run: RunSpec,
) -> None:
    local = run(example(spec.relative_to(EXAMPLES).as_posix()), replicas=1, seed=SEED)
    with Keystone(api_key=ray_server.api_key, base_url=ray_server.serve.url) as ks:
        uploaded = ks.specs.create(path=spec)
        experiment = ks.experiments.create(spec.stem, uploaded.id, replicas=1, seed=SEED)
        remote = ks.experiments.run_and_wait(experiment.id, timeout=600)

    (on_cluster,) = remote.scenarios
    (here,) = local.scenarios
    assert on_cluster.replicas[0].node in ray_nodes.workers
    assert _verdict(on_cluster) == _verdict(here), (
        on_cluster.replicas[0].error or on_cluster.replicas[0].reasons
    )
