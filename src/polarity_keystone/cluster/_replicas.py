"""The server's side of a cluster: a Ray driver that sends each replica to a node and takes its result.

A replica whose node is lost under it (the node died, its actor or worker crashed) runs once more
(Ray does not place it on a node it knows is dead), in a new sandbox with a new identity; lost again, it
is an `error` result saying why. A replica that finished is stored by the server the moment its result
arrives, so a node lost later takes nothing finished with it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

import ray
import ray.exceptions

from ..engine import PreparedSpec, ReplicaJob, unrun_replica
from ..results import ReplicaResult
from ..sandbox import SandboxError
from ._files import ShippedSpec, ship
from ._node import NAMESPACE, NODE_ACTOR_PREFIX, SANDBOX_RESOURCE, RanOnNode, replica_task

log = logging.getLogger("polarity_keystone.cluster")

ATTEMPTS = 2
"""Runs of a replica whose node was lost: the first, and one retry."""
REASON_LIMIT = 500
"""Characters of a lost node's error kept in the replica's reason."""
_LOST = (
    ray.exceptions.NodeDiedError,
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.RayActorError,
    ray.exceptions.ObjectLostError,
    ray.exceptions.LocalRayletDiedError,
)
"""What Ray raises when the node, worker or actor running a replica went away under it."""


class SandboxIssuer(Protocol):
    """The server's records of the sandboxes its replicas run in, wherever they run."""

    def issue(self, spec_id: str) -> tuple[str, dict[str, str]]:
        """Record a sandbox about to boot; its id and the identity (token) its agent runs as."""
        ...

    def ran(self, sandbox_id: str, ran: RanOnNode) -> None:
        """The replica in this sandbox ended on a node (the sandbox is gone)."""
        ...

    def lost(self, sandbox_id: str, reason: str) -> None:
        """The node running this sandbox was lost."""
        ...


class RayCluster:
    """A server's connection to a Ray cluster (`ks serve --executor ray`)."""

    def __init__(self, address: str | None, store_url: str | None) -> None:
        """Connects as a driver (`address`: `auto`, `HOST:PORT` or `ray://HOST:PORT`; None starts a
        one-machine cluster); `store_url` is the store nodes read agents' reported traces from."""
        self._store_url = store_url
        try:
            ray.init(
                address=address,
                namespace=NAMESPACE,
                ignore_reinit_error=True,
                log_to_driver=False,
                logging_level=logging.WARNING,
                configure_logging=False,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise SandboxError(f"cannot connect to the Ray cluster at {address}: {exc}") from exc
        # SPREAD: replicas go to the nodes with free slots in turn, not first to fill one node (Ray's
        # default packs a node up to half its capacity), so a run uses every engine it can.
        self._task = ray.remote(replica_task).options(
            num_cpus=0, resources={SANDBOX_RESOURCE: 1}, max_retries=0, scheduling_strategy="SPREAD"
        )

    def slots(self) -> int:
        """Sandbox slots the cluster's live nodes offer together."""
        return int(ray.cluster_resources().get(SANDBOX_RESOURCE, 0))  # type: ignore[no-untyped-call]

    def replicas(self, issuer: SandboxIssuer) -> ClusterReplicas:
        """The executor of one experiment's replicas; SandboxError when no node offers a sandbox slot."""
        if self.slots() == 0:
            raise SandboxError(
                f"no node of the Ray cluster offers {SANDBOX_RESOURCE!r}: start workers with "
                f"`ray start --address HEAD --resources '{{\"{SANDBOX_RESOURCE}\": 4}}'`"
            )
        return ClusterReplicas(self._task, self._store_url, issuer)

    def close(self) -> None:
        ray.shutdown()


class ClusterReplicas:
    """Runs one experiment's replicas on the cluster (the engine's ReplicaExecutor)."""

    def __init__(self, task: Any, store_url: str | None, issuer: SandboxIssuer) -> None:
        self._task = task
        self._store_url = store_url
        self._issuer = issuer
        self._prepared: tuple[PreparedSpec, ShippedSpec] | None = None
        self._running: dict[str, Any] = {}
        """sandbox id -> the task running the replica in it."""
        self._lock = threading.Lock()
        self._stopped = False

    def run(self, prepared: PreparedSpec, job: ReplicaJob) -> ReplicaResult:
        reasons: list[str] = []
        try:
            shipped = self._shipped(prepared)
        except SandboxError as exc:
            return unrun_replica(prepared, job, str(exc))
        for _ in range(ATTEMPTS):
            ran, retry = self._attempt(prepared, shipped, job, reasons)
            if ran is not None:
                return ran.result
            if not retry or self._stopped:
                break
        said = "; then ".join(reasons)
        return unrun_replica(prepared, job, f"the replica did not run to its end on the cluster: {said}")

    def _attempt(
        self, prepared: PreparedSpec, shipped: ShippedSpec, job: ReplicaJob, reasons: list[str]
    ) -> tuple[RanOnNode | None, bool]:
        """One run of the replica on a node: what it sent back, or None and whether to run it again."""
        sandbox_id, identity = self._issuer.issue(prepared.spec.id)
        with self._lock:
            if self._stopped:
                self._issuer.lost(sandbox_id, "the server is stopping")
                reasons.append("the server is stopping")
                return None, False
            task = self._task.remote(shipped, job, sandbox_id, identity, self._store_url)
            self._running[sandbox_id] = task
        try:
            ran: RanOnNode = ray.get(task)
        except ray.exceptions.RayError as exc:
            lost = isinstance(exc, _LOST)
            reason = ("its node was lost: " if lost else "") + _reason(exc)
            log.warning("replica %s/%d in %s: %s", job.scenario_id, job.replica, sandbox_id, reason)
            self._issuer.lost(sandbox_id, reason)
            reasons.append(reason)
            return None, lost  # anything else came from Keystone's code there: it fails the same way again
        finally:
            with self._lock:
                self._running.pop(sandbox_id, None)
        self._issuer.ran(sandbox_id, ran)
        return ran, False

    def _shipped(self, prepared: PreparedSpec) -> ShippedSpec:
        """The spec and its directories in Ray's object store, put there once per experiment (nodes
        fetch them once each)."""
        with self._lock:
            if self._prepared is None or self._prepared[0] is not prepared:
                self._prepared = (prepared, ship(prepared))
            return self._prepared[1]

    def stop(self) -> None:
        """End the replicas running now (the server is stopping): their sandboxes are destroyed."""
        with self._lock:
            self._stopped = True
            running = dict(self._running)
        if not running:
            return
        for name in ray.util.list_named_actors():
            if name.startswith(NODE_ACTOR_PREFIX):
                ray.get_actor(name, namespace=NAMESPACE).stop.remote(list(running))
        for task in running.values():
            ray.cancel(task, force=True)


def _reason(exc: BaseException) -> str:
    """The first line of what Ray said, bounded."""
    text = str(exc).strip().splitlines()
    first = next((line for line in text if line.strip()), type(exc).__name__)
    return f"{type(exc).__name__}: {first}"[:REASON_LIMIT]
