"""Run an experiment: every scenario (matrix cell) times its replicas, in fresh sandboxes, with
bounded concurrency and per-replica seeds derived from one experiment seed."""

from __future__ import annotations

import itertools
import secrets
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from ..results import ReplicaResult, RunResults
from ..sandbox import BootEvent, Sandbox, SandboxBackend
from ..spec import Parallelism, SpecError, SpecIssue
from ._aggregate import aggregate_run, aggregate_scenario
from ._prepare import PreparedSpec, ReplicaPlan
from ._replica import ReplicaJob, booting_on, destroying, run_replica
from ._sandbox_stock import StockShelf
from ._seeds import new_experiment_seed, replica_seed
from ._service_reset import resettable
from ._trace import ReportedTrace
from ._warm_pool import WarmPool

DEFAULT_CONCURRENCY = 4


class ReplicaExecutor(Protocol):
    """Runs replicas somewhere other than this process's Docker engine (a cluster's nodes); each call
    returns the replica's result, an `error` result when it could not run there. Called from worker
    threads, one replica per call."""

    def run(self, prepared: PreparedSpec, job: ReplicaJob) -> ReplicaResult: ...


class ProgressListener(Protocol):
    """Receives progress while an experiment runs; called from worker threads."""

    def started(self, total_replicas: int, notes: list[str]) -> None: ...

    def boot(self, event: BootEvent) -> None: ...

    def replica_done(self, scenario_id: str, result: ReplicaResult) -> None: ...


@dataclass
class RunOptions:
    replicas: int | None = None
    """Overrides `parallelism.replicas`."""
    concurrency: int | None = None
    """Overrides `parallelism.concurrency` / `resources.concurrency_limit`."""
    seed: int | None = None
    experiment_id: str | None = None
    keep: bool = False
    wanted: dict[str, int] = field(default_factory=dict)
    """Replicas per scenario where they differ from `replicas` (an experiment grown by more replicas)."""
    kept: dict[str, list[ReplicaResult]] = field(default_factory=dict)
    """Replicas run before, per scenario: kept as they are; new ones are numbered after them."""
    reported_trace: ReportedTrace | None = None
    """The events agents reported for a sandbox over the API (a server's store), scored with the file's."""
    stock: StockShelf | None = None
    """Ready sandboxes kept between experiments (a server's warm pool), taken from and given back to
    when the spec's services can be reset."""
    executor: ReplicaExecutor | None = None
    """Where the replicas run instead of `backend` (a cluster); no warm pool or stock is used then: a
    cluster's nodes keep their own."""


