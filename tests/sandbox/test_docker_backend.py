"""The Docker backend against a real engine: what `create` returns, commands and files in the agent
container, the workspace snapshot and diff, services on the sandbox's private network, isolation,
limits, labels, teardown and boot failures.

One sandbox (agent + Postgres + Redis) is shared by the tests that only read it or write under their
own directory; tests whose behaviour needs a sandbox of their own boot one."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import docker
import pytest

from polarity_keystone.sandbox import (
    BootEvent,
    DockerBackend,
    DockerSandbox,
    FixtureError,
    FixtureStep,
    Sandbox,
    SandboxBootError,
    SandboxError,
    SandboxPlan,
    SandboxStatus,
    ServiceContainer,
    ServiceEndpoint,
)
from polarity_keystone.sandbox import _labels as labels
from polarity_keystone.services import SqlError, postgres
from polarity_keystone.spec import Service

pytestmark = pytest.mark.docker

DB = Service(name="db", image="postgres:16")
CACHE = Service(name="cache", image="redis:7")
CPU = 1.5
MEMORY = 768 * 1024**2
TIMEOUT_S = 900.0

PlanService = Callable[[Service], ServiceContainer]


def _run_id() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@dataclass
class Booted:
    sandbox: DockerSandbox
    run_id: str
    state_at_create: SandboxStatus
    events: list[BootEvent] = field(default_factory=list)


def _seed(sandbox: Sandbox) -> None:
    postgres.run_sql(
        sandbox,
        DB,
        "create table accounts(id int primary key, name text);"
        "insert into accounts values (1, 'ada'), (2, 'grace');",
    )
    sandbox.write_file("diffcase/keep.txt", b"keep\n")
    sandbox.write_file("diffcase/change.txt", b"before\n")
    sandbox.write_file("diffcase/gone.txt", b"soon gone\n")
    sandbox.write_file("diffcase/mode.sh", b"echo hi\n", 0o644)


@pytest.fixture(scope="module")
def booted(backend: DockerBackend, base_image: str, service_plan: PlanService) -> Iterator[Booted]:
    events: list[BootEvent] = []
    run_id = _run_id()
    plan = SandboxPlan(
        spec_id="backend-conformance",
        run_id=run_id,
        image=base_image,
        services=[service_plan(DB), service_plan(CACHE)],
        fixtures=[FixtureStep(_seed, "seed: rows and workspace files")],
        env={"KS_GREETING": "hello"},
        cpu=CPU,
        memory_bytes=MEMORY,
        timeout_s=TIMEOUT_S,
    )
    sandbox = backend.create(plan, on_event=events.append)
    try:
        yield Booted(sandbox, run_id, sandbox.state, events)
    finally:
        sandbox.destroy()


@pytest.fixture(scope="module")
def sandbox(booted: Booted) -> DockerSandbox:
    return booted.sandbox


@pytest.fixture(scope="module")
def isolated(backend: DockerBackend, base_image: str, service_plan: PlanService) -> Iterator[DockerSandbox]:
    """A second sandbox with egress denied and a Postgres service of the same name as the first one's."""
    plan = SandboxPlan(
        spec_id="backend-isolated",
        run_id=_run_id(),
        image=base_image,
        services=[service_plan(DB)],
        egress_allowed=False,
    )
    sandbox = backend.create(plan)
    try:
        yield sandbox
    finally:
        sandbox.destroy()


def _containers(client: docker.DockerClient, sandbox: Sandbox) -> list[docker.models.containers.Container]:
    selector = {"label": f"{labels.SANDBOX}={sandbox.id}"}
    return client.containers.list(all=True, filters=selector, ignore_removed=True)


def _network_attrs(client: docker.DockerClient, sandbox: DockerSandbox) -> dict[str, object]:
    return dict(client.networks.get(sandbox.network.id).attrs)


# --- create ----------------------------------------------------------------------------------------


