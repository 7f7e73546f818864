"""Boot-time benchmark: prints figures for this machine, asserts nothing.

    python bench/boot.py [--runs N] [--warmup W] [--sections bare,services,reset,warm,testcontainers,replicas]
                         [--tc-mode sequential|concurrent|both] [--tc-poll-interval S]
                         [--replica-runs 2,4 | none] [--replicas 20]

Sections (each its own function):
  1. bare      create->ready (and teardown) of a sandbox with only the agent container;
  2. services  create->ready of a sandbox with Postgres + Redis + one SQL fixture, with per-step medians;
  2b. gateway  the same with a network policy, so egress goes through Keystone's gateway container;
  2c. gvisor   the bare sandbox with its agent container under gVisor (runsc), beside runc's;
  3. testcontainers  the same readiness with testcontainers-python on the same local images;
  2d. reset    the sandbox of 2 renewed for another replica: agent container replaced, Postgres and Redis
               reset, fixture applied again (the warm pool's renewal), and the state check after it;
  2e. warm     experiments of one refund-agent replica, one after another on one stock of kept sandboxes
               (`ks serve --warm-pool`): what the replica of each later experiment waits for its sandbox;
  4. replicas  wall time of N replicas of examples/refund-agent/refund.yaml through the engine, with
               services reset between replicas (the default) and booted afresh (fresh_services).

Everything this process starts is removed at the end, on an error and on Ctrl-C / SIGTERM: Keystone
sandboxes by this process's `keystone.owner` label, testcontainers containers by their session label.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import itertools
import os
import platform
import secrets
import signal
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import docker
import docker.errors

from polarity_keystone import __version__ as keystone_version
from polarity_keystone.sandbox import (
    BootEvent,
    DockerBackend,
    FixtureStep,
    ImageResolver,
    NetworkPolicy,
    SandboxError,
    SandboxPlan,
    runtime_problem,
)
from polarity_keystone.sandbox._labels import OWNER
from polarity_keystone.services import kind_of, postgres
from polarity_keystone.spec import Service

ROOT = Path(__file__).resolve().parents[1]
REFUND_SPEC = ROOT / "examples" / "refund-agent" / "refund.yaml"
BENCH_ID = f"bench-{secrets.token_hex(4)}"
FIXTURE_SQL = "CREATE TABLE t(id int); INSERT INTO t VALUES (1)"
STEPS = ("network", "services", "fixtures", "snapshot", "ready")
SECTIONS = ("bare", "services", "gateway", "gvisor", "reset", "warm", "testcontainers", "replicas")
GATEWAY_POLICY = NetworkPolicy(default_allow=False, overrides={"api.stripe.com": "cache"})
TARGET_READY_S = 0.8
TARGET_SPEEDUP = 3.0
TARGET_WARM_S = 0.05


def out(text: str = "") -> None:
    print(text, flush=True)


# --- statistics --------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), like numpy's default."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def fmt_s(value: float) -> str:
    return "   n/a " if value != value else f"{value:6.3f} s"


def line(label: str, values: list[float], failures: int = 0) -> str:
    extra = f"  ({failures} failed)" if failures else ""
    if not values:
        return f"  {label:<34} no successful run{extra}"
    return (
        f"  {label:<34} p50 {fmt_s(pct(values, 50))}   p95 {fmt_s(pct(values, 95))}   "
        f"min {fmt_s(min(values))}   max {fmt_s(max(values))}   n={len(values)}{extra}"
    )


# --- cleanup -----------------------------------------------------------------------------------


class BenchBackend(DockerBackend):
    """DockerBackend that refuses new sandboxes once the benchmark is stopping, so an interrupted
    engine run drains at once instead of booting its remaining replicas."""

    stopping = threading.Event()

    def create(self, plan: SandboxPlan, on_event: Any = None) -> Any:
        if self.stopping.is_set():
            raise SandboxError("benchmark interrupted")
        return super().create(plan, on_event)


class Cleanup:
    """Tracks what the benchmark started and removes all of it; safe to call repeatedly."""

    def __init__(self, client: docker.DockerClient, owner: str) -> None:
        self.client = client
        self.owner = owner
        self.tc_session: str | None = None
        self.live: set[Any] = set()
        self._lock = threading.Lock()

    def track(self, thing: Any) -> None:
        with self._lock:
            self.live.add(thing)

    def untrack(self, thing: Any) -> None:
        with self._lock:
            self.live.discard(thing)

    def sweep(self) -> tuple[int, int]:
        """Remove tracked objects, then anything still labelled as ours; returns (containers, networks)."""
        with self._lock:
            live, self.live = list(self.live), set()
        for thing in live:
            with contextlib.suppress(Exception):
                (thing.destroy if hasattr(thing, "destroy") else thing.stop)()
        selectors = [{"label": f"{OWNER}={self.owner}"}]
        if self.tc_session:
            selectors.append({"label": f"org.testcontainers.session-id={self.tc_session}"})
        containers = networks = 0
        for selector in selectors:
            with contextlib.suppress(docker.errors.APIError):
                for container in self.client.api.containers(all=True, filters=selector):
                    with contextlib.suppress(docker.errors.APIError):
                        self.client.api.remove_container(container["Id"], force=True, v=True)
                        containers += 1
        with contextlib.suppress(docker.errors.APIError):
            for network in self.client.api.networks(filters=selectors[0]):
                with contextlib.suppress(docker.errors.APIError):
                    self.client.api.remove_network(network["Id"])
                    networks += 1
        return containers, networks


def install_signal_handlers() -> None:
    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(
        signal.SIGINT, signal.default_int_handler
    )  # also when started with SIGINT ignored (`cmd &`)
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)


# --- machine -----------------------------------------------------------------------------------


def machine_facts(client: docker.DockerClient, owner: str) -> None:
    info = client.info()
    version = client.version()
    cpu_model = ""
    with contextlib.suppress(OSError):
        for row in Path("/proc/cpuinfo").read_text().splitlines():
            if row.startswith("model name"):
                cpu_model = row.split(":", 1)[1].strip()
                break
    # Low-level listing: no per-container inspect, which races with other people's containers going away.
    others = [c for c in client.api.containers() if (c.get("Labels") or {}).get(OWNER) != owner]
    try:
        from importlib.metadata import version as dist_version

        import testcontainers  # noqa: F401

        tc_version = dist_version("testcontainers")
    except Exception:
        tc_version = "not installed"
    out("== machine ==")
    out(
        f"  nproc                    {len(os.sched_getaffinity(0))} (os.cpu_count {os.cpu_count()}; engine NCPU {info.get('NCPU')})"
    )
    out(f"  cpu                      {cpu_model or platform.machine()}")
    out(f"  memory (engine)          {info.get('MemTotal', 0) / 1024**3:.1f} GiB")
    out(
        f"  docker server            {version.get('Version')} (API {version.get('ApiVersion')}), "
        f"storage driver {info.get('Driver')}, cgroup {info.get('CgroupVersion', '?')}"
    )
    out(f"  kernel / os              {info.get('KernelVersion')} / {info.get('OperatingSystem')}")
    out(
        f"  python                   {platform.python_version()}, docker SDK {docker.__version__}, "
        f"keystone {keystone_version}, testcontainers {tc_version}"
    )
    out(f"  other running containers {len(others)} at start (not ours; they share the engine and CPUs)")
    out(f"  load average             {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min, at start)")
    out()


# --- 1. bare sandbox; 2. Postgres + Redis + fixture (with or without the network gateway) ---------


def time_boots(
    backend: DockerBackend, cleanup: Cleanup, plan_for: Callable[[int], SandboxPlan], runs: int, warmup: int
) -> dict[str, Any]:
    """create->ready and destroy of `warmup + runs` sandboxes, one at a time; boot steps per run."""
    ready: list[float] = []
    teardown: list[float] = []
    cumulative: dict[str, list[float]] = defaultdict(list)
    durations: dict[str, list[float]] = defaultdict(list)
    failures: list[str] = []
    for index in range(warmup + runs):
        events: list[BootEvent] = []
        try:
            started = time.perf_counter()
            sandbox = backend.create(plan_for(index), on_event=events.append)
            booted = time.perf_counter()
            cleanup.track(sandbox)
            sandbox.destroy()
            gone = time.perf_counter()
            cleanup.untrack(sandbox)
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
            continue
        if index < warmup:
            continue
        ready.append(booted - started)
        teardown.append(gone - booted)
        previous = 0
        for event in events:
            cumulative[event.step].append(event.elapsed_ms)
            durations[event.step].append(event.elapsed_ms - previous)
            previous = event.elapsed_ms
    out(line("create -> ready", ready, len(failures)))
    out(line("destroy", teardown))
    if cumulative:
        out("  boot steps (BootEvent, medians in ms):   step took   elapsed since create")
    for step in [s for s in STEPS if s in cumulative] + [s for s in cumulative if s not in STEPS]:
        out(
            f"    {step:<10} {statistics.median(durations[step]):>29.0f}   {statistics.median(cumulative[step]):>20.0f}"
        )
    for failure in failures[:3]:
        out(f"  failure: {failure[:300]}")
    out()
    return {"ready": ready, "teardown": teardown}


def bench_bare(
    backend: DockerBackend,
    resolver: ImageResolver,
    cleanup: Cleanup,
    runs: int,
    warmup: int,
    runtime: str | None = None,
) -> dict[str, Any]:
    image = resolver.resolve("ubuntu:24.04")
    under = f", runtime {runtime}" if runtime else ""
    out(
        f"== {'2c. gvisor:' if runtime else '1.'} bare sandbox (agent container only; image {image.ref}{under}) =="
    )
    return time_boots(
        backend,
        cleanup,
        lambda index: SandboxPlan(
            spec_id="bench", run_id=f"{BENCH_ID}-bare-{index}", image=image.ref, runtime=runtime
        ),
        runs,
        warmup,
    )


def bench_gvisor(
    backend: DockerBackend, resolver: ImageResolver, cleanup: Cleanup, runs: int, warmup: int
) -> dict[str, Any] | None:
    problem = runtime_problem(backend.client, "runsc")
    if problem is not None:
        out(f"== 2c. gvisor: skipped: {problem} ==\n")
        return None
    return bench_bare(backend, resolver, cleanup, runs, warmup, runtime="runsc")


def bench_services(
    backend: DockerBackend,
    resolver: ImageResolver,
    cleanup: Cleanup,
    runs: int,
    warmup: int,
    network: NetworkPolicy | None = None,
) -> dict[str, Any]:
    """With `network`, egress goes through the gateway container (deny, one DNS override)."""
    db, cache = Service(name="db", image="postgres:16"), Service(name="cache", image="redis:7")
    plans = [
        kind_of(s).container(s, resolver.resolve(s.image or "").ref, local_image=True) for s in (db, cache)
    ]

    def fixture(sandbox: Any) -> Any:
        return postgres.run_sql(sandbox, db, FIXTURE_SQL)

    agent_image = resolver.resolve("ubuntu:24.04").ref
    gateway = resolver.local("gateway").ref
    number, extra = ("2b", " + network gateway") if network else ("2", "")
    out(
        f"== {number}. sandbox with Postgres + Redis + 1 SQL fixture{extra} ({', '.join(p.image for p in plans)}) =="
    )
    return time_boots(
        backend,
        cleanup,
        lambda index: SandboxPlan(
            spec_id="bench",
            run_id=f"{BENCH_ID}-svc-{index}",
            image=agent_image,
            services=plans,
            fixtures=[FixtureStep(fixture, "sql fixture", touches_workspace=False)],
            network=network,
            gateway_image=gateway,
        ),
        runs,
        warmup,
    )


def bench_reset(
    backend: DockerBackend, resolver: ImageResolver, cleanup: Cleanup, runs: int, warmup: int
) -> dict[str, Any]:
    """One sandbox of section 2, dirtied by an 'agent' and renewed `warmup + runs` times."""
    from polarity_keystone.engine._service_reset import reset_services, state_digests

    db, cache = Service(name="db", image="postgres:16"), Service(name="cache", image="redis:7")
    services = {"db": db, "cache": cache}
    plans = [
        kind_of(s).container(s, resolver.resolve(s.image or "").ref, local_image=True) for s in (db, cache)
    ]
    plan = SandboxPlan(
        spec_id="bench",
        run_id=f"{BENCH_ID}-reset",
        image=resolver.resolve("ubuntu:24.04").ref,
        services=plans,
        fixtures=[
            FixtureStep(lambda sandbox: postgres.run_sql(sandbox, db, FIXTURE_SQL), "sql fixture", False)
        ],
        renewals=warmup + runs,
    )
    out(
        "== 2d. the sandbox of 2 renewed for another replica (services reset, fixture again, state checked) =="
    )
    sandbox = backend.create(plan)
    cleanup.track(sandbox)
    reference = state_digests(sandbox, services)
    renew: list[float] = []
    check: list[float] = []
    failures = 0
    try:
        for index in range(warmup + runs):
            postgres.run_sql(sandbox, db, "INSERT INTO t VALUES (2)")  # what an agent leaves behind
            started = time.perf_counter()
            sandbox = backend.renew(sandbox, plan, lambda box: reset_services(services, box))
            renewed = time.perf_counter()
            same = state_digests(sandbox, services) == reference
            checked = time.perf_counter()
            failures += not same
            if index >= warmup:
                renew.append(renewed - started)
                check.append(checked - renewed)
    finally:
        sandbox.destroy()
        cleanup.untrack(sandbox)
    out(line("renew (reset + fixture)", renew, failures))
    out(line("state check after it", check))
    out(line("renew + check", [a + b for a, b in zip(renew, check, strict=True)]))
    out("  a replica takes a renewed sandbox from the warm pool as soon as it is ready: no boot on its path")
    out()
    return {"renew": renew, "check": check}


def bench_warm(backend: DockerBackend, resolver: ImageResolver, runs: int, warmup: int) -> list[float]:
    """Like a server between experiments: each experiment starts once the stock holds the sandbox the one
    before gave back, renewed and verified (the first experiment boots its own)."""
    from polarity_keystone.engine import RunOptions, SandboxStock, StockLimits, prepare, run_experiment
    from polarity_keystone.spec import load_spec

    prepared = prepare(load_spec(REFUND_SPEC), resolver)
    stock = SandboxStock(lambda: backend, StockLimits(per_plan=1, total=1))
    out(
        f"== 2e. warm pool: experiments of 1 replica of {REFUND_SPEC.relative_to(ROOT)}, one after another =="
    )
    waits: list[float] = []
    failures = 0
    try:
        for index in range(1 + warmup + runs):
            deadline = time.monotonic() + 60
            while index and stock.count() < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            options = RunOptions(replicas=1, seed=index, experiment_id=f"{BENCH_ID}-warm-{index}")
            options.stock = stock.shelf("bench")
            results = run_in_thread(partial(run_experiment, prepared, backend, options))
            (replica,) = results.scenarios[0].replicas
            failures += replica.status != "pass" or (index > 0 and not replica.renewed)
            if index > warmup:
                waits.append(replica.boot_ms / 1000)
    finally:
        stock.close()
    out(line("sandbox ready for the replica", waits, failures))
    out("  (the replica's own wait: taken from the stock; a server adds its record and token, ~1 ms)")
    out()
    return waits


# --- 3. testcontainers-python ------------------------------------------------------------------


def configure_testcontainers(client: docker.DockerClient, poll_interval: float | None) -> list[str]:
    """Make Ryuk work offline or disable it; returns notes for the output."""
    from testcontainers.core.config import testcontainers_config as config

    notes = []
    if poll_interval is not None:
        config.sleep_time = poll_interval
    notes.append(
        f"wait-strategy poll interval {config.sleep_time:g} s"
        + (
            " (set with --tc-poll-interval)"
            if poll_interval is not None
            else " (testcontainers default, TC_POOLING_INTERVAL)"
        )
    )
    if config.ryuk_disabled:
        notes.append("Ryuk disabled by the environment (TESTCONTAINERS_RYUK_DISABLED)")
        return notes
    try:
        client.images.get(config.ryuk_image)
        notes.append(f"Ryuk enabled ({config.ryuk_image} is present locally; started during warm-up)")
        return notes
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(config.ryuk_image)
        notes.append(f"Ryuk enabled ({config.ryuk_image} pulled)")
    except docker.errors.APIError:
        os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"
        config.ryuk_disabled = True
        notes.append(
            f"Ryuk DISABLED: TESTCONTAINERS_RYUK_DISABLED=true, because {config.ryuk_image} is not present "
            "and cannot be pulled here (this script removes its containers itself)"
        )
    return notes


def bench_testcontainers(
    client: docker.DockerClient,
    resolver: ImageResolver,
    cleanup: Cleanup,
    runs: int,
    warmup: int,
    modes: list[str],
    poll_interval: float | None,
) -> dict[str, Any]:
    notes = configure_testcontainers(client, poll_interval)
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.community.redis import RedisContainer
    from testcontainers.core.labels import SESSION_ID

    cleanup.tc_session = SESSION_ID
    pg_ref, redis_ref = resolver.resolve("postgres:16").ref, resolver.resolve("redis:7").ref
    out(f"== 3. testcontainers-python on the same local images ({pg_ref}, {redis_ref}) ==")
    out("  PostgresContainer(image=...) + RedisContainer(image=...) with their own wait strategies")
    out(
        "  (Postgres: psql 'select version()' exec probe; Redis: PING from the host through the published port),"
    )
    out("  then the same SQL as the Keystone fixture via `docker exec psql`; stop() is timed as teardown.")
    for note in notes:
        out(f"  {note}")

    def sql(pg: Any) -> None:
        result = pg.exec(
            [
                "psql",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                pg.username,
                "-d",
                pg.dbname,
                "-c",
                FIXTURE_SQL,
            ]
        )
        if result.exit_code != 0:
            raise RuntimeError(f"psql failed: {result.output!r}")

    def start(container: Any) -> Any:
        cleanup.track(container)
        container.start()
        return container

    def one_run(mode: str) -> tuple[float, float]:
        pg = PostgresContainer(image=pg_ref, driver=None)
        redis = RedisContainer(image=redis_ref)
        try:
            started = time.perf_counter()
            if mode == "sequential":
                start(pg)
                start(redis)
                sql(pg)
            else:
                with ThreadPoolExecutor(max_workers=2) as pool:
                    jobs = [pool.submit(lambda: sql(start(pg))), pool.submit(start, redis)]
                    for job in jobs:
                        job.result()
            ready = time.perf_counter() - started
        finally:
            stopping = time.perf_counter()
            for container in (pg, redis):
                with contextlib.suppress(Exception):
                    container.stop()
                cleanup.untrack(container)
        return ready, time.perf_counter() - stopping

    results: dict[str, Any] = {"notes": notes}
    for mode in modes:
        ready: list[float] = []
        teardown: list[float] = []
        failures: list[str] = []
        for index in range(warmup + runs):
            try:
                took, stop = one_run(mode)
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                continue
            if index >= warmup:
                ready.append(took)
                teardown.append(stop)
        label = (
            "Postgres then Redis, sequential" if mode == "sequential" else "Postgres and Redis concurrently"
        )
        out(f"  [{mode}] {label}:")
        out(line("start -> both ready + SQL done", ready, len(failures)))
        out(line("stop", teardown))
        for failure in failures[:3]:
            out(f"  failure: {failure[:300]}")
        results[mode] = {"ready": ready, "teardown": teardown}
    out()
    return results


# --- 4. engine replicas ------------------------------------------------------------------------


def run_in_thread(work: Callable[[], Any]) -> Any:
    """Run `work` in a daemon thread so Ctrl-C reaches the main thread at once (the engine's pool
    would otherwise finish every queued replica before the interrupt propagates)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
    if "error" in box:
        raise box["error"]
    return box["value"]


