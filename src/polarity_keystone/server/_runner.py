"""Experiments run on a worker pool inside the server process, through the engine.

`POST /v1/experiments/{id}/run` admits the experiment (a global and a per-key limit on experiments
queued or running; over either, 503 + Retry-After), moves it `created -> queued` atomically and returns;
a worker moves it to `running` and calls `engine.run_experiment` (for a run, `engine.replay` of its one
seed, so a run can be re-created exactly). Each replica is stored the moment it
finishes and announced on the experiment's event stream; the final RunResults go into the experiment.

Secrets sent with `POST /v1/experiments` are held in this process's memory until the run starts, and
are never written to the store, an event or a response. So an experiment whose server restarted between
create and run cannot run (409: create it again), and no server resumes an experiment another process
ran. An experiment is queued with this server's instance id; once that instance's lease has expired (see
`_instance`), any server on the store marks it `interrupted`, keeping the replicas that finished, and a
server that starts next to a live one leaves the live one's experiments alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..engine import (
    FingerprintMismatch,
    PreparedSpec,
    ReplicaExecutor,
    ReplicaJob,
    ReportedTrace,
    RunOptions,
    SandboxStock,
    aggregate_run,
    aggregate_scenario,
    replay,
    run_experiment,
    scenarios_of,
)
from ..results import INVALID_INPUT_PREFIX, ReplicaResult, RunResults
from ..sandbox import (
    BootEvent,
    BootListener,
    FixtureError,
    ImageError,
    ResetServices,
    Sandbox,
    SandboxBackend,
    SandboxError,
    SandboxPlan,
)
from ..secrets import Redactor, SecretError
from ..spec import LoadedSpec, SpecError
from ..store import ExperimentRecord, ReplicaRecord, Store
from ._agent_reach import agent_reach
from ._agents import AgentSnapshots
from ._engine import LazyEngine
from ._errors import AtCapacity, InvalidRequest, WrongState
from ._events import EventBus, experiment_stream
from ._results import planned_replicas
from ._sandbox_manager import SandboxManager, new_sandbox_id
from ._spec_sources import SpecSources
from ._webhooks import WebhookSender

if TYPE_CHECKING:
    from ..cluster import ClusterReplicas, RanOnNode, RayCluster

log = logging.getLogger("polarity_keystone.server")

RETRY_AFTER_S = 10
TERMINAL = ("completed", "failed", "cancelled", "interrupted")
RUN, REPLICA_SUITE = "run", "replica_suite"
"""`options["kind"]` of the experiments behind `/v1/runs` and `/v1/replicas` (the Keystone REST API's run
and replica-suite routes): a run is one replica with a known seed, a replica suite N replicas; anything
else is a plain experiment."""
COMPLETED_WEBHOOK = {RUN: "run.completed", REPLICA_SUITE: "replica.completed"}
"""The webhook event an ending experiment of each kind sends; a plain experiment's is EXPERIMENT_COMPLETED."""
EXPERIMENT_COMPLETED = "experiment.completed"


_COUNTED = {"pass": "passed", "fail": "failed"}
"""The progress count a replica's status adds to (anything else: errors)."""


class _Stopped(Exception):
    """The server is stopping; the experiment ends `interrupted`."""


def now() -> datetime:
    return datetime.now(UTC)


