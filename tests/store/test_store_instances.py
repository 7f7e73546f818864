"""Server instances sharing a store: what an instance queued or booted is left alone while its lease runs,
and ended by exactly one sweeper once it has expired. On SQLite and a real Postgres (`store_url`)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from polarity_keystone.store import ExperimentRecord, SandboxRecord, Store, open_store
from tests.store.store_helpers import MovableClock

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def experiment(
    experiment_id: str, status: str = "running", instance: str | None = "a", minute: int = 0
) -> ExperimentRecord:
    return ExperimentRecord(
        id=experiment_id,
        name=experiment_id,
        spec_id="refunds",
        spec_version=1,
        status=status,  # type: ignore[arg-type]
        created_at=T0 + timedelta(minutes=minute),
        owner="key-1",
        instance_id=instance,
    )


def sandbox(sandbox_id: str, state: str = "ready", instance: str | None = "a") -> SandboxRecord:
    return SandboxRecord(
        sandbox_id,
        "refunds",
        state,
        "key-1",
        T0,
        None,
        instance_id=instance,  # type: ignore[arg-type]
    )


def interrupted(store: Store) -> list[str]:
    return [record.id for record in store.interrupt_abandoned_experiments()]


def test_an_instance_keeps_its_experiments_while_it_renews_its_lease(
    store: Store, clock: MovableClock
) -> None:
    store.renew_instance("a", LEASE)
    store.add_experiment(experiment("mine"))
    for _ in range(4):  # 80 s in all, past the first lease: the renewals carry it
        clock.advance(timedelta(seconds=20))
        assert interrupted(store) == []
        store.renew_instance("a", LEASE)

    assert store.get_experiment("mine").status == "running"


def test_once_its_lease_expires_its_queued_and_running_experiments_are_interrupted_once(
    store: Store, clock: MovableClock
) -> None:
    store.renew_instance("a", LEASE)
    store.renew_instance("b", LEASE)
    for minute, (experiment_id, status, instance) in enumerate(
        [
            ("queued", "queued", "a"),
            ("running", "running", "a"),
            ("created", "created", None),
            ("completed", "completed", "a"),
            ("failed", "failed", "a"),
            ("cancelled", "cancelled", None),
            ("of-b", "running", "b"),
        ]
    ):
        store.add_experiment(experiment(experiment_id, status, instance, minute))

    clock.advance(LEASE - timedelta(seconds=1))
    assert interrupted(store) == []
    store.renew_instance("b", LEASE)
    clock.advance(timedelta(seconds=2))

    assert interrupted(store) == ["queued", "running"]
    assert interrupted(store) == []
    statuses = {
        record.id: record.status for record in store.list_experiments("default", cursor=None, limit=9).items
    }
    assert statuses == {
        "queued": "interrupted",
        "running": "interrupted",
        "created": "created",
        "completed": "completed",
        "failed": "failed",
        "cancelled": "cancelled",
        "of-b": "running",
    }
    assert store.get_experiment("running").instance_id == "a"  # who ran it stays on the record


def test_an_experiment_of_no_instance_or_of_one_that_ended_is_abandoned_at_once(store: Store) -> None:
    store.renew_instance("a", LEASE)
    store.add_experiment(experiment("before-instances", instance=None))
    store.add_experiment(experiment("of-a", minute=1))
    store.add_experiment(experiment("of-a-stranger", instance="never-seen", minute=2))
    assert interrupted(store) == ["before-instances", "of-a-stranger"]

    store.end_instance("a")
    assert interrupted(store) == ["of-a"]


def test_queueing_an_experiment_claims_it_for_the_instance(store: Store, clock: MovableClock) -> None:
    store.renew_instance("b", LEASE)
    store.add_experiment(experiment("e1", "created", instance=None))
    queued = store.transition_experiment("e1", ("created",), "queued", instance_id="b")
    assert queued is not None and queued.instance_id == "b"
    assert interrupted(store) == []

    clock.advance(LEASE + timedelta(seconds=1))
    assert interrupted(store) == ["e1"]


def test_sandboxes_up_are_destroyed_once_their_instance_is_gone(store: Store, clock: MovableClock) -> None:
    store.renew_instance("a", LEASE)
    store.renew_instance("b", LEASE)
    for sandbox_id, state, instance in [
        ("creating", "creating", "a"),
        ("ready", "ready", "a"),
        ("running", "running", "a"),
        ("failed", "error", "a"),
        ("of-b", "ready", "b"),
        ("before-instances", "ready", None),
    ]:
        store.put_sandbox(sandbox(sandbox_id, state, instance))

    assert [record.id for record in store.destroy_abandoned_sandboxes()] == ["before-instances"]
    clock.advance(timedelta(seconds=20))
    store.renew_instance("b", LEASE)
    clock.advance(timedelta(seconds=20))

    swept = store.destroy_abandoned_sandboxes()
    assert sorted(record.id for record in swept) == ["creating", "ready", "running"]
    assert {record.state for record in swept} == {"destroyed"}
    assert store.destroy_abandoned_sandboxes() == []
    states = {
        record.id: record.state for record in store.list_sandboxes(project_id=None, include_destroyed=True)
    }
    assert (states["failed"], states["of-b"]) == ("error", "ready")


# -- several sweepers on one Postgres

ON_POSTGRES = pytest.mark.parametrize(
    "store_url", [pytest.param("postgres", marks=pytest.mark.docker)], indirect=True
)


def _stores(store_url: str, count: int) -> list[Store]:
    return [open_store(store_url) for _ in range(count)]


@ON_POSTGRES
def test_concurrent_sweepers_interrupt_each_expired_experiment_exactly_once(store_url: str) -> None:
    sweepers = _stores(store_url, 4)
    try:
        first = sweepers[0]
        first.renew_instance("live", LEASE)
        for index in range(60):
            first.add_experiment(experiment(f"dead-{index:02}", instance="dead", minute=index))
        first.add_experiment(experiment("live-1", instance="live", minute=99))
        barrier = threading.Barrier(len(sweepers))
        taken: list[list[str]] = [[] for _ in sweepers]

        def sweep(index: int) -> None:
            barrier.wait()
            for _ in range(5):
                taken[index] += interrupted(sweepers[index])

        threads = [threading.Thread(target=sweep, args=(index,)) for index in range(len(sweepers))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        every = [experiment_id for ids in taken for experiment_id in ids]
        assert sorted(every) == [f"dead-{index:02}" for index in range(60)]  # each once, by one sweeper
        assert first.get_experiment("live-1").status == "running"
    finally:
        for store in sweepers:
            store.close()


@ON_POSTGRES
def test_a_sweeper_skips_an_experiment_another_holds_instead_of_waiting(store_url: str) -> None:
    [store] = _stores(store_url, 1)
    try:
        store.add_experiment(experiment("held", instance="dead"))
        store.add_experiment(experiment("free", instance="dead", minute=1))
        with psycopg.connect(store_url) as other:  # a transaction, as another sweeper's, holding one row
            other.execute("SELECT id FROM experiments WHERE id = 'held' FOR UPDATE")
            assert interrupted(store) == ["free"]
        assert interrupted(store) == ["held"]
    finally:
        store.close()