def bench_replicas(
    backend: DockerBackend, resolver: ImageResolver, concurrencies: list[int], replicas: int
) -> dict[str, dict[str, float]]:
    from polarity_keystone.engine import RunOptions, prepare, run_experiment
    from polarity_keystone.spec import load_spec

    reset = prepare(load_spec(REFUND_SPEC), resolver)
    fresh = dataclasses.replace(
        reset,
        loaded=dataclasses.replace(
            reset.loaded,
            spec=reset.spec.model_copy(
                update={"resources": reset.spec.resources.model_copy(update={"fresh_services": True})}
            ),
        ),
    )
    out(f"== 4. engine: {replicas} replicas of {REFUND_SPEC.relative_to(ROOT)} (seed 1) ==")
    figures: dict[str, dict[str, float]] = {}
    for (mode, prepared), concurrency in itertools.product(
        (("reset", reset), ("fresh", fresh)), concurrencies
    ):
        options = RunOptions(
            replicas=replicas,
            seed=1,
            concurrency=concurrency,
            experiment_id=f"{BENCH_ID}-{mode}-c{concurrency}",
        )
        started = time.perf_counter()
        results = run_in_thread(partial(run_experiment, prepared, backend, options))
        wall = time.perf_counter() - started
        done = [r for scenario in results.scenarios for r in scenario.replicas]
        passed = sum(r.status == "pass" for r in done)
        errors = [r for r in done if r.status == "error"]
        boot = [r.boot_ms for r in done if r.status != "error"]
        mean_boot = statistics.fmean(boot) if boot else float("nan")
        renewed = sum(r.renewed for r in done)
        figures[f"{mode} services, concurrency {concurrency}"] = {
            "wall": wall,
            "per_min": len(done) / wall * 60,
            "passed": passed,
            "boot_ms": mean_boot,
        }
        out(
            f"  {mode} services, concurrency {concurrency}: wall {wall:6.2f} s   {len(done) / wall * 60:5.1f} "
            f"replicas/min   pass {passed}/{len(done)}   errors {len(errors)}   renewed {renewed}   "
            f"mean boot_ms {mean_boot:.0f} (waited by the replica)"
        )
        for replica in errors[:2]:
            out(f"    error: {(replica.error or '')[:300]}")
    out()
    return figures


