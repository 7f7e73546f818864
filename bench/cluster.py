"""Replicas per minute on a Ray cluster with 1 and 2 worker nodes, beside this machine's engine alone,
and what the cluster adds to each replica: prints figures, asserts nothing.

    python bench/cluster.py [--replicas 40] [--concurrency 8] [--slots 4]

Starts, on this machine, two Docker engines of their own (as tests/cluster does) and a Ray cluster: a
head offering no sandbox slot and worker nodes offering `--slots` each. Runs `--replicas` replicas of
a small spec (a bare sandbox; the agent writes a file, a check reads it) through the engine's
`run_experiment`:
  local     on this machine's main engine (the `local` executor);
  ray x1    through the `ray` executor with one worker node;
  ray x2    with two.
Each executor runs once untimed first, so every node has the images it loads and Ray its workers.
Scheduling overhead per replica = the time the server waits for a replica's result minus the replica's
own wall time on its node (boot, agent, checks, teardown): Ray's task placement, the node actor's call,
moving the spec and the result. Everything started is removed at the end, also on errors.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.cluster.nodes: the engines and cluster the tests start

import ray  # noqa: E402

from polarity_keystone.cluster import ClusterReplicas, RanOnNode, RayCluster  # noqa: E402
from polarity_keystone.engine import PreparedSpec, ReplicaJob, RunOptions, prepare, run_experiment  # noqa: E402
from polarity_keystone.results import ReplicaResult  # noqa: E402
from polarity_keystone.sandbox import DockerBackend, ImageResolver  # noqa: E402
from polarity_keystone.spec import load_spec  # noqa: E402
from tests.cluster.nodes import RayNodes, start_cluster, start_engines  # noqa: E402

SPEC = """
version: 1
id: bench-cluster
base: ubuntu:24.04
task: {prompt: "write the file"}
agent: {type: cli, command: "echo done > done.txt"}
invariants:
  wrote: {check: {type: file_exists, path: done.txt}}
"""


class Issuer:
    """Sandbox ids for the replicas, as a server issues them (no server here: no token)."""

    def __init__(self) -> None:
        self.count = 0

    def issue(self, spec_id: str) -> tuple[str, dict[str, str]]:
        self.count += 1
        return f"sb-bench-{self.count:05d}", {}

    def ran(self, sandbox_id: str, ran: RanOnNode) -> None:
        pass

    def lost(self, sandbox_id: str, reason: str) -> None:
        print(f"  lost {sandbox_id}: {reason}")


class Timed:
    """The cluster's executor, timing each replica from hand-over to result."""

    def __init__(self, inner: ClusterReplicas) -> None:
        self.inner = inner
        self.overheads_ms: list[float] = []

    def run(self, prepared: PreparedSpec, job: ReplicaJob) -> ReplicaResult:
        started = time.perf_counter()
        result = self.inner.run(prepared, job)
        self.overheads_ms.append((time.perf_counter() - started) * 1000 - result.wall_ms)
        return result


def per_minute(
    prepared: PreparedSpec, backend: DockerBackend, replicas: int, concurrency: int, executor: Timed | None
) -> float:
    options = RunOptions(replicas=replicas, concurrency=concurrency, executor=executor)
    started = time.perf_counter()
    results = run_experiment(prepared, backend, options)
    seconds = time.perf_counter() - started
    for replica in results.scenarios[0].replicas:
        if replica.status != "pass":
            print(f"  replica {replica.replica}: {replica.status}: {replica.error or replica.reasons}")
    return replicas / seconds * 60


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replicas", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8, help="replicas at once on the local engine")
    parser.add_argument("--slots", type=int, default=4, help="sandbox slots per worker node")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ks-bench-cluster-"))
    (workdir / "spec.yaml").write_text(SPEC)
    backend = DockerBackend()
    prepared = prepare(load_spec(workdir / "spec.yaml"), ImageResolver(backend.client))
    rows: list[tuple[str, int, float, list[float]]] = []
    per_minute(prepared, backend, args.replicas, args.concurrency, None)  # warm: the main engine's caches
    local = per_minute(prepared, backend, args.replicas, args.concurrency, None)
    rows.append(("local (this engine)", args.concurrency, local, []))

    engines = start_engines(2)
    cluster = start_cluster()
    nodes = RayNodes(cluster, engines, {}, {})
    try:
        nodes.add_worker(engines[0], slots=args.slots)
        cluster.wait_for_nodes()
        connected = RayCluster(cluster.address, None)
        for workers, add in ((1, None), (2, engines[1])):
            if add is not None:
                nodes.add_worker(add, slots=args.slots)
                cluster.wait_for_nodes()
            slots = workers * args.slots  # as many replicas at once as the cluster has slots: no queueing
            warm = Timed(connected.replicas(Issuer()))  # the nodes load images, Ray starts task workers
            per_minute(prepared, backend, args.replicas, slots, warm)
            # Also at one worker's load with two workers: the overhead at equal load on this machine.
            for at_once in sorted({args.slots, slots}):
                timed = Timed(connected.replicas(Issuer()))
                rate = per_minute(prepared, backend, args.replicas, at_once, timed)
                rows.append((f"ray, {workers} worker(s)", at_once, rate, timed.overheads_ms))
        connected.close()
    finally:
        ray.shutdown()
        cluster.shutdown()
        for engine in engines:
            engine.stop()
        backend.reap()

    print(f"\n{args.replicas} replicas of a bare-sandbox spec; {args.slots} sandbox slots per worker node")
    print(f"{'executor':<22}{'at once':>8}{'replicas/min':>14}{'overhead/replica ms (median, p95)':>36}")
    for label, concurrency, rate, overheads in rows:
        spread = ""
        if overheads:
            ordered = sorted(overheads)
            p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
            spread = f"{statistics.median(ordered):.1f}, {p95:.1f}"
        print(f"{label:<22}{concurrency:>8}{rate:>14.1f}{spread:>36}")


if __name__ == "__main__":
    main()