class _ReplicaSandboxes(SandboxBackend):
    """The real backend, plus what the server adds to each replica's sandbox: a record, a `ks_sb_` token
    in the agent's environment, and lifecycle events on the sandbox's stream."""

    def __init__(
        self,
        inner: SandboxBackend,
        manager: SandboxManager,
        experiment: ExperimentRecord,
        owner: str,
        base_url: str,
        redact: Redactor,
    ) -> None:
        self._inner = inner
        self._redact = redact
        self._manager = manager
        self._experiment_id = experiment.id
        self._project_id = experiment.project_id
        self._owner = owner
        self._base_url = base_url
        self._live: dict[str, Sandbox] = {}
        self._lock = threading.Lock()
        self.remote: ClusterReplicas | None = None
        """The replicas' executor when they run on a cluster's nodes, not on `inner`."""

    def create(self, plan: SandboxPlan, on_event: BootListener | None = None) -> Sandbox:
        return self._admitted(plan, lambda admitted: self._inner.create(admitted, on_event))

    def renew(
        self, sandbox: Sandbox, plan: SandboxPlan, reset: ResetServices, on_event: BootListener | None = None
    ) -> Sandbox:
        """A renewed sandbox is a new sandbox to the server: its own id, record and token."""
        return self._admitted(plan, lambda admitted: self._inner.renew(sandbox, admitted, reset, on_event))

    def adopt(self, sandbox: Sandbox, plan: SandboxPlan) -> Sandbox:
        """A sandbox from the server's warm pool: recorded and given a token as it is handed over."""
        identity = self._admit(sandbox.id, plan.spec_id)
        return self._handed_over(sandbox, identity)

    def _admitted(self, plan: SandboxPlan, start: Callable[[SandboxPlan], Sandbox]) -> Sandbox:
        sandbox_id = new_sandbox_id()
        identity = self._admit(sandbox_id, plan.spec_id)
        try:
            sandbox = start(replace(plan, sandbox_id=sandbox_id))
        except BaseException as exc:
            reason = self._redact(str(exc)) if isinstance(exc, SandboxError) else ""
            self._manager.retire(sandbox_id, "error", reason)
            raise
        return self._handed_over(sandbox, identity)

    def _admit(self, sandbox_id: str, spec_id: str) -> dict[str, str]:
        metadata = {"experiment_id": self._experiment_id}
        return self._manager.admit(
            sandbox_id, self._owner, self._project_id, spec_id, self._base_url, metadata, self._redact
        )

    def _handed_over(self, sandbox: Sandbox, identity: dict[str, str]) -> Sandbox:
        """The agent's commands run as `identity` (the id and token the server issued to this sandbox)."""
        sandbox.exec_env = identity
        with self._lock:
            self._live[sandbox.id] = sandbox
        self._manager.booted(sandbox, {"experiment_id": self._experiment_id}, None)
        return sandbox

    def issue(self, spec_id: str) -> tuple[str, dict[str, str]]:
        """A sandbox a cluster node is about to boot: recorded, with the identity its agent runs as."""
        sandbox_id = new_sandbox_id()
        return sandbox_id, self._admit(sandbox_id, spec_id)

    def ran(self, sandbox_id: str, ran: RanOnNode) -> None:
        """A node's replica ended (its sandbox is gone there): its boot and end recorded here."""
        for event in ran.boot_events:
            self._manager.on_boot(event)
        if ran.described:
            extra = {"experiment_id": self._experiment_id, "node": ran.result.node}
            self._manager.ready(sandbox_id, ran.described, extra, None)
        self._manager.retire(sandbox_id)

    def lost(self, sandbox_id: str, reason: str) -> None:
        self._manager.retire(sandbox_id, "error", self._redact(reason))

    def reap(self, *, everything: bool = False) -> list[str]:
        return self._inner.reap(everything=everything)

    def retire(self, sandbox_id: str) -> None:
        with self._lock:
            self._live.pop(sandbox_id, None)
        self._manager.retire(sandbox_id)

    def retire_all(self) -> None:
        with self._lock:
            ids = list(self._live)
        for sandbox_id in ids:
            self.retire(sandbox_id)

    def destroy_all(self) -> None:
        """Stop what runs now (the server is stopping): the replicas end at once."""
        with self._lock:
            sandboxes = list(self._live.values())
        for sandbox in sandboxes:
            sandbox.destroy()
        if self.remote is not None:
            self.remote.stop()