# --- summary -----------------------------------------------------------------------------------


def summary(figures: dict[str, Any]) -> None:
    out("== summary ==")
    bare = figures.get("bare")
    services = figures.get("services")
    tc = figures.get("testcontainers", {})
    if bare and bare["ready"]:
        out(
            f"  bare sandbox ready              p50 {fmt_s(pct(bare['ready'], 50))}  p95 {fmt_s(pct(bare['ready'], 95))}"
            f"  teardown p50 {fmt_s(pct(bare['teardown'], 50))}"
        )
    ks_p50 = float("nan")
    if services and services["ready"]:
        ks_p50 = pct(services["ready"], 50)
        out(
            f"  pg+redis+fixture ready          p50 {fmt_s(ks_p50)}  p95 {fmt_s(pct(services['ready'], 95))}"
            f"  teardown p50 {fmt_s(pct(services['teardown'], 50))}   (target p50 <= {TARGET_READY_S} s)"
        )
    gateway = figures.get("gateway")
    if gateway and gateway["ready"]:
        out(
            f"  ... with the network gateway    p50 {fmt_s(pct(gateway['ready'], 50))}  p95 {fmt_s(pct(gateway['ready'], 95))}"
            f"  teardown p50 {fmt_s(pct(gateway['teardown'], 50))}   (target p50 <= {TARGET_READY_S} s)"
        )
    gvisor = figures.get("gvisor")
    if gvisor and gvisor["ready"]:
        runc = f"runc p50 {fmt_s(pct(bare['ready'], 50))}" if bare and bare["ready"] else "runc not measured"
        out(
            f"  bare sandbox under gVisor       p50 {fmt_s(pct(gvisor['ready'], 50))}  p95 {fmt_s(pct(gvisor['ready'], 95))}"
            f"  teardown p50 {fmt_s(pct(gvisor['teardown'], 50))}   ({runc})"
        )
    for mode in ("sequential", "concurrent"):
        if mode in tc and tc[mode]["ready"]:
            tc_p50 = pct(tc[mode]["ready"], 50)
            ratio = tc_p50 / ks_p50 if ks_p50 == ks_p50 and ks_p50 > 0 else float("nan")
            out(
                f"  testcontainers ({mode:<10})    p50 {fmt_s(tc_p50)}  p95 {fmt_s(pct(tc[mode]['ready'], 95))}"
                f"  ratio tc_p50/keystone_p50 {ratio:5.2f}x   (target >= {TARGET_SPEEDUP:g}x)"
            )
    for note in tc.get("notes", []):
        out(f"    testcontainers: {note}")
    reset = figures.get("reset")
    if reset and reset["renew"]:
        both = [a + b for a, b in zip(reset["renew"], reset["check"], strict=True)]
        out(
            f"  renewed for the next replica    p50 {fmt_s(pct(both, 50))}  p95 {fmt_s(pct(both, 95))}"
            f"   (reset + fixture + state check, off the replica's path; vs create -> ready above)"
        )
    warm = figures.get("warm")
    if warm:
        tc_ready: list[float] = next(
            (tc[mode]["ready"] for mode in ("sequential", "concurrent") if tc.get(mode, {}).get("ready")), []
        )
        speedup = f"{pct(tc_ready, 50) / pct(warm, 50):.0f}x" if tc_ready and pct(warm, 50) > 0 else "n/a"
        out(
            f"  from the warm pool              p50 {fmt_s(pct(warm, 50))}  p95 {fmt_s(pct(warm, 95))}"
            f"   ratio tc_p50/warm_p50 {speedup}   (target p50 <= {TARGET_WARM_S} s, >= 30x)"
        )
    for run, row in figures.get("replicas", {}).items():
        out(
            f"  refund-agent x{row.get('n', 0):<3} {run}  wall {row['wall']:6.2f} s  "
            f"{row['per_min']:5.1f} replicas/min  pass {row['passed']}/{row.get('n', 0)}  mean boot {row['boot_ms']:.0f} ms"
        )


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10, help="measured runs per section (default 10)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="unmeasured warm-up runs per section (default 1)"
    )
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}")
    parser.add_argument(
        "--tc-mode",
        choices=("sequential", "concurrent", "both"),
        default="both",
        help="how testcontainers starts the two containers (default both)",
    )
    parser.add_argument(
        "--tc-poll-interval",
        type=float,
        default=None,
        help="override testcontainers' wait-strategy poll interval (default: its own, 1 s)",
    )
    parser.add_argument(
        "--replica-runs",
        default="2,4",
        help="engine concurrencies to run, comma list, or 'none' to skip (default 2,4)",
    )
    parser.add_argument("--replicas", type=int, default=20, help="replicas per engine run (default 20)")
    args = parser.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    text = args.replica_runs.strip().lower()
    args.concurrencies = [] if text in ("", "none", "0", "skip") else [int(c) for c in text.split(",")]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    backend = BenchBackend()
    client = backend.client
    cleanup = Cleanup(client, backend.owner)
    atexit.register(cleanup.sweep)  # runs after the engine's worker threads are joined
    # Registry pulls fail here; the resolver substitutes Keystone's local images (resolution is not timed).
    resolver = ImageResolver(client, allow_pull=False)
    figures: dict[str, Any] = {}
    interrupted = False
    started = time.perf_counter()
    try:
        out(
            f"keystone boot benchmark {BENCH_ID}: {args.runs} measured runs after {args.warmup} warm-up run(s) each"
        )
        out()
        machine_facts(client, backend.owner)
        if "bare" in args.sections:
            figures["bare"] = bench_bare(backend, resolver, cleanup, args.runs, args.warmup)
        if "services" in args.sections:
            figures["services"] = bench_services(backend, resolver, cleanup, args.runs, args.warmup)
        if "gateway" in args.sections:
            figures["gateway"] = bench_services(
                backend, resolver, cleanup, args.runs, args.warmup, network=GATEWAY_POLICY
            )
        if "gvisor" in args.sections:
            figures["gvisor"] = bench_gvisor(backend, resolver, cleanup, args.runs, args.warmup)
        if "reset" in args.sections:
            figures["reset"] = bench_reset(backend, resolver, cleanup, args.runs, args.warmup)
        if "warm" in args.sections:
            figures["warm"] = bench_warm(backend, resolver, args.runs, args.warmup)
        if "testcontainers" in args.sections:
            modes = ["sequential", "concurrent"] if args.tc_mode == "both" else [args.tc_mode]
            figures["testcontainers"] = bench_testcontainers(
                client, resolver, cleanup, args.runs, args.warmup, modes, args.tc_poll_interval
            )
        if "replicas" in args.sections and args.concurrencies:
            rows = bench_replicas(backend, resolver, args.concurrencies, args.replicas)
            figures["replicas"] = {c: {**row, "n": args.replicas} for c, row in rows.items()}
        summary(figures)
        out(f"  load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min)")
    except KeyboardInterrupt:
        interrupted = True
        out("\ninterrupted: removing every container this benchmark started ...")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not abort the cleanup
        BenchBackend.stopping.set()
        containers, networks = cleanup.sweep()
        if containers or networks:
            out(f"cleanup: removed {containers} leftover container(s) and {networks} network(s)")
        out(f"cleanup: done; total benchmark time {time.perf_counter() - started:.0f} s")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