def test_create_returns_a_ready_sandbox_with_its_services(booted: Booted) -> None:
    sandbox = booted.sandbox
    assert booted.state_at_create is SandboxStatus.READY
    assert set(sandbox.services) == {"db", "cache"}
    db, cache = sandbox.services["db"], sandbox.services["cache"]
    assert isinstance(db, ServiceEndpoint)
    assert (db.name, db.kind, db.host, db.port, db.ready) == ("db", "postgres", "db", 5432, True)
    assert (cache.name, cache.kind, cache.host, cache.port, cache.ready) == (
        "cache",
        "redis",
        "cache",
        6379,
        True,
    )
    assert db.url == "postgres://postgres@db:5432/postgres"
    assert cache.url == "redis://cache:6379/0"
    described = sandbox.describe()
    assert described["id"] == sandbox.id
    assert described["services"] == {
        "db": {"host": "db", "port": 5432, "ready": True},
        "cache": {"host": "cache", "port": 6379, "ready": True},
    }
    assert described["metadata"][labels.RUN] == booted.run_id


def test_boot_reports_each_pipeline_step_in_order(booted: Booted) -> None:
    steps = [event.step for event in booted.events]
    pipeline = ["network", "services", "fixtures", "snapshot", "ready"]
    assert [step for step in steps if step in pipeline] == pipeline
    assert steps[-1] == "ready"
    assert {event.sandbox_id for event in booted.events} == {booted.sandbox.id}
    elapsed = [event.elapsed_ms for event in booted.events]
    assert elapsed == sorted(elapsed)


# --- exec ------------------------------------------------------------------------------------------


def test_exec_runs_from_workspace_with_env_and_separate_streams(sandbox: DockerSandbox) -> None:
    result = sandbox.exec('pwd; echo "$KS_GREETING $EXTRA"; echo oops >&2; exit 3', env={"EXTRA": "world"})
    assert result.exit_code == 3
    assert result.stdout == "/workspace\nhello world\n"
    assert result.stderr == "oops\n"
    assert result.timed_out is False
    assert sandbox.state is SandboxStatus.RUNNING


def test_exec_takes_an_argv_and_a_workdir(sandbox: DockerSandbox) -> None:
    argv = sandbox.exec(["python3", "-c", "import os, sys; print(os.getcwd(), sys.argv[1:])", "a b", "$HOME"])
    assert argv.exit_code == 0
    assert argv.stdout == "/workspace ['a b', '$HOME']\n"
    elsewhere = sandbox.exec("pwd", workdir="/tmp")
    assert elsewhere.stdout == "/tmp\n"
    silent = sandbox.exec("true")
    assert (silent.exit_code, silent.stdout, silent.stderr) == (0, "", "")


def test_exec_timeout_kills_the_command(sandbox: DockerSandbox) -> None:
    started = time.monotonic()
    result = sandbox.exec("sleep 30", timeout=1)
    assert result.timed_out is True
    assert result.exit_code != 0
    assert result.duration_ms < 10_000
    assert time.monotonic() - started < 10
    processes = sandbox.exec(["sh", "-c", "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done"])
    assert "sleep 30" not in processes.stdout


def test_a_command_exiting_124_on_its_own_is_not_a_timeout(sandbox: DockerSandbox) -> None:
    result = sandbox.exec("exit 124", timeout=20)
    assert result.exit_code == 124
    assert result.timed_out is False


# --- files -----------------------------------------------------------------------------------------


def test_write_and_read_round_trip_through_nested_directories(sandbox: DockerSandbox) -> None:
    content = bytes(range(256)) * 3
    sandbox.write_file("roundtrip/a/b/c/data.bin", content)
    assert sandbox.read_file("roundtrip/a/b/c/data.bin") == content
    assert sandbox.read_file("/workspace/roundtrip/a/b/c/data.bin") == content
    assert sandbox.exec(["test", "-f", "/workspace/roundtrip/a/b/c/data.bin"]).exit_code == 0

    sandbox.write_file("roundtrip/a/b/c/data.bin", b"replaced")
    assert sandbox.read_file("roundtrip/a/b/c/data.bin") == b"replaced"

    sandbox.write_file("/tmp/keystone-test/outside.txt", b"outside the workspace")
    assert sandbox.read_file("/tmp/keystone-test/outside.txt") == b"outside the workspace"


