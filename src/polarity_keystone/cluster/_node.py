"""What runs on a cluster node: one Keystone node actor per node, and the replica task.

A replica is a Ray task asking for one `keystone_sandbox` (a node offers as many as it runs sandboxes at
once), so Ray places replicas by capacity. The task hands the replica to its node's actor, which owns
that node's Docker engine (DOCKER_HOST of the node), the images loaded there, and the reaper: a
replica's sandbox lives as long as the actor's process, and an actor starting on a node (a new one, or
the node back after it was lost) first removes what an earlier one left there.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from typing import Any

import ray
import ray.exceptions
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..engine import PreparedSpec, ReplicaJob, ReportedTrace, run_replica
from ..results import ReplicaResult
from ..sandbox import BootEvent, DockerBackend, Sandbox, SandboxError, local_ref
from ..store import Store, open_store
from ._files import NodeFiles, ShippedSpec
from ._images import NodeImages

log = logging.getLogger("polarity_keystone.cluster")

NAMESPACE = "keystone"
"""The Ray namespace of Keystone's named node actors (and of a server's driver)."""
SANDBOX_RESOURCE = "keystone_sandbox"
"""The custom resource a node offers per sandbox slot; each replica task asks for one."""
NODE_ACTOR_PREFIX = "keystone-node-"
SPECS_KEPT = 16
"""Specs a node actor keeps decoded (of the experiments running on it)."""
_STOPPED_BEFORE_BOOT = "its server stopped it before it booted"
ACTOR_THREADS = 256
"""Calls a node actor serves at once: above any node's sandbox slots, so capacity is the resource's."""


@dataclass
class RanOnNode:
    """What a node sends back for a replica: its result, and what the server records of its sandbox."""

    result: ReplicaResult
    boot_events: list[BootEvent] = field(default_factory=list)
    described: dict[str, Any] = field(default_factory=dict)
    """The sandbox as `Sandbox.describe()` gave it once it booted (empty when it never booted)."""


def images_of(prepared: PreparedSpec) -> list[str]:
    """Every image a replica of `prepared` starts: the agent's, the services', the gateway, the reaper."""
    refs = [prepared.agent_image.ref, *(image.ref for image in prepared.service_images.values())]
    if prepared.gateway_image:
        refs.append(prepared.gateway_image)
    return [*refs, local_ref("reaper")]


class KeystoneNode:
    """The node actor (run as a Ray actor, one per node, named after the node)."""

    def __init__(self) -> None:
        self.node_id = ray.get_runtime_context().get_node_id()
        self._backend = DockerBackend()
        self._images = NodeImages(self._backend.client)
        self._images.ensure([local_ref("reaper")])
        removed = self._backend.reap()
        if removed:
            log.warning("node %s: removed %d sandbox(es) an earlier actor left", self.node_id, len(removed))
        self._backend.hold_lease()
        self._stores: dict[str, Store] = {}
        """Store URL -> the store, open: servers on other stores may share the cluster."""
        self._running: dict[str, Sandbox | None] = {}
        """Sandbox id -> its sandbox, None while it boots."""
        self._stopped: set[str] = set()
        """Sandboxes of `_running` their server stopped."""
        self._files = NodeFiles()
        self._specs: dict[str, PreparedSpec] = {}
        """Object ref -> the spec it holds, the latest SPECS_KEPT."""
        self._lock = threading.Lock()

    def run(
        self,
        spec: ShippedSpec,
        job: ReplicaJob,
        sandbox_id: str,
        identity: dict[str, str],
        store_url: str | None,
    ) -> RanOnNode:
        """Run one replica here in a sandbox with the id and identity (token) the server issued; `spec`
        holds the object refs of its PreparedSpec and of the directories it reads, `store_url` names
        its server's store."""
        with self._lock:
            self._running[sandbox_id] = None
        ran = RanOnNode(ReplicaResult(replica=job.replica, seed=job.seed, status="error"))

        def boot(plan: Any, on_boot: Any) -> Sandbox:
            self._images.ensure(images_of(prepared))
            self._refuse_if_stopped(sandbox_id)
            sandbox = self._backend.create(replace(plan.sandbox, sandbox_id=sandbox_id), on_boot)
            sandbox.exec_env = identity
            ran.described = sandbox.describe()
            with self._lock:
                stopped = sandbox_id in self._stopped
                self._running[sandbox_id] = sandbox
            if stopped:  # its server stopped while it booted: `stop` found no sandbox to destroy yet
                sandbox.destroy()
                raise SandboxError(_STOPPED_BEFORE_BOOT)
            return sandbox

        try:
            prepared = self._prepared(spec.spec)
            with self._files.held(spec.directories):
                ran.result = run_replica(
                    prepared,
                    boot,
                    job,
                    on_boot=ran.boot_events.append,
                    reported_trace=self._reported_trace(store_url),
                )
        finally:
            with self._lock:
                self._running.pop(sandbox_id, None)
                self._stopped.discard(sandbox_id)
        ran.result.node = self.node_id
        return ran

    def _refuse_if_stopped(self, sandbox_id: str) -> None:
        with self._lock:
            if sandbox_id in self._stopped:
                raise SandboxError(_STOPPED_BEFORE_BOOT)

    def _prepared(self, ref: Any) -> PreparedSpec:
        """The spec behind `ref`, fetched and decoded once while its experiment runs here."""
        key = ref.hex()
        with self._lock:
            prepared = self._specs.get(key)
        if prepared is None:
            prepared = ray.get(ref)
            with self._lock:
                self._specs[key] = prepared
                while len(self._specs) > SPECS_KEPT:
                    self._specs.pop(next(iter(self._specs)))
        return prepared

    def stop(self, sandbox_ids: list[str]) -> None:
        """Destroy these sandboxes if they run here (their server is stopping): their replicas end. One
        still booting is destroyed once it has booted."""
        with self._lock:
            here = [i for i in sandbox_ids if i in self._running]
            self._stopped.update(here)
            sandboxes = [sandbox for i in here if (sandbox := self._running[i]) is not None]
        for sandbox in sandboxes:
            sandbox.destroy()

    def _reported_trace(self, store_url: str | None) -> ReportedTrace | None:
        """The events agents reported to their server for their sandbox: read from its store."""
        if store_url is None:
            return None
        with self._lock:
            if store_url not in self._stores:
                self._stores[store_url] = open_store(store_url)
            return self._stores[store_url].trace_events


