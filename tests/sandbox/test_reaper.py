"""The reaper against a real engine: sandboxes whose engine died (or whose expiry passed) are removed,
live ones are kept, and the real crash case (an engine SIGKILLed mid-run) leaves nothing behind.

The engine is shared with whoever else runs sandboxes on this machine, so the reaps that would remove
live sandboxes (`everything=True`, a clock moved forward) go through a client that only lists this
test's run; the reaps that remove orphans only run unscoped, as `ks cleanup` does."""

from __future__ import annotations

import signal
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

from polarity_keystone.sandbox import DockerBackend, DockerSandbox, SandboxPlan, ServiceContainer
from polarity_keystone.sandbox import _labels as labels
from polarity_keystone.spec import Service

pytestmark = pytest.mark.docker

CACHE = Service(name="cache", image="redis:7")
FOREIGN_OWNER = "some-other-host/4242/1"
"""An engine on another host: the reaper cannot tell whether it lives, so only expiry reaps it."""


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


@pytest.fixture
def owner_process() -> Iterator[subprocess.Popen[bytes]]:
    """A live process on this host, standing in for an engine."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def dead_owner() -> str:
    """The owner id of an engine process that ran on this host and is gone."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    owner = labels.owner_id(process.pid)
    process.kill()
    process.wait()
    assert not labels.owner_alive(owner)
    return owner


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


def test_a_dead_owners_sandbox_is_reaped(
    backend: DockerBackend, boot: Callable[..., DockerSandbox], dead_owner: str
) -> None:
    orphan = boot(dead_owner)
    assert orphan.labels[labels.OWNER] == dead_owner
    assert _present(backend.client, orphan) == (2, 1)

    removed = backend.reap()

    assert orphan.id in removed
    assert _present(backend.client, orphan) == (0, 0)


def test_a_live_owners_sandbox_is_kept_until_the_owner_dies(
    backend: DockerBackend, boot: Callable[..., DockerSandbox], owner_process: subprocess.Popen[bytes]
) -> None:
    owned = boot(labels.owner_id(owner_process.pid))
    mine = boot(backend.owner)
    elsewhere = boot(FOREIGN_OWNER)

    removed = backend.reap()

    for sandbox in (owned, mine, elsewhere):
        assert sandbox.id not in removed
        assert _present(backend.client, sandbox) == (2, 1)
    assert owned.exec("redis-cli -h cache ping").stdout.strip() == "PONG"

    owner_process.kill()
    owner_process.wait()
    removed = backend.reap()

    assert owned.id in removed
    assert _present(backend.client, owned) == (0, 0)
    assert _present(backend.client, mine) == (2, 1)
    assert _present(backend.client, elsewhere) == (2, 1)


def test_an_expired_sandbox_is_reaped(
    backend: DockerBackend, boot: Callable[..., DockerSandbox], run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = boot(FOREIGN_OWNER, timeout_s=600)
    long = boot(FOREIGN_OWNER, timeout_s=7200)
    scoped = DockerBackend(RunScopedClient(backend.client, run_id))  # type: ignore[arg-type]
    assert scoped.reap() == []

    # Twenty minutes later, as the reaper sees it: past the short one's timeout (+ its grace minute).
    later = time.time() + 20 * 60
    monkeypatch.setattr(labels, "time", types.SimpleNamespace(time=lambda: later))
    removed = scoped.reap()

    assert removed == [short.id]
    assert _present(backend.client, short) == (0, 0)
    assert _present(backend.client, long) == (2, 1)


def test_a_kept_sandbox_outlives_its_engine_until_it_expires(
    backend: DockerBackend,
    boot: Callable[..., DockerSandbox],
    dead_owner: str,
    run_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`--keep` leaves a sandbox to inspect after the engine exits; it goes once its expiry passes."""
    kept = boot(dead_owner, keep=True)

    assert kept.id not in backend.reap()
    assert _present(backend.client, kept) == (2, 1)

    later = time.time() + 20 * 60
    monkeypatch.setattr(labels, "time", types.SimpleNamespace(time=lambda: later))
    scoped = DockerBackend(RunScopedClient(backend.client, run_id))  # type: ignore[arg-type]
    assert scoped.reap() == [kept.id]
    assert _present(backend.client, kept) == (0, 0)


def test_reap_everything_removes_live_sandboxes_too(
    backend: DockerBackend, boot: Callable[..., DockerSandbox], run_id: str
) -> None:
    mine = boot(backend.owner)
    elsewhere = boot(FOREIGN_OWNER)
    scoped = DockerBackend(RunScopedClient(backend.client, run_id))  # type: ignore[arg-type]

    removed = scoped.reap(everything=True)

    assert removed == sorted([mine.id, elsewhere.id])
    assert _present(backend.client, mine) == (0, 0)
    assert _present(backend.client, elsewhere) == (0, 0)


def test_reap_survives_a_container_removed_while_it_lists(
    backend: DockerBackend, boot: Callable[..., DockerSandbox], dead_owner: str, run_id: str, base_image: str
) -> None:
    """Another engine destroying its sandbox while `ks cleanup` (or an engine's start-up reap) lists
    containers must not crash the reap."""
    orphan = boot(dead_owner)
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
    sandbox = DockerBackend().create(plan)
    print("ready", sandbox.id, flush=True)
    time.sleep(600)
    """
)


def test_a_sigkilled_engines_sandbox_is_reaped(
    backend: DockerBackend,
    base_image: str,
    service_plan: Callable[[Service], ServiceContainer],
    run_id: str,
    of_run: Callable[..., Any],
) -> None:
    redis_image = service_plan(CACHE).image
    engine = subprocess.Popen(
        [sys.executable, "-c", _ENGINE, run_id, base_image, redis_image],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while len(of_run(backend.client, run_id).containers) < 2:
            if engine.poll() is not None:
                output = engine.communicate()[0].decode(errors="replace")
                pytest.fail(f"the engine exited {engine.returncode} before booting:\n{output}")
            assert time.monotonic() < deadline, "the engine's containers never appeared"
            time.sleep(0.05)
        engine.send_signal(signal.SIGKILL)
        engine.communicate()
        assert engine.returncode == -signal.SIGKILL
        left = of_run(backend.client, run_id)
        sandbox_ids = {c.labels[labels.SANDBOX] for c in left.containers}
        assert len(sandbox_ids) == 1
        assert len(left.networks) == 1

        removed = backend.reap()

        assert sandbox_ids <= set(removed)
        assert not of_run(backend.client, run_id)
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.communicate()
        DockerBackend(RunScopedClient(backend.client, run_id)).reap(everything=True)  # type: ignore[arg-type]