def test_reading_a_missing_file_raises_file_not_found(sandbox: DockerSandbox) -> None:
    with pytest.raises(FileNotFoundError):
        sandbox.read_file("no/such/file.txt")
    with pytest.raises(FileNotFoundError):
        sandbox.read_file("/definitely/not/here")


def test_delete_file_removes_it_and_is_idempotent(sandbox: DockerSandbox) -> None:
    sandbox.write_file("deleteme/file.txt", b"x")
    sandbox.delete_file("deleteme/file.txt")
    with pytest.raises(FileNotFoundError):
        sandbox.read_file("deleteme/file.txt")
    sandbox.delete_file("deleteme/file.txt")


def test_copy_in_copies_a_local_directory_tree(sandbox: DockerSandbox, tmp_path) -> None:
    source = tmp_path / "project"
    (source / "sub" / "deeper").mkdir(parents=True)
    (source / "top.txt").write_text("top\n")
    (source / "sub" / "inner.txt").write_text("inner\n")
    (source / "sub" / "deeper" / "run.sh").write_text("#!/bin/sh\necho ran\n")
    (source / "sub" / "deeper" / "run.sh").chmod(0o755)

    sandbox.copy_in(str(source), "imported/here")

    assert sandbox.read_file("imported/here/top.txt") == b"top\n"
    assert sandbox.read_file("imported/here/sub/inner.txt") == b"inner\n"
    assert sandbox.exec("./imported/here/sub/deeper/run.sh").stdout == "ran\n"
    assert sandbox.exec(["test", "-e", "imported/here/project"]).exit_code != 0  # contents, not the dir

    sandbox.copy_in(str(source / "sub"), "/opt/elsewhere")
    assert sandbox.read_file("/opt/elsewhere/inner.txt") == b"inner\n"


# --- workspace state and diff -----------------------------------------------------------------------


def test_workspace_snapshot_lists_files_with_size_mode_and_checksum(sandbox: DockerSandbox) -> None:
    report = b"hello state\n"
    sandbox.write_file("state/report.txt", report, 0o640)
    sandbox.write_file("state/with space.txt", b"", 0o600)
    sandbox.write_file("state/tool", b"#!/bin/sh\n", 0o755)

    state = sandbox.workspace_snapshot()

    datetime.fromisoformat(state.captured_at)
    info = state.files["state/report.txt"]
    assert info.size == len(report)
    assert info.mode == "640"
    assert info.checksum == hashlib.sha256(report).hexdigest()
    empty = state.files["state/with space.txt"]
    assert (empty.size, empty.mode, empty.checksum) == (0, "600", hashlib.sha256(b"").hexdigest())
    assert state.files["state/tool"].mode == "755"
    assert "state" not in state.files  # directories are not files


def test_diff_shows_changes_since_the_boot_snapshot(sandbox: DockerSandbox) -> None:
    sandbox.write_file("diffcase/keep.txt", b"keep\n")  # same content again: not a change
    sandbox.write_file("diffcase/change.txt", b"after\n")
    sandbox.delete_file("diffcase/gone.txt")
    sandbox.write_file("diffcase/new/added.txt", b"new\n")
    assert sandbox.exec("chmod 755 diffcase/mode.sh").exit_code == 0

    diff = sandbox.diff()

    def scoped(paths: list[str]) -> list[str]:
        return [path for path in paths if path.startswith("diffcase/")]

    assert scoped(diff.added) == ["diffcase/new/added.txt"]
    assert scoped(diff.removed) == ["diffcase/gone.txt"]
    assert scoped(diff.modified) == ["diffcase/change.txt", "diffcase/mode.sh"]
    assert scoped(diff.written) == [
        "diffcase/change.txt",
        "diffcase/gone.txt",
        "diffcase/mode.sh",
        "diffcase/new/added.txt",
    ]


