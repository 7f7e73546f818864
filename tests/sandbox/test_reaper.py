"""The reaper against a real engine: sandboxes whose owner is gone (its reaper container stopped) or whose
expiry passed are removed, live ones are kept; an engine SIGKILLed mid-run leaves nothing behind, as its
reaper removes its sandboxes; two engines with the same hostname and the same pid never reap each other.

The engine is shared with whoever else runs sandboxes on this machine, so the reaps that would remove
live sandboxes (`everything=True`, a clock moved forward) go through a client that only lists this
test's run; the reaps that remove orphans only run unscoped, as `ks cleanup` does."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import docker
import docker.errors
import pytest
from docker.models.containers import ContainerCollection

from polarity_keystone.sandbox import DockerBackend, DockerSandbox, SandboxPlan, ServiceContainer, _reaper
from polarity_keystone.sandbox import _labels as labels
from polarity_keystone.sandbox import _lease as lease
from polarity_keystone.spec import Service
from tests.waiting import wait_until

pytestmark = pytest.mark.docker

CACHE = Service(name="cache", image="redis:7")
REAPED_WITHIN_S = 10.0


class _RunScoped:
    """A collection whose `list` also filters on one run's label."""

    def __init__(self, collection: Any, run_id: str) -> None:
        self._collection = collection
        self._run_id = run_id

    def list(self, *args: Any, filters: dict[str, Any] | None = None, **kwargs: Any) -> list[Any]:
        filters = dict(filters or {})
        label = filters.get("label", [])
        filters["label"] = [*([label] if isinstance(label, str) else label), f"{labels.RUN}={self._run_id}"]
        return list(self._collection.list(*args, filters=filters, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)


class RunScopedClient:
    """A Docker client that only sees one run's containers and networks."""

    def __init__(self, client: docker.DockerClient, run_id: str) -> None:
        self.api = client.api
        self.containers = _RunScoped(client.containers, run_id)
        self.networks = _RunScoped(client.networks, run_id)


class _ApiListingStale:
    """The low-level API, with containers listed that are already gone by the time they are inspected
    (what happens when another engine destroys a sandbox while the reaper lists)."""

    def __init__(self, api: docker.APIClient, stale_ids: list[str]) -> None:
        self._api = api
        self._stale = stale_ids

    def containers(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return [*({"Id": stale} for stale in self._stale), *self._api.containers(*args, **kwargs)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)


class RacingClient:
    def __init__(self, client: docker.DockerClient, run_id: str, stale_ids: list[str]) -> None:
        self.api = _ApiListingStale(client.api, stale_ids)
        self.containers = _RunScoped(ContainerCollection(client=self), run_id)
        self.networks = _RunScoped(client.networks, run_id)


def _reaper_runs(client: docker.DockerClient, owner: str) -> bool:
    selector = {"label": [f"{labels.OWNER}={owner}", f"{labels.ROLE}={labels.REAPER_ROLE}"]}
    return bool(client.containers.list(filters=selector))


@pytest.fixture
def other_owner(backend: DockerBackend) -> Iterator[str]:
    """A live owner besides this process: another engine on the same Docker engine, its reaper running."""
    owner = labels.new_owner_id()
    held = lease.hold(backend.client, owner)
    yield owner
    held.release()


@pytest.fixture
def end_owner(backend: DockerBackend) -> Callable[[DockerSandbox], None]:
    """Ends a sandbox's owner and its reaper at once, the reaper without removing anything (an engine
    restart, a lost machine): what only another process's start-up reap cleans up."""

    def end(sandbox: DockerSandbox) -> None:
        owner = sandbox.labels[labels.OWNER]
        selector = {"label": [f"{labels.OWNER}={owner}", f"{labels.ROLE}={labels.REAPER_ROLE}"]}
        for reaper in backend.client.containers.list(filters=selector):
            reaper.kill()
        wait_until(lambda: not _reaper_runs(backend.client, owner), REAPED_WITHIN_S, "the reaper stopped")

    return end


@pytest.fixture
def boot(
    backend: DockerBackend, base_image: str, service_plan: Callable[[Service], ServiceContainer], run_id: str
) -> Iterator[Callable[..., DockerSandbox]]:
    """Boots agent + Redis sandboxes of this test's run for a given owner; destroys them afterwards."""
    booted: list[DockerSandbox] = []

    def make(owner: str, timeout_s: float = 600.0, keep: bool = False) -> DockerSandbox:
        engine = DockerBackend(backend.client, owner=owner)
        plan = SandboxPlan(
            spec_id="reaper",
            run_id=run_id,
            image=base_image,
            services=[service_plan(CACHE)],
            timeout_s=timeout_s,
            keep=keep,
        )
        sandbox = engine.create(plan)
        booted.append(sandbox)
        return sandbox

    yield make
    for sandbox in booted:
        sandbox.destroy()


def _present(client: docker.DockerClient, sandbox: DockerSandbox) -> tuple[int, int]:
    selector = {"label": f"{labels.SANDBOX}={sandbox.id}"}
    containers = client.containers.list(all=True, filters=selector, ignore_removed=True)
    return len(containers), len(client.networks.list(filters=selector))


def test_the_owner_id_is_unique_to_the_process_not_only_its_host_and_pid() -> None:
    unique, _, host_and_pid = labels.owner_id().partition("@")
    assert host_and_pid == f"{socket.gethostname()}/{os.getpid()}"
    assert len(unique) == 16
    assert labels.owner_id() == labels.owner_id() != labels.new_owner_id()
    assert labels.leased(labels.owner_id())


def test_an_owner_gone_with_its_reaper_is_reaped_at_start_up(
    backend: DockerBackend, boot: Callable[..., DockerSandbox], end_owner: Callable[[DockerSandbox], None]
) -> None:
    orphan = boot(labels.new_owner_id())
    assert _present(backend.client, orphan) == (2, 1)
    end_owner(orphan)

    removed = backend.reap()

    assert orphan.id in removed
    assert _present(backend.client, orphan) == (0, 0)


def test_an_older_keystones_sandbox_is_left_to_its_expiry(
    backend: DockerBackend, boot: Callable[..., DockerSandbox], end_owner: Callable[[DockerSandbox], None]
) -> None:
    """Owners `<host>/<pid>/<start time>` had no reaper: alive or not, nobody can tell, so only expiry
    removes their sandboxes (no pid is looked up)."""
    older = boot(f"{socket.gethostname()}/{os.getpid()}/1")
    end_owner(older)

    assert older.id not in backend.reap()
    assert _present(backend.client, older) == (2, 1)


def test_a_live_owners_sandbox_is_kept_and_its_reaper_removes_it_when_the_owner_goes(
    backend: DockerBackend, boot: Callable[..., DockerSandbox], other_owner: str
) -> None:
    owned = boot(other_owner)
    mine = boot(backend.owner)

    removed = backend.reap(everything=False)

    for sandbox in (owned, mine):
        assert sandbox.id not in removed, (sandbox.labels[labels.OWNER], backend.owner)
        assert _present(backend.client, sandbox) == (2, 1)
    assert owned.exec("redis-cli -h cache ping").stdout.strip() == "PONG"
    assert _reaper_runs(backend.client, other_owner), "a live owner's reaper is never reaped"

    lease.hold(backend.client, other_owner).release()  # the connection ends, as at the owner's exit

    wait_until(lambda: _present(backend.client, owned) == (0, 0), REAPED_WITHIN_S, "its sandbox removed")
    wait_until(lambda: not _reaper_runs(backend.client, other_owner), REAPED_WITHIN_S, "the reaper gone")
    assert _present(backend.client, mine) == (2, 1)


def test_an_expired_sandbox_is_reaped(
    backend: DockerBackend, boot: Callable[..., DockerSandbox], run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = boot(backend.owner, timeout_s=600)
    long = boot(backend.owner, timeout_s=7200)
    scoped = DockerBackend(RunScopedClient(backend.client, run_id))  # type: ignore[arg-type]
    assert scoped.reap() == []

    # Twenty minutes later, as the reaper sees it: past the short one's timeout (+ its grace minute).
    later = time.time() + 20 * 60
    monkeypatch.setattr(labels, "time", types.SimpleNamespace(time=lambda: later))
    removed = scoped.reap()

    assert removed == [short.id]
    assert _present(backend.client, short) == (0, 0)
    assert _present(backend.client, long) == (2, 1)


def test_a_kept_sandbox_outlives_its_owner_until_it_expires(
    backend: DockerBackend,
    boot: Callable[..., DockerSandbox],
    run_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`--keep` leaves a sandbox to inspect after the engine exits; neither the owner's reaper nor a
    start-up reap removes it; it goes once its expiry passes."""
    owner = labels.new_owner_id()
    kept = boot(owner, keep=True)
    lease.hold(backend.client, owner).release()
    wait_until(lambda: not _reaper_runs(backend.client, owner), REAPED_WITHIN_S, "the reaper gone")

    assert kept.id not in backend.reap()
    assert _present(backend.client, kept) == (2, 1)

    later = time.time() + 20 * 60
    monkeypatch.setattr(labels, "time", types.SimpleNamespace(time=lambda: later))
    scoped = DockerBackend(RunScopedClient(backend.client, run_id))  # type: ignore[arg-type]
    assert scoped.reap() == [kept.id]
    assert _present(backend.client, kept) == (0, 0)


def test_a_reaper_being_started_keeps_its_owner_alive_and_one_never_started_goes(
    backend: DockerBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process's start-up reap between an owner creating its reaper and starting it (issue 17)."""
    starting = lease._start_reaper(backend.client, labels.new_owner_id())  # created, not started
    try:
        backend.reap()
        assert backend.client.api.inspect_container(starting)["State"]["Status"] == "created"

        later = time.time() + _reaper.STARTING_S + 1
        monkeypatch.setattr(_reaper, "time", types.SimpleNamespace(time=lambda: later))
        backend.reap()
        with pytest.raises(docker.errors.NotFound):
            backend.client.api.inspect_container(starting)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            backend.client.api.remove_container(starting, force=True)


def test_reap_everything_removes_live_sandboxes_too_but_not_live_reapers(
    backend: DockerBackend, boot: Callable[..., DockerSandbox], run_id: str, other_owner: str
) -> None:
    mine = boot(backend.owner)
    elsewhere = boot(other_owner)
    scoped = DockerBackend(RunScopedClient(backend.client, run_id))  # type: ignore[arg-type]

    removed = scoped.reap(everything=True)

    assert removed == sorted([mine.id, elsewhere.id])
    assert _present(backend.client, mine) == (0, 0)
    assert _present(backend.client, elsewhere) == (0, 0)
    assert _reaper_runs(backend.client, other_owner)


def test_a_port_keeper_is_never_reaped_it_ends_with_its_process() -> None:
    """Removed by a reap, a keeper could not delete its server's port rule when the server ends."""
    keeper = {labels.MANAGED: "true", labels.ROLE: labels.PORT_KEEPER_ROLE}

    assert not _reaper._orphaned(keeper, set(), everything=True)
    assert not _reaper._orphaned({**keeper, labels.EXPIRES: "1"}, set(), everything=False)


def test_reap_survives_a_container_removed_while_it_lists(
    backend: DockerBackend,
    boot: Callable[..., DockerSandbox],
    end_owner: Callable[[DockerSandbox], None],
    run_id: str,
    base_image: str,
) -> None:
    """Another engine destroying its sandbox while `ks cleanup` (or an engine's start-up reap) lists
    containers must not crash the reap."""
    orphan = boot(labels.new_owner_id())
    end_owner(orphan)
    gone = backend.client.containers.create(base_image, ["true"])
    gone.remove(force=True)
    racing = DockerBackend(RacingClient(backend.client, run_id, [gone.id]))  # type: ignore[arg-type]

    removed = racing.reap()

    assert orphan.id in removed
    assert _present(backend.client, orphan) == (0, 0)


_ENGINE = textwrap.dedent(
    """
    import sys, time
    from polarity_keystone.sandbox import DockerBackend, SandboxPlan
    from polarity_keystone.services import kind_of
    from polarity_keystone.spec import Service

    run_id, agent_image, redis_image = sys.argv[1:4]
    cache = Service(name="cache", image="redis:7")
    plan = SandboxPlan(
        spec_id="crash", run_id=run_id, image=agent_image,
        services=[kind_of(cache).container(cache, redis_image, local_image=True)],
    )
    backend = DockerBackend()
    print("reaped", backend.reap(), flush=True)
    sandbox = backend.create(plan)
    print("ready", sandbox.id, backend.owner, flush=True)
    time.sleep(600)
    """
)


class Engine:
    """A process that reaps, boots one sandbox of `run_id` and sleeps; optionally PID 1 of its own pid
    namespace (as in a container), with this machine's hostname."""

    def __init__(self, run_id: str, base_image: str, redis_image: str, *, own_pid_namespace: bool) -> None:
        command = [sys.executable, "-c", _ENGINE, run_id, base_image, redis_image]
        if own_pid_namespace:
            command = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", *command]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output: list[str] = []

    def wait_ready(self) -> tuple[str, str]:
        """(sandbox id, owner) once its sandbox is up."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if line.startswith("ready "):
                _, sandbox_id, owner = line.split()
                return sandbox_id, owner
        self.process.wait()
        pytest.fail(f"the engine exited {self.process.returncode} before booting:\n{''.join(self.output)}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def engines(
    backend: DockerBackend,
    base_image: str,
    service_plan: Callable[[Service], ServiceContainer],
    run_id: str,
) -> Iterator[Callable[..., Engine]]:
    started: list[Engine] = []
    redis_image = service_plan(CACHE).image

    def start(*, own_pid_namespace: bool = False) -> Engine:
        engine = Engine(run_id, base_image, redis_image, own_pid_namespace=own_pid_namespace)
        started.append(engine)
        return engine

    yield start
    for engine in started:
        engine.stop()
    DockerBackend(RunScopedClient(backend.client, run_id)).reap(everything=True)  # type: ignore[arg-type]


def test_a_sigkilled_engines_sandbox_is_removed_by_its_reaper(
    backend: DockerBackend, engines: Callable[..., Engine], run_id: str, of_run: Callable[..., Any]
) -> None:
    engine = engines()
    sandbox_id, owner = engine.wait_ready()
    assert len(of_run(backend.client, run_id).containers) == 2

    engine.process.send_signal(signal.SIGKILL)
    engine.stop()
    assert engine.process.returncode == -signal.SIGKILL

    wait_until(lambda: not of_run(backend.client, run_id), REAPED_WITHIN_S, f"sandbox {sandbox_id} removed")
    wait_until(lambda: not _reaper_runs(backend.client, owner), REAPED_WITHIN_S, "the reaper gone")


@pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) makes the pid namespaces")
def test_two_engines_with_the_same_hostname_and_pid_never_reap_each_other(
    backend: DockerBackend, engines: Callable[..., Engine], run_id: str, of_run: Callable[..., Any]
) -> None:
    """Both PID 1 of their own pid namespace on this host, as `ks` is in two containers sharing the host's
    hostname (`--network host`): the second one's start-up reap keeps the first one's live sandbox."""
    first_id, first_owner = engines(own_pid_namespace=True).wait_ready()
    second = engines(own_pid_namespace=True)
    second_id, second_owner = second.wait_ready()

    same_host_and_pid = f"@{socket.gethostname()}/1"
    assert first_owner.endswith(same_host_and_pid) and second_owner.endswith(same_host_and_pid)
    assert first_owner != second_owner
    assert first_id not in "".join(second.output)
    left = {c.labels[labels.SANDBOX] for c in of_run(backend.client, run_id).containers}
    assert left == {first_id, second_id}