class _Progress:
    """The engine's ProgressListener for one experiment: stores replicas, counts, publishes events."""

    def __init__(
        self, runner: ExperimentRunner, experiment_id: str, sandboxes: _ReplicaSandboxes, *, details: bool
    ) -> None:
        self._runner = runner
        self._details = details
        """Also publish each invariant's result (the events of a run's stream)."""
        self._id = experiment_id
        self._stream = experiment_stream(experiment_id)
        self._sandboxes = sandboxes
        self._counts = {"total": 0, "done": 0, "passed": 0, "failed": 0, "errors": 0}
        self._before = self._counts.copy()
        """The counts of replicas run before, when the experiment grows by more."""
        self._notes: list[str] = []
        self._lock = threading.Lock()

    def count_before(self, kept: dict[str, list[ReplicaResult]]) -> None:
        results = [result for replicas in kept.values() for result in replicas]
        with self._lock:
            for result in results:
                self._before[_COUNTED.get(result.status, "errors")] += 1
            self._before["done"] = self._before["total"] = len(results)
            self._counts = self._before.copy()

    def started(self, total_replicas: int, notes: list[str]) -> None:
        with self._lock:
            self._counts["total"] = self._before["total"] + total_replicas
            self._notes = notes
            self._save()

    def boot(self, event: BootEvent) -> None:
        self._runner.sandboxes.on_boot(event)

    def replica_done(self, scenario_id: str, result: ReplicaResult) -> None:
        if self._runner.stopping:
            raise _Stopped()  # a replica cut short by the shutdown is no result
        store = self._runner.store
        store.add_replica(
            ReplicaRecord(self._id, scenario_id, result.replica, result.model_dump(mode="json"), now())
        )
        with self._lock:
            self._counts["done"] += 1
            self._counts[_COUNTED.get(result.status, "errors")] += 1
            self._save()
        self._runner.bus.publish(self._stream, "replica_done", replica_event(scenario_id, result))
        if self._details:
            for invariant in result.invariants:
                status = "skipped" if invariant.skipped else "passed" if invariant.passed else "failed"
                self._runner.bus.publish(
                    self._stream,
                    "invariant_result",
                    {
                        "invariant_id": invariant.name,
                        "name": invariant.name,
                        "status": status,
                        "score": invariant.score,
                    },
                )
        if result.sandbox_id:
            self._sandboxes.retire(result.sandbox_id)

    def _save(self) -> None:
        """Under the lock, so a slower thread never overwrites newer counts."""
        progress = {**self._counts, "notes": self._notes, "status": "running"}
        self._runner.store.update_experiment(self._id, progress=progress)
        self._runner.bus.publish(self._stream, "progress", progress)