_actors: dict[str, Any] = {}
"""Node id -> its actor's handle, in this worker process: looked up once, not for every replica."""
_actors_lock = threading.Lock()


def node_actor(node_id: str) -> Any:
    """The node actor of `node_id`, started there on first use."""
    with _actors_lock:
        if node_id not in _actors:
            _actors[node_id] = (
                ray.remote(KeystoneNode)
                .options(
                    name=NODE_ACTOR_PREFIX + node_id,
                    namespace=NAMESPACE,
                    get_if_exists=True,
                    lifetime="detached",
                    num_cpus=0,
                    max_concurrency=ACTOR_THREADS,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
                )
                .remote()
            )
        return _actors[node_id]


def replica_task(
    prepared: ShippedSpec, job: ReplicaJob, sandbox_id: str, identity: dict[str, str], store_url: str | None
) -> RanOnNode:
    """The body of a replica's Ray task: hand it to this node's actor, holding the sandbox slot until it
    ends. `prepared` holds object refs, passed on as they are, so neither the task nor the actor's call
    fetches the spec or its files (the actor does, once per experiment)."""
    node_id = ray.get_runtime_context().get_node_id()
    try:
        call = node_actor(node_id).run.remote(prepared, job, sandbox_id, identity, store_url)
        ran: RanOnNode = ray.get(call)
    except ray.exceptions.RayActorError:
        with _actors_lock:  # a node actor that died is started again by the next replica
            _actors.pop(node_id, None)
        raise
    return ran