# --- services and the network ------------------------------------------------------------------------


def test_services_are_reachable_from_the_agent_by_name(sandbox: DockerSandbox) -> None:
    db = sandbox.services["db"]
    rows = sandbox.exec(
        f"psql -h {db.host} -p {db.port} -U postgres -tA -c 'select name from accounts order by id'"
    )
    assert rows.exit_code == 0, rows.stderr
    assert rows.stdout.split() == ["ada", "grace"]
    cache = sandbox.services["cache"]
    pong = sandbox.exec(f"redis-cli -h {cache.host} -p {cache.port} ping")
    assert pong.exit_code == 0, pong.stderr
    assert pong.stdout.strip() == "PONG"


def test_service_exec_runs_inside_the_service_container(sandbox: DockerSandbox) -> None:
    result = sandbox.service_exec("cache", ["redis-cli", "set", "greeting", "hi"])
    assert result.stdout.strip() == "OK"
    assert sandbox.exec("redis-cli -h cache get greeting").stdout.strip() == "hi"
    with pytest.raises(SandboxError, match="no service 'nope'"):
        sandbox.service_exec("nope", ["true"])


def test_two_sandboxes_cannot_see_each_others_services(
    backend: DockerBackend, sandbox: DockerSandbox, isolated: DockerSandbox
) -> None:
    # Each sandbox's `db` is its own database: the other sandbox's table is not there.
    assert postgres.query(isolated, DB, "select to_regclass('accounts') is null") == [["t"]]
    assert isolated.exec("psql -h db -U postgres -tA -c 'select 1'").stdout.strip() == "1"
    # The other sandbox's containers do not resolve, neither by alias nor by container name.
    for name in (f"keystone-{isolated.id}-db", f"keystone-{isolated.id}-agent"):
        lookup = sandbox.exec(["getent", "hosts", name], timeout=20)
        assert lookup.exit_code != 0, lookup.stdout
    # Their db listens in their agent's network namespace (see split_services): that address is theirs.
    theirs = backend.client.containers.get(f"keystone-{isolated.id}-agent")
    their_ip = theirs.attrs["NetworkSettings"]["Networks"][isolated.network.name]["IPAddress"]
    ours = sandbox.exec(["getent", "hosts", "db"]).stdout.split()[0]
    assert ours != their_ip
    # ... and are not reachable by address either.
    probe = f"import socket; socket.create_connection(({their_ip!r}, 5432), timeout=2)"
    reach = sandbox.exec(["python3", "-c", probe], timeout=20)
    assert reach.exit_code != 0


def test_nothing_is_published_on_the_host(backend: DockerBackend, sandbox: DockerSandbox) -> None:
    containers = _containers(backend.client, sandbox)
    assert len(containers) == 3
    for container in containers:
        host_config = container.attrs["HostConfig"]
        assert not host_config.get("PortBindings"), container.name
        assert not host_config.get("PublishAllPorts"), container.name
        assert host_config.get("NetworkMode") != "host", container.name
        published = container.attrs["NetworkSettings"].get("Ports") or {}
        assert all(not bindings for bindings in published.values()), (container.name, published)


def test_cpu_and_memory_limits_are_applied_to_the_agent(
    backend: DockerBackend, sandbox: DockerSandbox
) -> None:
    assert sandbox.agent is not None
    host_config = backend.client.containers.get(sandbox.agent.id).attrs["HostConfig"]
    assert host_config["NanoCpus"] == int(CPU * 1e9)
    assert host_config["Memory"] == MEMORY
    assert "no-new-privileges" in (host_config.get("SecurityOpt") or [])