class ExperimentRunner:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        engine: LazyEngine,
        sandboxes: SandboxManager,
        specs: SpecSources,
        webhooks: WebhookSender,
        *,
        agents: AgentSnapshots,
        instance_id: str,
        max_concurrent: int,
        per_key: int,
        per_project: int,
        stock: SandboxStock | None = None,
        on_finished: Callable[[ExperimentRecord], None] = lambda record: None,
        cluster: RayCluster | None = None,
    ) -> None:
        """`instance_id`: this server's, given to every experiment it queues (see `_instance`). `stock`:
        ready sandboxes kept between experiments (the server's warm pool), closed with the runner.
        `on_finished`: told of every experiment that ended, after its webhooks are queued; it must return
        at once and never raise (the alert rules' evaluation). `cluster`: where replicas run, instead of
        this server's engine (closed with the runner)."""
        self._cluster = cluster
        self._on_finished = on_finished
        self.store = store
        self.bus = bus
        self.sandboxes = sandboxes
        self._engine = engine
        self._specs = specs
        self._webhooks = webhooks
        self._agents = agents
        self._instance_id = instance_id
        self._max_concurrent = max_concurrent
        self._per_key = per_key
        self._per_project = per_project
        self._stock = stock
        self._executor = ThreadPoolExecutor(
            max_workers=max_concurrent, thread_name_prefix="keystone-experiment"
        )
        self._active: dict[str, tuple[str, str]] = {}
        """experiment id -> (owner key, project) of each experiment queued or running here."""
        self._running: dict[str, _ReplicaSandboxes] = {}
        self._secrets: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def hold_secrets(self, experiment_id: str, secrets: dict[str, str]) -> None:
        """Keep the secrets sent at create time, in memory only, for the run."""
        if secrets:
            with self._lock:
                self._secrets[experiment_id] = dict(secrets)

    def start(self, record: ExperimentRecord, owner: str, base_url: str) -> ExperimentRecord:
        """Admit and enqueue the experiment; returns it `queued`. Raises WrongState when it is not
        `created` (or its secrets were lost in a restart) and AtCapacity when a limit is reached."""
        if record.status != "created":
            raise WrongState(
                f"experiment {record.id} is {record.status}; only a created experiment can run "
                "(create a new one to run again)"
            )
        with self._lock:
            if record.options.get("secret_names") and record.id not in self._secrets:
                raise WrongState(
                    f"the secrets sent with experiment {record.id} are gone (the server restarted since it "
                    "was created, and secrets are never stored); create the experiment again",
                    code="secrets_unavailable",
                )
            self._admit(record.id, owner, record.project_id)
        queued = self._queue(record.id, "created", "only a created experiment can run")
        with self._lock:
            secrets = self._secrets.pop(record.id, {})
        self._enqueue(queued, owner, secrets, base_url)
        return queued

    def extend(
        self,
        record: ExperimentRecord,
        wanted: dict[str, int],
        secrets: dict[str, str],
        owner: str,
        base_url: str,
    ) -> ExperimentRecord:
        """Grow a completed experiment to `wanted` replicas per scenario (at least: counts it already
        has stay), keeping every replica it ran, and enqueue the new ones; returns it `queued`, or as it
        is when nothing grows. Raises InvalidRequest for an unknown scenario, WrongState when it is not
        completed, is a run, or needs its secrets again, AtCapacity when a limit is reached."""
        options = record.options
        planned = planned_replicas(options)
        known = list(planned)
        unknown = sorted(set(wanted) - set(known))
        if unknown:
            raise InvalidRequest(
                f"experiment {record.id} has no scenario {', '.join(map(repr, unknown[:5]))}; its "
                f"scenarios are {', '.join(map(repr, known[:5]))}" + (" ..." if len(known) > 5 else "")
            )
        grown = {sid: max(planned[sid], count) for sid, count in wanted.items()}
        if all(grown[sid] == planned[sid] for sid in grown):
            return record  # asked again, or for fewer: nothing to run
        if options.get("kind") == RUN:
            raise WrongState(f"{record.id} is a run: a run is one replica; start a new run instead")
        if record.status != "completed":
            raise WrongState(
                f"experiment {record.id} is {record.status}; only a completed experiment gets more replicas"
            )
        missing = sorted(set(options.get("secret_names", [])) - set(secrets))
        if missing:
            raise WrongState(
                f"experiment {record.id} was created with secrets, and secrets are never stored: send "
                f"{', '.join(missing)} again with the request",
                code="secrets_unavailable",
            )
        with self._lock:
            self._admit(record.id, owner, record.project_id)
        queued = self._queue(
            record.id,
            "completed",
            "only a completed experiment gets more replicas",
            options={**options, "scenario_replicas": {**planned, **grown}},
            results=None,
            finished_at=None,
            error=None,
        )
        self._enqueue(queued, owner, secrets, base_url)
        return queued

    def _admit(self, experiment_id: str, owner: str, project_id: str) -> None:
        """Count the experiment as queued here, under the lock; raises AtCapacity over a limit."""
        mine = sum(1 for key, _ in self._active.values() if key == owner)
        ours = sum(1 for _, project in self._active.values() if project == project_id)
        if len(self._active) >= self._max_concurrent:
            raise AtCapacity(
                f"at capacity: {self._max_concurrent} experiments are queued or running on this server",
                retry_after=RETRY_AFTER_S,
            )
        if mine >= self._per_key:
            raise AtCapacity(
                f"at capacity: this key already has {self._per_key} experiments queued or running",
                retry_after=RETRY_AFTER_S,
            )
        if ours >= self._per_project:
            raise AtCapacity(
                f"at capacity: this project already has {self._per_project} experiments queued or running",
                retry_after=RETRY_AFTER_S,
            )
        if self.stopping:
            raise AtCapacity("the server is stopping", retry_after=RETRY_AFTER_S)
        self._active[experiment_id] = (owner, project_id)

    def _queue(self, experiment_id: str, status: str, refusal: str, **changes: Any) -> ExperimentRecord:
        """Move an admitted experiment from `status` to `queued` (with `changes`); when another request
        moved it first, un-admit it and raise WrongState saying `refusal`. The experiment is this
        server's from then on (its instance id)."""
        queued = self.store.transition_experiment(
            experiment_id, (status,), "queued", instance_id=self._instance_id, **changes
        )
        if queued is not None:
            return queued
        with self._lock:
            self._active.pop(experiment_id, None)
        current = self.store.get_experiment(experiment_id)
        raise WrongState(f"experiment {experiment_id} is {current.status}; {refusal}")

    def _enqueue(self, queued: ExperimentRecord, owner: str, secrets: dict[str, str], base_url: str) -> None:
        self.bus.publish(experiment_stream(queued.id), "progress", {**queued.progress, "status": "queued"})
        self._executor.submit(self._execute, queued, owner, secrets, base_url)

    def _execute(self, record: ExperimentRecord, owner: str, secrets: dict[str, str], base_url: str) -> None:
        try:
            self._run(record, owner, secrets, base_url)
        except Exception:
            log.exception("experiment %s: the worker failed", record.id)
        finally:
            with self._lock:
                self._active.pop(record.id, None)
                self._running.pop(record.id, None)

    def _run(self, record: ExperimentRecord, owner: str, secrets: dict[str, str], base_url: str) -> None:
        running = self.store.transition_experiment(record.id, ("queued",), "running", started_at=now())
        if running is None:
            return
        options = running.options
        self.bus.publish(experiment_stream(record.id), "progress", {**running.progress, "status": "running"})
        sandboxes: _ReplicaSandboxes | None = None
        redact = Redactor(secrets)  # the run's error is stored and sent out: no secret value in it
        try:
            bundle = options.get("bundle")
            loaded = _planned_cells(
                self._specs.load(running.project_id, running.spec_id, running.spec_version, bundle),
                options,
            )
            agent = self._agents.for_run(running.project_id, options)
            prepared = replace(
                self._engine.prepare(loaded, secrets, bundle, agent),
                server_port=agent_reach(base_url).server_port,
            )
            redact = Redactor(prepared.secrets)
            sandboxes = _ReplicaSandboxes(
                self._engine.backend(), self.sandboxes, record, owner, base_url, redact
            )
            if self._cluster is not None:
                self._engine.keystone_image("reaper")
                sandboxes.remote = self._cluster.replicas(sandboxes)
            with self._lock:
                self._running[record.id] = sandboxes
            if self.stopping:
                raise _Stopped()
            progress = _Progress(self, record.id, sandboxes, details=options.get("kind") == RUN)
            if options.get("kind") == RUN:
                results = _run_one(
                    prepared,
                    sandboxes,
                    record.id,
                    options,
                    progress,
                    self.store.trace_events,
                    sandboxes.remote,
                )
            else:
                kept = self._kept(record.id) if "scenario_replicas" in options else {}
                progress.count_before(kept)
                run_options = RunOptions(
                    replicas=options.get("replicas"),
                    concurrency=options.get("concurrency"),
                    seed=options.get("seed"),
                    experiment_id=record.id,
                    wanted=dict(options.get("scenario_replicas", {})),
                    kept=kept,
                    reported_trace=self.store.trace_events,
                    stock=self._stock.shelf(record.project_id) if self._stock is not None else None,
                    executor=sandboxes.remote,
                )
                results = run_experiment(prepared, sandboxes, run_options, progress)
        except _Stopped:
            self.finish(
                record.id,
                "interrupted",
                error="the server stopped before the experiment finished",
                if_running=True,
            )
        except (SpecError, SecretError, FingerprintMismatch) as exc:
            self.finish(record.id, "failed", error=redact(f"{INVALID_INPUT_PREFIX} {exc}"), if_running=True)
        except (ImageError, FixtureError, SandboxError) as exc:
            self.finish(record.id, "failed", error=redact(f"infrastructure error: {exc}"), if_running=True)
        except Exception as exc:
            log.exception("experiment %s failed", record.id)
            self.finish(record.id, "failed", error=f"internal error ({type(exc).__name__})", if_running=True)
        else:
            self.finish(record.id, "completed", results=results, if_running=True)
        finally:
            if sandboxes is not None:
                sandboxes.retire_all()

    def _kept(self, experiment_id: str) -> dict[str, list[ReplicaResult]]:
        """The replicas an experiment ran before it grew (none for a new one), per scenario, in order."""
        kept: dict[str, list[ReplicaResult]] = {}
        for record in sorted(self.store.replicas(experiment_id), key=lambda r: r.replica_index):
            kept.setdefault(record.scenario_id, []).append(ReplicaResult.model_validate(record.result))
        return kept

    def finish(
        self,
        experiment_id: str,
        status: str,
        *,
        results: RunResults | None = None,
        error: str | None = None,
        if_running: bool = False,
    ) -> None:
        """Record the terminal state, end the event stream and send the completion webhooks.
        `if_running` (this server's run of it ends): only if it is still running. Another server may
        have ended it meanwhile, taking this one for stopped when its lease lapsed (a database out of
        reach for longer than the lease); that ending stands, so the experiment ends once."""
        record = self.store.get_experiment(experiment_id)
        progress = {**record.progress, "status": status}
        changes: dict[str, Any] = {"finished_at": now(), "progress": progress, "error": error}
        if results is not None:
            changes["results"] = results.model_dump(mode="json")
        if if_running:
            moved = self.store.transition_experiment(experiment_id, ("running",), status, **changes)
            if moved is None:
                log.warning(
                    "experiment %s was ended by another server; its end here is dropped", experiment_id
                )
                return
            record = moved
        else:
            record = self.store.update_experiment(experiment_id, status=status, **changes)
        summary = terminal_summary(record)
        self.bus.publish(
            experiment_stream(experiment_id), "done" if status == "completed" else "error", summary
        )
        event_type = COMPLETED_WEBHOOK.get(record.options.get("kind", ""), EXPERIMENT_COMPLETED)
        self._webhooks.send(event_type, record)
        self._on_finished(record)

    def sweep(self) -> None:
        """End the experiments of servers that stopped without ending them (their instance's lease
        expired; see `_instance`): `interrupted`, keeping the replicas they stored. Never resumed here:
        their secrets were held only in the stopped process's memory."""
        for record in self.store.interrupt_abandoned_experiments():
            kept = len(self.store.replicas(record.id))
            self.finish(
                record.id,
                "interrupted",
                error=f"the server that ran it stopped before it finished; kept {kept} finished replica(s)",
            )

    def close(self) -> None:
        """Stop: running replicas are cut short (their sandboxes destroyed) and the experiments end
        `interrupted`, keeping every replica that finished before."""
        self._stopping.set()
        with self._lock:
            running = list(self._running.values())
        for sandboxes in running:
            sandboxes.destroy_all()
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._stock is not None:
            self._stock.close()
        if self._cluster is not None:
            self._cluster.close()
        with self._lock:
            left = list(self._active)
            self._active.clear()
        for experiment_id in left:  # queued jobs the executor cancelled
            if self.store.transition_experiment(experiment_id, ("queued",), "interrupted") is not None:
                self.finish(
                    experiment_id, "interrupted", error="the server stopped before the experiment started"
                )


