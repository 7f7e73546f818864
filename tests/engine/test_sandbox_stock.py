"""Sandboxes kept between experiments (a server's warm pool): an experiment's sandboxes go to the stock
verified, the next experiment's replicas take them at once and still pass, the stock keeps them apart by
project, never holds more than its limits nor longer than its TTL, and leaves nothing behind."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from polarity_keystone.engine import (
    PreparedSpec,
    RunOptions,
    SandboxStock,
    StockLimits,
    plan_replica,
    run_experiment,
)
from polarity_keystone.sandbox import DockerBackend
from polarity_keystone.sandbox import _labels as labels
from tests.waiting import wait_until

pytestmark = pytest.mark.docker

REFUND = "refund-agent/refund.yaml"


def _ours(backend: DockerBackend) -> list[str]:
    """This process's sandbox containers and networks (not its reaper)."""
    selector = {"label": f"{labels.OWNER}={backend.owner}"}
    containers = backend.client.containers.list(all=True, filters=selector, ignore_removed=True)
    networks = backend.client.networks.list(filters=selector)
    return sorted(
        [c.name or "" for c in containers if c.labels.get(labels.ROLE) not in labels.PROCESS_ROLES]
        + [n.name or "" for n in networks]
    )


@pytest.fixture
def stock_of(backend: DockerBackend) -> Iterator[Callable[[StockLimits], SandboxStock]]:
    made: list[SandboxStock] = []

    def make(limits: StockLimits) -> SandboxStock:
        made.append(SandboxStock(lambda: backend, limits))
        return made[-1]

    yield make
    for stock in made:
        stock.close()


def _settled(stock: SandboxStock, count: int) -> None:
    """Wait for the renewals the stock took in to be kept."""
    wait_until(lambda: stock.count() == count, 120, f"{count} sandbox(es) kept")


def test_the_next_experiment_starts_in_kept_sandboxes_and_still_catches_nothing_wrongly(
    example: Callable[[str], PreparedSpec],
    backend: DockerBackend,
    stock_of: Callable[[StockLimits], SandboxStock],
) -> None:
    before = _ours(backend)
    stock = stock_of(StockLimits(per_plan=2, total=2))
    refund = example(REFUND)
    first = run_experiment(refund, backend, RunOptions(replicas=2, concurrency=2, stock=stock.shelf("a")))
    _settled(stock, 2)
    kept_ids = {c.labels[labels.SANDBOX] for c in _agents(backend)}

    second = run_experiment(refund, backend, RunOptions(replicas=2, concurrency=2, stock=stock.shelf("a")))

    assert [r.status for r in first.scenarios[0].replicas] == ["pass", "pass"]
    replicas = second.scenarios[0].replicas
    assert [(r.status, r.renewed) for r in replicas] == [("pass", True), ("pass", True)]
    assert {r.sandbox_id for r in replicas} == kept_ids, "the kept sandboxes served the next experiment"
    _settled(stock, 2)  # and went back, renewed again
    stock.close()
    assert stock.count() == 0
    assert _ours(backend) == before


def _agents(backend: DockerBackend) -> list[object]:
    selector = {"label": [f"{labels.OWNER}={backend.owner}", f"{labels.ROLE}=agent"]}
    return list(backend.client.containers.list(filters=selector, ignore_removed=True))


def test_a_kept_sandbox_is_never_handed_to_another_project(
    example: Callable[[str], PreparedSpec],
    backend: DockerBackend,
    stock_of: Callable[[StockLimits], SandboxStock],
) -> None:
    stock = stock_of(StockLimits(per_plan=1, total=1))
    refund = example(REFUND)
    run_experiment(refund, backend, RunOptions(replicas=1, stock=stock.shelf("a")))
    _settled(stock, 1)
    plan = plan_replica(refund, run_id="r", scenario_id=refund.spec.id, replica=0, seed=1, parameters={})

    assert stock.shelf("b").for_spec(refund).take(plan) is None
    taken = stock.shelf("a").for_spec(refund).take(plan)
    assert taken is not None and taken.renewals >= 1
    taken.sandbox.destroy()


def test_the_stock_holds_no_more_than_its_limits_and_no_longer_than_its_ttl(
    example: Callable[[str], PreparedSpec],
    backend: DockerBackend,
    stock_of: Callable[[StockLimits], SandboxStock],
) -> None:
    before = _ours(backend)
    stock = stock_of(StockLimits(per_plan=1, total=1, ttl_s=5))
    results = run_experiment(
        example(REFUND), backend, RunOptions(replicas=3, concurrency=3, stock=stock.shelf("a"))
    )
    assert [r.status for r in results.scenarios[0].replicas] == ["pass"] * 3
    _settled(stock, 1)
    assert len(_agents(backend)) == 1, "the sandboxes the stock had no room for were destroyed"

    wait_until(lambda: _ours(backend) == before, 60, "the kept sandbox destroyed after its TTL")
    assert stock.count() == 0


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="0 or more"):
        StockLimits(per_plan=-1)
    with pytest.raises(ValueError, match="more than 0 seconds"):
        StockLimits(ttl_s=0)