def test_every_container_and_the_network_carry_the_keystone_labels(
    backend: DockerBackend, booted: Booted
) -> None:
    sandbox = booted.sandbox
    containers = _containers(backend.client, sandbox)
    network_labels = _network_attrs(backend.client, sandbox)["Labels"]
    labelled = [(c.name, c.labels) for c in containers] + [(sandbox.network.name, network_labels)]
    now = time.time()
    for name, found in labelled:
        assert found[labels.MANAGED] == "true", name
        assert found[labels.SANDBOX] == sandbox.id, name
        assert found[labels.RUN] == booted.run_id, name
        assert found[labels.SPEC] == "backend-conformance", name
        assert found[labels.OWNER] == backend.owner, name
        assert now < int(found[labels.EXPIRES]) <= now + TIMEOUT_S + 120, name
    assert sorted(c.labels[labels.ROLE] for c in containers) == ["agent", "service", "service"]
    services = sorted(c.labels[labels.SERVICE] for c in containers if c.labels[labels.ROLE] == "service")
    assert services == ["cache", "db"]


def test_egress_denied_makes_the_network_internal(
    backend: DockerBackend, sandbox: DockerSandbox, isolated: DockerSandbox
) -> None:
    assert _network_attrs(backend.client, isolated)["Internal"] is True
    assert _network_attrs(backend.client, sandbox)["Internal"] is False


# --- teardown ----------------------------------------------------------------------------------------


def test_destroy_removes_every_container_and_the_network_and_is_idempotent(
    backend: DockerBackend, base_image: str, service_plan: PlanService, of_sandbox
) -> None:
    sandbox = backend.create(
        SandboxPlan(spec_id="destroy", run_id=_run_id(), image=base_image, services=[service_plan(CACHE)])
    )
    try:
        assert sandbox.state is SandboxStatus.READY
        present = of_sandbox(backend.client, sandbox.id)
        assert len(present.containers) == 2
        assert len(present.networks) == 1
        assert sandbox.exec("true").exit_code == 0
        assert sandbox.state is SandboxStatus.RUNNING
    finally:
        sandbox.destroy()
    assert sandbox.state is SandboxStatus.STOPPED
    assert not of_sandbox(backend.client, sandbox.id)
    sandbox.destroy()
    assert sandbox.state is SandboxStatus.STOPPED
    with pytest.raises(SandboxError):
        sandbox.exec("true")
    with pytest.raises(SandboxError):
        sandbox.read_file("anything")


def test_the_resources_timeout_destroys_the_sandbox(
    backend: DockerBackend, base_image: str, of_sandbox
) -> None:
    sandbox = backend.create(SandboxPlan(spec_id="expire", run_id=_run_id(), image=base_image, timeout_s=2))
    try:
        assert sandbox.state is SandboxStatus.READY
        assert sandbox.exec("true").exit_code == 0
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (
            sandbox.state is not SandboxStatus.STOPPED or of_sandbox(backend.client, sandbox.id)
        ):
            time.sleep(0.2)
        assert sandbox.state is SandboxStatus.STOPPED
        assert not of_sandbox(backend.client, sandbox.id)
        with pytest.raises(SandboxError, match=r"reached its timeout \(2s, resources.timeout\)"):
            sandbox.exec("true")
    finally:
        sandbox.destroy()


def test_expire_after_replaces_the_deadline(backend: DockerBackend, base_image: str, of_sandbox) -> None:
    sandbox = backend.create(SandboxPlan(spec_id="expire", run_id=_run_id(), image=base_image, timeout_s=2))
    try:
        sandbox.expire_after(600)  # e.g. extended to inspect it
        time.sleep(3)
        assert sandbox.state is SandboxStatus.READY
        assert sandbox.exec("true").exit_code == 0
        sandbox.expire_after(0.2)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and sandbox.state is not SandboxStatus.STOPPED:
            time.sleep(0.1)
        assert sandbox.state is SandboxStatus.STOPPED
        assert not of_sandbox(backend.client, sandbox.id)
    finally:
        sandbox.destroy()


