"""A server killed mid-experiment loses no finished replica, and finds the experiment unfinished."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from polarity_keystone.store import open_store

WORKER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime

    from polarity_keystone.store import ExperimentRecord, ReplicaRecord, open_store

    store = open_store(sys.argv[1])
    store.add_experiment(ExperimentRecord("e1", "run", "refunds", 1, "created", datetime.now(UTC), "key-1"))
    store.transition_experiment("e1", ("created",), "running", started_at=datetime.now(UTC))
    index = 0
    while True:
        store.add_replica(ReplicaRecord("e1", "refund", index, {"passed": True}, datetime.now(UTC)))
        store.update_experiment("e1", progress={"done": index + 1})
        print(index, flush=True)  # only once the replica is committed
        index += 1
    """
)
ACKNOWLEDGED = 15


def test_replicas_committed_before_a_kill_survive_and_the_experiment_can_be_marked(store_url: str) -> None:
    worker = subprocess.Popen([sys.executable, "-c", WORKER, store_url], stdout=subprocess.PIPE, text=True)
    assert worker.stdout is not None
    try:
        acknowledged = [int(worker.stdout.readline()) for _ in range(ACKNOWLEDGED)]
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        worker.stdout.close()
    assert worker.returncode == -signal.SIGKILL

    store = open_store(store_url)
    try:
        stored = [replica.replica_index for replica in store.replicas("e1")]
        assert stored[:ACKNOWLEDGED] == acknowledged == list(range(ACKNOWLEDGED))
        assert stored == list(range(len(stored)))
        unfinished = store.get_experiment("e1")
        assert unfinished.status == "running"
        assert unfinished.progress["done"] >= ACKNOWLEDGED

        [interrupted] = store.interrupt_abandoned_experiments()  # it has no live server instance
        assert (interrupted.id, interrupted.status) == ("e1", "interrupted")
        assert store.interrupt_abandoned_experiments() == []
    finally:
        store.close()