def _planned_cells(loaded: LoadedSpec, options: dict[str, Any]) -> LoadedSpec:
    """The spec with its matrix narrowed to the cells the plan kept (a run or a suite of one cell), or
    its dataset resolved to the records the plan pinned."""
    spec = loaded.spec
    matrix = spec.parallelism.matrix
    cells = options["scenarios"]
    if spec.parallelism.dataset is not None:
        planned = [(cell["scenario_id"], cell["parameters"]) for cell in cells]
        parallelism = spec.parallelism.planned(planned, options["dataset"]["version"])
        return replace(loaded, spec=spec.model_copy(update={"parallelism": parallelism}))
    if not matrix or len(cells) == len(scenarios_of(spec.parallelism, spec.id)):
        return loaded
    narrowed = {axis: list(dict.fromkeys(cell["parameters"][axis] for cell in cells)) for axis in matrix}
    parallelism = spec.parallelism.model_copy(update={"matrix": narrowed})
    return replace(loaded, spec=spec.model_copy(update={"parallelism": parallelism}))


def _run_one(
    prepared: PreparedSpec,
    backend: SandboxBackend,
    experiment_id: str,
    options: dict[str, Any],
    progress: _Progress,
    reported_trace: ReportedTrace,
    executor: ReplicaExecutor | None,
) -> RunResults:
    """A run: one replica of the chosen matrix cell with a known seed (new, or the seed of the run it
    replays), so `seed` in its results is the replica's own seed."""
    cell = options["scenarios"][0]
    seed = int(options["replica_seed"])
    progress.started(1, prepared.notes)
    if executor is not None:
        result = executor.run(
            prepared, ReplicaJob(experiment_id, cell["scenario_id"], 0, seed, cell["parameters"])
        )
    else:
        result = replay(
            prepared,
            backend,
            seed=seed,
            parameters=cell["parameters"],
            fingerprint=None,
            on_boot=progress.boot,
            reported_trace=reported_trace,
        )
    progress.replica_done(cell["scenario_id"], result)
    spec_id = prepared.spec.id
    scenario = aggregate_scenario(spec_id, cell["scenario_id"], cell["parameters"], [result])
    return aggregate_run(
        spec_id=spec_id,
        experiment_id=experiment_id,
        seed=seed,
        scenarios=[scenario],
        fingerprint=prepared.fingerprint,
        spec_file="",
        k=1,
    )