# --- boot failures -----------------------------------------------------------------------------------


def _boot_failure(backend: DockerBackend, plan: SandboxPlan) -> SandboxBootError:
    """The error `create` raises; a sandbox that boots anyway is destroyed before the test fails."""
    try:
        sandbox = backend.create(plan)
    except SandboxBootError as exc:
        return exc
    sandbox.destroy()
    pytest.fail(f"sandbox {sandbox.id} booted although its plan must fail")


def _sql_fixture(sql: str, label: str) -> FixtureStep:
    """The engine's wrapping of an `sql` fixture (engine/_prepare.py)."""

    def apply(sandbox: Sandbox) -> None:
        try:
            postgres.run_sql(sandbox, DB, sql)
        except SqlError as exc:
            raise FixtureError(str(exc), exc.output) from exc

    return FixtureStep(apply, label, touches_workspace=False)


def test_a_failing_sql_fixture_fails_boot_at_fixtures_and_leaves_nothing(
    backend: DockerBackend, base_image: str, service_plan: PlanService, of_run
) -> None:
    run_id = _run_id()
    plan = SandboxPlan(
        spec_id="bad-fixture",
        run_id=run_id,
        image=base_image,
        services=[service_plan(DB)],
        fixtures=[
            _sql_fixture("create table fine(id int);", "sql fixture on db (schema.sql)"),
            _sql_fixture("create tabel oops(id int);", "sql fixture on db (inline)"),
        ],
    )
    failure = _boot_failure(backend, plan)
    assert failure.step == "fixtures"
    assert "sql fixture on db (inline)" in str(failure), "the error names the failing fixture"
    assert "syntax error" in failure.output
    assert "tabel" in failure.output
    assert failure.sandbox_id.startswith("sb-")
    assert not of_run(backend.client, run_id)


def test_a_fixture_raising_fixture_error_fails_boot_with_its_output(
    backend: DockerBackend, base_image: str, of_run
) -> None:
    def broken(sandbox: Sandbox) -> None:
        raise FixtureError("seeding failed", output="line 3: bad row")

    run_id = _run_id()
    failure = _boot_failure(
        backend,
        SandboxPlan(
            spec_id="bad-fixture",
            run_id=run_id,
            image=base_image,
            fixtures=[FixtureStep(broken, "directory fixture data -> data")],
        ),
    )
    assert failure.step == "fixtures"
    assert "directory fixture data -> data: seeding failed" in str(failure)
    assert failure.output == "line 3: bad row"
    assert not of_run(backend.client, run_id)


def test_a_service_that_exits_at_once_fails_boot_at_services(
    backend: DockerBackend, base_image: str, service_plan: PlanService, of_run
) -> None:
    plan = service_plan(Service(name="broken", image=base_image, command="false"))
    run_id = _run_id()
    failure = _boot_failure(
        backend, SandboxPlan(spec_id="bad-service", run_id=run_id, image=base_image, services=[plan])
    )
    assert failure.step == "services"
    assert "broken" in str(failure)
    assert not of_run(backend.client, run_id)


def test_a_service_that_crashes_right_after_start_fails_boot_at_services(
    backend: DockerBackend, base_image: str, service_plan: PlanService, of_run
) -> None:
    """A generic service without `wait_for` counts as ready once running; one that dies a moment
    later (bad config, missing env) must still fail the boot, not leave a dead `db` behind."""
    crashing = Service(
        name="crashing", image=base_image, command=["sh", "-c", "echo starting; sleep 0.2; exit 3"]
    )
    plan = service_plan(crashing)
    run_id = _run_id()
    failure = _boot_failure(
        backend, SandboxPlan(spec_id="bad-service", run_id=run_id, image=base_image, services=[plan])
    )
    assert failure.step == "services"
    assert "crashing" in str(failure)
    assert "starting" in failure.output
    assert not of_run(backend.client, run_id)