def scenarios_of(parallelism: Parallelism, spec_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The scenarios as (scenario_id, parameters): the dataset records a server resolved, or the
    cartesian product of the matrix; one scenario without either. SpecError for a dataset no server
    resolved (a plain engine run has no datasets)."""
    if parallelism.dataset is not None:
        planned = parallelism.planned_scenarios
        if planned is None:
            issue = SpecIssue(
                file=spec_id,
                line=None,
                column=None,
                field="parallelism.dataset",
                message=f"the scenarios are the records of dataset {parallelism.dataset.id!r}, which only "
                "a Keystone server holds; this run has no server",
                suggestion="run it through a server: `ks eval run SPEC` without --keep (a server on the "
                "local store), or a client of `ks server`",
            )
            raise SpecError([issue])
        return planned
    matrix = parallelism.matrix
    if not matrix:
        return [(spec_id, {})]
    axes = sorted(matrix)
    cells = []
    for values in itertools.product(*(matrix[axis] for axis in axes)):
        parameters = dict(zip(axes, values, strict=True))
        label = ",".join(f"{axis}={parameters[axis]}" for axis in axes)
        cells.append((f"{spec_id}[{label}]", parameters))
    return cells


def concurrency_for(prepared: PreparedSpec, options: RunOptions) -> int:
    spec = prepared.spec
    limit = spec.resources.concurrency_limit
    wanted = options.concurrency or spec.parallelism.concurrency or DEFAULT_CONCURRENCY
    return max(1, min(wanted, limit) if limit else wanted)


def _poolable(prepared: PreparedSpec, replicas: int, stocked: bool) -> bool:
    """Replicas of a scenario boot identical sandboxes unless a secret is generated from each seed; one
    replica alone needs a pool only to use a stock."""
    return (replicas > 1 or (stocked and replicas > 0)) and not any(
        secret.from_ == "generated" for secret in prepared.spec.secrets
    )


def _give_back(pool: WarmPool, key: str, sandbox: Sandbox, plan: ReplicaPlan, clean: bool) -> None:
    (pool.release if clean else pool.destroy)(key, sandbox, plan)


def run_experiment(
    prepared: PreparedSpec,
    backend: SandboxBackend,
    options: RunOptions,
    progress: ProgressListener | None = None,
) -> RunResults:
    spec = prepared.spec
    seed = options.seed if options.seed is not None else new_experiment_seed()
    experiment_id = options.experiment_id or f"exp-{secrets.token_hex(6)}"
    replicas = options.replicas or spec.parallelism.replicas
    cells = scenarios_of(spec.parallelism, spec.id)
    jobs = [
        ReplicaJob(experiment_id, scenario_id, index, replica_seed(seed, scenario_id, index), parameters)
        for scenario_id, parameters in cells
        for index in range(len(options.kept.get(scenario_id, [])), options.wanted.get(scenario_id, replicas))
    ]
    if progress is not None:
        progress.started(len(jobs), prepared.notes)
    on_boot: Callable[[BootEvent], None] | None = progress.boot if progress else None
    concurrency = concurrency_for(prepared, options)
    new_replicas = Counter(job.scenario_id for job in jobs)
    renew = resettable(spec) and not options.keep
    stock = options.stock.for_spec(prepared) if options.stock is not None and renew else None
    pool = None
    if options.executor is None and _poolable(
        prepared, max(new_replicas.values(), default=0), stock is not None
    ):
        pool = WarmPool(backend, depth=concurrency, on_boot=on_boot, renew=renew, stock=stock)
    for scenario_id, count in new_replicas.items():
        if pool is not None:
            pool.expect(scenario_id, count)

    def work(job: ReplicaJob) -> ReplicaResult:
        result = options.executor.run(prepared, job) if options.executor is not None else run_locally(job)
        if progress is not None:
            progress.replica_done(job.scenario_id, result)
        return result

    def run_locally(job: ReplicaJob) -> ReplicaResult:
        boot, give_back = booting_on(backend), destroying
        if pool is not None:
            boot = partial(pool.acquire, job.scenario_id)
            give_back = partial(_give_back, pool, job.scenario_id)
        return run_replica(
            prepared,
            boot,
            job,
            keep=options.keep,
            on_boot=on_boot,
            reported_trace=options.reported_trace,
            give_back=give_back,
        )

    workers = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="keystone-replica")
    try:
        results = list(workers.map(work, jobs))
    finally:
        # On Ctrl-C, replicas not started yet are dropped; running ones finish and destroy their sandboxes.
        workers.shutdown(wait=True, cancel_futures=True)
        if pool is not None:
            pool.close()
    scenarios = [
        aggregate_scenario(
            spec.id,
            scenario_id,
            parameters,
            [
                *options.kept.get(scenario_id, []),
                *(r for job, r in zip(jobs, results, strict=True) if job.scenario_id == scenario_id),
            ],
        )
        for scenario_id, parameters in cells
    ]
    return aggregate_run(
        spec_id=spec.id,
        experiment_id=experiment_id,
        seed=seed,
        scenarios=scenarios,
        fingerprint=prepared.fingerprint,
        spec_file=str(prepared.loaded.path or ""),
        k=replicas,
    )