def replica_event(scenario_id: str, result: ReplicaResult) -> dict[str, Any]:
    """What a finished replica's `replica_done` event (on its experiment's stream) says."""
    return {
        "scenario_id": scenario_id,
        "replica": result.replica,
        "status": result.status,
        "seed": result.seed,
        "sandbox_id": result.sandbox_id,
        "wall_ms": result.wall_ms,
        "composite_score": result.composite_score,
        "error": result.error,
    }


def terminal_summary(record: ExperimentRecord) -> dict[str, Any]:
    """What an experiment's terminal event (on its stream) says about it."""
    results = record.results or {}
    scenarios = results.get("scenarios") or []
    return {
        "experiment_id": record.id,
        "kind": record.options.get("kind", "experiment"),
        "name": record.name,
        "spec_id": record.spec_id,
        "status": record.status,
        "error": record.error,
        "total_scenarios": results.get("total_scenarios"),
        "passed": results.get("passed"),
        "failed": results.get("failed"),
        "flaky": results.get("flaky"),
        "errors": results.get("errors"),
        "pass_rate": (results.get("metrics") or {}).get("pass_rate"),
        "score": sum(s.get("composite_score", 0.0) for s in scenarios) / len(scenarios)
        if scenarios
        else None,
        "metadata": record.metadata,
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
    }
