"""The Docker backend: a private network per sandbox, service containers, one agent container.

Boot time is dominated by container start, so every container of a sandbox is created and started
concurrently, readiness is read from log lines where the image prints one (no probe process), and
nothing is published on the host.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import posixpath
import secrets
import shlex
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container
from docker.models.networks import Network

from .._jsonl import json_objects
from . import _agent_trust as agent_trust
from . import _gateway as gateway
from . import _labels as labels
from . import _lease as lease
from ._archive import first_file, tar_directory, tar_files
from ._base import (
    ROOT,
    AgentUser,
    BootEvent,
    BootListener,
    ExecResult,
    FileInfo,
    FixtureError,
    FixtureStep,
    NetworkPolicy,
    ResetServices,
    Sandbox,
    SandboxBackend,
    SandboxBootError,
    SandboxError,
    SandboxPlan,
    SandboxStatus,
    ServiceEndpoint,
    SettleReport,
    WorkspaceDiff,
    WorkspaceSnapshot,
)
from ._deny import DeniedRanges, denied_from_environment
from ._egress import bridge_address, egress_network
from ._engine_ca import EngineCA, IssuedCertificate
from ._exec_stream import drain, start_exec
from ._hardening import (
    AGENT_CAPABILITIES,
    AGENT_SYSCTLS,
    LIMIT_EVENTS_COMMAND,
    container_stopped,
    limits_from_events,
    pids_exhausted,
    runtime_problem,
)
from ._isolation import HostGuard, bridge_name
from ._output import OUTPUT_LIMIT, BoundedOutput
from ._output import decode as _decode
from ._processes import PROBE, AgentProcess, agent_processes
from ._reaper import reap
from ._service_plan import CommandSucceeds, LogLine, Readiness, ServiceContainer, StaysUp

WORKSPACE = "/workspace"
READINESS_TIMEOUT_S = 60.0
_TIMEOUT_EXIT = 124
EXEC_GRACE_S = 10.0
"""How long past its timeout a command's output stream may stay open before Keystone closes it itself: an
engine whose container died under it (gVisor ending a sandbox at its pids limit) may never end it."""
KILL_ROUNDS = 50
"""SIGSTOP rounds before `settle_agent` gives up on processes that keep starting new ones."""
RUNTIME_ENV = "KEYSTONE_RUNTIME"
AGENT_DIR = "opt/agent"
"""Where the agent's code is copied (`agent.path`), owned by root."""
_WORKSPACE_LISTING = (
    "cd /workspace && find . -xdev -type f -printf '%P\\0%s\\0%m\\0' && printf '\\001' && "
    "find . -xdev -type f -print0 | xargs -0 -r sha256sum -z"
)
"""Sizes and modes from find, a byte 1, checksums from sha256sum; NUL-separated for odd names."""


def _settle_probe(boundary: str, with_workspace: bool) -> list[str]:
    """PROBE's listing, `boundary`, what LIMIT_EVENTS_COMMAND prints and, `with_workspace`, `boundary`
    again and the workspace listing. The boundary is random: the listing holds process names, which the
    agent chooses, so a fixed one could be forged to hide a process from the probe."""
    parts = [PROBE[-1], f"printf '%s' {boundary}", LIMIT_EVENTS_COMMAND[-1]]
    if with_workspace:
        parts += [f"printf '%s' {boundary}", _WORKSPACE_LISTING]
    return ["sh", "-c", "; ".join(parts)]


def workspace_path(path: str) -> str:
    """An absolute path in the sandbox; relative paths are under /workspace."""
    return posixpath.normpath(posixpath.join(WORKSPACE, path))


class DockerSandbox(Sandbox):
    def __init__(
        self,
        client: docker.DockerClient,
        sandbox_id: str,
        sandbox_labels: dict[str, str],
        network: Network,
    ) -> None:
        self._client = client
        self.id = sandbox_id
        self.labels = sandbox_labels
        self.state = SandboxStatus.CREATING
        self.services = {}
        self.network = network
        self.agent: Container | None = None
        self.service_containers: dict[str, Container] = {}
        self.gateway: Container | None = None
        self._baseline: WorkspaceSnapshot | None = None
        self.agent_user: AgentUser = ROOT
        """Owner of the files placed for the agent (fixtures, secret files, the task file)."""
        self.limits: tuple[int, int] = (0, 0)
        """The agent container's (pids, memory bytes) limits, named when one is hit."""
        self._timer: threading.Timer | None = None
        self.expired_after: float | None = None
        """Set when `resources.timeout` destroyed the sandbox, so later calls say why it is gone."""
        self._lock = threading.Lock()
        self.renewable = False
        """Its services run beside the agent container, not in its network namespace: `renew` can
        replace the agent and keep them."""
        self._settled_limits: tuple[Container, str] | None = None
        """The agent container's limit counters as `settle_agent`'s last probe read them, for
        `limits_hit`; dropped when a command runs there again (only a process can move them)."""
        self._settled_workspace: tuple[Container, WorkspaceSnapshot] | None = None
        """The workspace as `settle_agent`'s first probe read it when no agent process was left to change
        it, for `diff`; dropped when a command runs there again."""

    # --- commands and files ------------------------------------------------------------------

    def _agent(self) -> Container:
        if self.expired_after is not None:
            raise SandboxError(
                f"sandbox {self.id} reached its timeout ({self.expired_after:g}s, resources.timeout) "
                "and was destroyed"
            )
        if self.agent is None or self.state in (SandboxStatus.STOPPED, SandboxStatus.ERROR):
            raise SandboxError(f"sandbox {self.id} is {self.state.value}")
        return self.agent

    def exec(
        self,
        command: str | Sequence[str],
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        workdir: str = WORKSPACE,
        user: str | None = None,
        output_limit: int = OUTPUT_LIMIT,
    ) -> ExecResult:
        agent = self._agent()
        if self.state is SandboxStatus.READY:
            self.state = SandboxStatus.RUNNING
        self._forget_settled()
        env = {**self.exec_env, **(env or {})}
        return _exec(
            agent, command, timeout=timeout, env=env, workdir=workdir, user=user, output_limit=output_limit
        )

    def service_exec(
        self,
        service: str,
        command: Sequence[str],
        *,
        timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult:
        return _exec(self._service(service), command, timeout=timeout, env=env)

    def service_logs(self, service: str, since: float) -> str:
        with _engine_errors(f"reading the logs of service {service!r}"):
            return _decode(self._service(service).logs(since=since))

    def service_put_file(self, service: str, path: str, content: bytes) -> None:
        with _engine_errors(f"writing {path} in service {service!r}"):
            self._service(service).put_archive("/", tar_files({path: content}))

    def _service(self, name: str) -> Container:
        try:
            return self.service_containers[name]
        except KeyError:
            raise SandboxError(f"sandbox {self.id} has no service {name!r}") from None

    def read_file(self, path: str, limit: int = OUTPUT_LIMIT) -> bytes:
        try:
            with _engine_errors(f"reading {path}"):
                chunks, _ = self._agent().get_archive(workspace_path(path))
                return first_file(chunks, limit)
        except docker.errors.NotFound:
            raise FileNotFoundError(path) from None

    def write_file(self, path: str, content: bytes, mode: int = 0o644) -> None:
        target = workspace_path(path)
        with _engine_errors(f"writing {path}"):
            self._agent().put_archive("/", tar_files({target: content}, {target: mode}, self._owner))

    def delete_file(self, path: str) -> None:
        result = self.exec(["rm", "-f", "--", workspace_path(path)])
        if result.exit_code != 0:
            raise SandboxError(f"could not delete {path}: {result.stderr.strip()}")

    def copy_in(self, local_dir: str, dest: str) -> None:
        target = workspace_path(dest)
        agent = self._agent()
        _exec(agent, ["sh", "-c", 'mkdir -p "$1" && chown "$2" "$1"', "-", target, self.agent_user.exec_user])
        with _engine_errors(f"copying {local_dir} to {target}"):
            agent.put_archive(target, tar_directory(local_dir, self._owner))

    @property
    def _owner(self) -> tuple[int, int]:
        return self.agent_user.uid, self.agent_user.gid

    def limits_hit(self) -> list[str]:
        pids, memory = self.limits
        try:
            agent = self._agent()
            settled, self._settled_limits = self._settled_limits, None
            if settled is not None and settled[0] is agent:
                return limits_from_events(settled[1], pids, memory)
            with contextlib.suppress(SandboxError):
                result = _exec(agent, LIMIT_EVENTS_COMMAND)
                if result.exit_code == 0:
                    return limits_from_events(result.stdout, pids, memory)
            # No process could start: the container stopped, or every pid is taken. Ask the engine.
            agent.reload()
            if agent.status != "running":
                return [container_stopped(agent.attrs["State"], pids, memory)]
            if int(agent.stats(stream=False, one_shot=True)["pids_stats"]["current"]) >= pids:
                return [pids_exhausted(pids)]
        except (SandboxError, docker.errors.APIError, KeyError, TypeError, ValueError):
            pass
        return []

    # --- state and diff ----------------------------------------------------------------------

    def workspace_snapshot(self) -> WorkspaceSnapshot:
        """As root, which reads every file, whoever the agent ran as."""
        self._forget_settled()
        return _workspace_from(_exec(self._agent(), ["sh", "-c", _WORKSPACE_LISTING], user=ROOT.exec_user))

    def _forget_settled(self) -> None:
        """A command runs in the agent container: what the settle probe read may no longer hold."""
        self._settled_limits = self._settled_workspace = None

    def snapshot(self) -> None:
        self._baseline = self.workspace_snapshot()

    def diff(self) -> WorkspaceDiff:
        if self._baseline is None:
            raise SandboxError(f"sandbox {self.id} has no before-run snapshot")
        settled, self._settled_workspace = self._settled_workspace, None
        taken = settled[1] if settled is not None and settled[0] is self.agent else self.workspace_snapshot()
        before, after = self._baseline.files, taken.files
        return WorkspaceDiff(
            added=sorted(set(after) - set(before)),
            removed=sorted(set(before) - set(after)),
            modified=sorted(p for p in set(before) & set(after) if before[p] != after[p]),
        )

    def network_log(self) -> list[dict[str, Any]]:
        if self.gateway is None:
            return []
        result = _exec(self.gateway, ["cat", gateway.LOG_PATH])
        return json_objects(result.stdout) if result.exit_code == 0 else []

    # --- the agent's processes -----------------------------------------------------------------

    def settle_agent(self, deadline: float) -> SettleReport:
        started = time.monotonic()
        lingering = left = self._agent_processes(with_workspace=True)
        pause = 0.05
        while left and time.monotonic() < deadline:
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 1.5, 1.0)
            left = self._agent_processes()
        killed = self._kill(left)
        return SettleReport(tuple(lingering), tuple(killed), int((time.monotonic() - started) * 1000))

    def _agent_processes(self, with_workspace: bool = False) -> list[AgentProcess]:
        """The agent's processes. The same exec reads the limit counters for `limits_hit` after settling
        and, `with_workspace`, the workspace for `diff` when no agent process is left: an exec less per
        replica for each."""
        # As root: the probe must see, and `_kill` signal, whatever user the agent ran as.
        agent = self._agent()
        boundary = f"--keystone-{secrets.token_hex(12)}--"
        probe = _settle_probe(boundary, with_workspace)
        result = _exec(agent, probe, user=ROOT.exec_user)
        for _ in range(PROBE_START_RETRIES):
            if EXEC_NOT_STARTED not in result.stdout + result.stderr:
                break
            time.sleep(PROBE_START_PAUSE_S)
            result = _exec(agent, probe, user=ROOT.exec_user)
        if with_workspace and result.truncated:  # a huge workspace listing: the probe alone, whole
            return self._agent_processes()
        listing, marker, rest = result.stdout.partition(boundary)
        events, _, workspace = rest.partition(boundary)
        self._settled_limits = (agent, events) if marker else None
        try:
            processes = agent_processes(listing)
        except ValueError as exc:
            problem = f"{exc} {result.stderr.strip()}".strip()
            raise SandboxError(f"could not list the agent's processes: {problem}") from exc
        self._settled_workspace = None
        if with_workspace and marker and not processes:
            with contextlib.suppress(SandboxError):  # `diff` takes its own snapshot (and says why it fails)
                self._settled_workspace = (
                    agent,
                    _workspace_from(dataclasses.replace(result, stdout=workspace)),
                )
        return processes

    def _kill(self, processes: list[AgentProcess]) -> list[AgentProcess]:
        """Stop the processes (SIGSTOP), and whatever they started meanwhile, until no new one appears,
        then SIGKILL them all. A stopped process cannot fork and keeps its PID, so even a fork bomb
        runs out of room instead of refilling what each kill frees."""
        stopped: dict[int, AgentProcess] = {}
        for _ in range(KILL_ROUNDS):
            fresh = [process for process in processes if process.pid not in stopped]
            if not fresh:
                break
            self._signal("STOP", fresh)
            stopped.update((process.pid, process) for process in fresh)
            processes = self._agent_processes()
        else:
            raise SandboxError(f"the agent's processes kept starting new ones through {KILL_ROUNDS} rounds")
        if stopped:
            self._signal("KILL", list(stopped.values()))
            time.sleep(0.02)  # init reaps them
            if left := self._agent_processes():
                names = ", ".join(f"{process.name} (pid {process.pid})" for process in left)
                raise SandboxError(f"the agent's processes outlived SIGKILL: {names}")
        return list(stopped.values())

    def _signal(self, signal: str, processes: list[AgentProcess]) -> None:
        pids = [str(process.pid) for process in processes]
        script = f'kill -{signal} "$@" 2>/dev/null; true'
        _exec(self._agent(), ["sh", "-c", script, "kill", *pids], user=ROOT.exec_user)

    # --- teardown ----------------------------------------------------------------------------

    def expire_after(self, seconds: float) -> None:
        """Destroy the sandbox when `resources.timeout` runs out, whatever the engine is doing."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(seconds, self._expire, [seconds])
        self._timer.daemon = True
        self._timer.start()

    def _expire(self, seconds: float) -> None:
        self.expired_after = seconds
        self.destroy()

    def destroy(self) -> None:
        with self._lock:
            if self.state is SandboxStatus.STOPPED:
                return
            if self._timer is not None:
                self._timer.cancel()
            every = [self.agent, self.gateway, *self.service_containers.values()]
            containers = [c for c in every if c is not None]
            with ThreadPoolExecutor(max_workers=max(1, len(containers))) as pool:
                list(pool.map(_remove_container, containers))
            with contextlib.suppress(docker.errors.NotFound):
                _remove_network(self.network)
            if self.state is not SandboxStatus.ERROR:
                self.state = SandboxStatus.STOPPED


def _workspace_from(result: ExecResult) -> WorkspaceSnapshot:
    """The snapshot in what `_WORKSPACE_LISTING` printed; SandboxError when it failed or was cut."""
    if result.exit_code != 0:
        raise SandboxError(f"could not read the workspace state: {result.stderr.strip()}")
    if result.truncated:
        raise SandboxError(
            f"could not read the workspace state: its listing of {result.stdout_bytes} bytes is over "
            f"Keystone's limit of {OUTPUT_LIMIT} (too many files under /workspace)"
        )
    listing, _, sums = result.stdout.partition("\x01")
    fields = listing.split("\0")
    checksums = {}
    for line in sums.split("\0"):
        if line:
            digest, _, name = line.partition("  ")
            checksums[name.removeprefix("./")] = digest
    files = {
        name: FileInfo(size=int(size), mode=mode, checksum=checksums.get(name, ""))
        for name, size, mode in zip(fields[0:-2:3], fields[1:-1:3], fields[2::3], strict=False)
    }
    return WorkspaceSnapshot(captured_at=datetime.now(UTC).isoformat(), files=files)


def _done(container: Container) -> Future[Container]:
    done: Future[Container] = Future()
    done.set_result(container)
    return done


def _apply(sandbox: DockerSandbox, fixture: FixtureStep) -> None:
    try:
        fixture.apply(sandbox)
    except FixtureError as exc:
        raise SandboxBootError(sandbox.id, "fixtures", f"{fixture.label}: {exc}", exc.output) from exc
    except SandboxError as exc:
        raise SandboxBootError(sandbox.id, "fixtures", f"{fixture.label}: {exc}") from exc


def _snapshot(sandbox: DockerSandbox) -> None:
    try:
        sandbox.snapshot()
    except SandboxError as exc:
        raise SandboxBootError(sandbox.id, "snapshot", str(exc)) from exc


def split_services(
    services: list[ServiceContainer],
) -> tuple[list[ServiceContainer], list[ServiceContainer]]:
    """(pod, bridged): services that can share the agent's network namespace, and the rest.

    Joining the agent's namespace skips a network endpoint per container, the largest part of a
    service's start here; the agent still reaches the service by name (a hosts entry, and a network
    alias on the agent for bridged services). Only a service whose ports are known and free can join;
    one with unknown ports, or a second service on a taken port, runs on the network under its alias.
    """
    pod: list[ServiceContainer] = []
    bridged: list[ServiceContainer] = []
    taken: set[int] = set()
    for service in services:
        ports = set(service.ports) | ({service.tls.port} if service.tls is not None else set())
        if ports and not ports & taken:
            pod.append(service)
            taken |= ports
        else:
            bridged.append(service)
    return pod, bridged


def _server_host(sandbox: DockerSandbox, plan: SandboxPlan) -> dict[str, str]:
    """`SERVER_HOST` as the host's address on the sandbox network, for an agent that may reach the server."""
    if plan.server_port is None:
        return {}
    return {gateway.SERVER_HOST: bridge_address(sandbox.network.attrs["IPAM"]["Config"][0])}


def _probe(container: Container, readiness: Readiness) -> bool:
    """One readiness probe; refreshes `container.status` so a crashed service is noticed."""
    if isinstance(readiness, LogLine) and readiness.text in _decode(container.logs()):
        return True
    if (
        isinstance(readiness, CommandSucceeds)
        and _exec(container, ["sh", "-c", readiness.command], timeout=10).exit_code == 0
    ):
        return True
    container.reload()
    return isinstance(readiness, StaysUp) and container.status == "running"


def _gateway_ready(sandbox_id: str, gateway_up: Future[Container]) -> None:
    _wait_ready(sandbox_id, "gateway", gateway_up.result(), LogLine(gateway.READY_MARKER))


def _wait_ready(sandbox_id: str, name: str, container: Container, readiness: Readiness) -> None:
    started = time.monotonic()
    deadline = started + READINESS_TIMEOUT_S
    while not (
        _probe(container, readiness)
        and (not isinstance(readiness, StaysUp) or time.monotonic() - started >= readiness.seconds)
    ):
        if container.status in ("exited", "dead"):
            problem = "exited during start-up"
        elif time.monotonic() > deadline:
            problem = f"not ready after {READINESS_TIMEOUT_S:.0f}s"
        else:
            time.sleep(0.02 if isinstance(readiness, LogLine) else 0.1)
            continue
        raise SandboxBootError(
            sandbox_id, "services", f"service {name!r} {problem}", _decode(container.logs(tail=50))
        )


@contextlib.contextmanager
def _engine_errors(doing: str) -> Iterator[None]:
    """Docker API failures (a container gone, the engine restarting) as SandboxError, which the engine
    records as an `error` result; NotFound passes through for callers that give it a meaning."""
    try:
        yield
    except docker.errors.NotFound:
        raise
    except docker.errors.APIError as exc:
        raise SandboxError(f"{doing} failed: {exc.explanation or exc}") from exc


FIREWALL_RETRIES = (0.2, 0.5, 1.0)
"""Pauses before creating a network again after a firewall race (see `_create_network`)."""


def _create_network(client: docker.DockerClient, name: str, **options: Any) -> Network:
    """A bridge network. Creating one, the engine deletes and re-adds its jump rule at the head of the
    host's FORWARD chain; engines sharing a host (several `dockerd`, as on a machine that stands for
    several cluster nodes) can delete each other's rule in between, and the engine then refuses with an
    iptables error. That refusal is a race, not a state: the create is tried again."""
    for pause in FIREWALL_RETRIES:
        try:
            return client.networks.create(name, driver="bridge", **options)
        except docker.errors.APIError as exc:
            if "iptables" not in str(exc):
                raise
        time.sleep(pause)
    return client.networks.create(name, driver="bridge", **options)


def _remove_network(network: Network) -> None:
    """Remove the network, and first any container still attached to it (one that was being started
    while the sandbox went away), which would otherwise keep it. A network Docker still will not remove
    (an endpoint being torn down) is left to the reaper, which its labels lead to."""
    for pause in (0.0, 0.2, 0.5, 1.0):
        time.sleep(pause)
        try:
            network.remove()
            return
        except docker.errors.APIError as exc:
            if "active endpoints" not in str(exc):
                raise
            with contextlib.suppress(docker.errors.APIError):
                network.reload()
                for container in network.containers:
                    _remove_container(container)


def _remove_container(container: Container) -> None:
    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
        container.remove(force=True, v=True)


EXEC_NOT_STARTED = "OCI runtime exec failed"
"""What Docker answers when an exec's process could not even start in the container."""
PROBE_START_RETRIES = 30
PROBE_START_PAUSE_S = 0.1
"""A fork bomb holding every pid of the agent's limit leaves none for the settle probe to start in;
one of the slots its dying processes free is taken within a few tries (3 s at most)."""


def _exec(
    container: Container,
    command: str | Sequence[str],
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    workdir: str | None = None,
    user: str | None = None,
    output_limit: int = OUTPUT_LIMIT,
) -> ExecResult:
    """Run `command` in `container`, reading its output as it arrives into a head-and-tail buffer of
    `output_limit` bytes per stream: time linear and memory bounded in what the command prints (docker-py's
    `exec_run(demux=True)` joins the frames of each stream one by one, quadratic in the output, and can
    lose its start: see `_exec_stream`)."""
    argv = ["sh", "-c", command] if isinstance(command, str) else list(command)
    if timeout is not None:
        # coreutils' timeout kills the whole command; -k makes sure a process ignoring TERM dies too.
        argv = ["timeout", "-k", "2", f"{timeout:.3f}", *argv]
    api = container.client.api if container.client is not None else None
    assert api is not None, "a container from a DockerClient"
    stdout, stderr = BoundedOutput(output_limit), BoundedOutput(output_limit)
    started = time.monotonic()
    try:
        exec_id = api.exec_create(
            container.id, argv, environment=dict(env or {}), workdir=workdir, user=user or ""
        )["Id"]
        stream = start_exec(api, exec_id)
        deadline = timeout + EXEC_GRACE_S if timeout is not None else None
        if not drain(stream, stdout, stderr, deadline):
            raise SandboxError(
                f"a command in {container.name} did not end {EXEC_GRACE_S:g}s after its {timeout:g}s timeout "
                "and its output was abandoned: the container stopped answering"
            )
        code = _exit_code(api, exec_id)
    except docker.errors.APIError as exc:
        raise SandboxError(f"exec in {container.name} failed: {exc.explanation or exc}") from exc
    elapsed = time.monotonic() - started
    timed_out = timeout is not None and code in (_TIMEOUT_EXIT, 137) and elapsed >= timeout * 0.99
    return ExecResult(
        exit_code=code,
        stdout=stdout.text(),
        stderr=stderr.text(),
        duration_ms=int(elapsed * 1000),
        timed_out=timed_out,
        stdout_bytes=stdout.total,
        stderr_bytes=stderr.total,
        truncated=bool(stdout.dropped or stderr.dropped),
    )


def _exit_code(api: docker.APIClient, exec_id: str) -> int:
    """The exit code of a finished exec. Its output stream can end a moment before the engine records
    the exit; -1 when the engine never does (the container went away)."""
    for _ in range(50):
        state = api.exec_inspect(exec_id)
        if not state["Running"] and state["ExitCode"] is not None:
            return int(state["ExitCode"])
        time.sleep(0.02)
    return -1


class DockerBackend(SandboxBackend):
    """Boots sandboxes on the local Docker engine (or whatever DOCKER_HOST names)."""

    def __init__(
        self,
        client: docker.DockerClient | None = None,
        *,
        owner: str | None = None,
        runtime: str | None = None,
        gateway_hosts: Mapping[str, str] | None = None,
        denied: DeniedRanges | None = None,
    ) -> None:
        """`runtime` (default: $KEYSTONE_RUNTIME) runs every agent container under that Docker runtime,
        e.g. `runsc` for gVisor, whatever a plan names (a spec's `resources.runtime` applies only where
        the operator chose none, so an untrusted spec cannot leave gVisor); SandboxError when it is not
        registered. `denied` (default: $KEYSTONE_SANDBOX_DENY and its exceptions): ranges no sandbox
        reaches; SandboxError when the variables do not parse."""
        self.client = client or connect()
        self.owner = owner or labels.owner_id()
        self.runtime = runtime or os.environ.get(RUNTIME_ENV) or None
        if self.runtime is not None:
            problem = runtime_problem(self.client, self.runtime)
            if problem is not None:
                raise SandboxError(problem)
        self.gateway_hosts = dict(
            gateway.gateway_hosts_from_environment() if gateway_hosts is None else gateway_hosts
        )
        """Extra names the gateways resolve (like `--add-host`); default: $KEYSTONE_GATEWAY_HOSTS."""
        self.denied = denied_from_environment() if denied is None else denied
        self._host_guard = HostGuard(self.denied)
        """The host rules, the denied ranges' and the host's addresses, which gateways refuse."""
        self._engine_ca: EngineCA | None = None
        self._engine_ca_lock = threading.Lock()

    def close_server_ports(self) -> None:
        """Remove the host rules that let sandboxes reach the server ports of this backend's plans."""
        self._host_guard.close()

    def hold_lease(self) -> None:
        """Start this owner's reaper now (the first sandbox starts it otherwise): needed before labelling
        anything else with `self.owner`, or other processes' reaps take the owner for gone."""
        lease.hold(self.client, self.owner)

    def create(self, plan: SandboxPlan, on_event: BootListener | None = None) -> DockerSandbox:
        sandbox_id = plan.sandbox_id or f"sb-{secrets.token_hex(6)}"
        started = time.monotonic()

        def emit(step: str, detail: str = "") -> None:
            if on_event is not None:
                on_event(BootEvent(sandbox_id, step, detail, int((time.monotonic() - started) * 1000)))

        sandbox_labels = labels.sandbox_labels(
            sandbox_id, plan.run_id, plan.spec_id, plan.timeout_s * (plan.renewals + 1), self.owner, plan.keep
        )
        try:  # this process's reaper runs before its first sandbox: other processes see it alive
            self.hold_lease()
        except SandboxError as exc:
            raise SandboxBootError(sandbox_id, "reaper", str(exc)) from exc
        try:
            if plan.gateway_image:  # the host rules are in place before the first sandbox network
                self._host_guard.addresses(self.client, plan.gateway_image)
                if plan.server_port is not None:
                    self._host_guard.open_server_port(self.client, plan.gateway_image, plan.server_port)
            network = _create_network(
                self.client,
                f"keystone-{sandbox_id}",
                internal=plan.network is not None or not plan.egress_allowed,
                labels=sandbox_labels,
                options={"com.docker.network.bridge.name": bridge_name(sandbox_id)},
            )
        except SandboxError as exc:
            raise SandboxBootError(sandbox_id, "isolation", str(exc)) from exc
        except docker.errors.APIError as exc:
            raise SandboxBootError(sandbox_id, "network", str(exc.explanation or exc)) from exc
        sandbox = DockerSandbox(self.client, sandbox_id, sandbox_labels, network)
        emit("network", network.name or "")
        try:
            try:
                self._boot(sandbox, plan, emit)
            except SandboxBootError:
                raise
            except (SandboxError, docker.errors.DockerException) as exc:
                raise SandboxBootError(sandbox_id, "boot", str(exc)) from exc
        except SandboxBootError:
            sandbox.state = SandboxStatus.ERROR
            if not plan.keep:
                sandbox.destroy()
            raise
        except BaseException:
            sandbox.destroy()
            raise
        sandbox.state = SandboxStatus.READY
        sandbox.expire_after(plan.timeout_s)
        emit("ready")
        return sandbox

    def engine_ca(self) -> EngineCA:
        """The engine's sandbox CA, made on first use (see `_engine_ca.py`); SandboxError when its files
        cannot be read or written."""
        with self._engine_ca_lock:
            if self._engine_ca is None:
                engine_id = str(self.client.info()["ID"])
                try:
                    self._engine_ca = EngineCA.for_engine(engine_id)
                except (OSError, ValueError) as exc:
                    raise SandboxError(f"the sandbox CA of Docker engine {engine_id}: {exc}") from exc
            return self._engine_ca

    def _certificates(self, plan: SandboxPlan) -> dict[str, IssuedCertificate]:
        """Service -> its certificate for the hosts the plan overrides to it, for services answering TLS."""
        hosts = gateway.tls_hosts(plan.network, plan.services)
        return {service: self.engine_ca().issue(names) for service, names in hosts.items()}

    def _boot(self, sandbox: DockerSandbox, plan: SandboxPlan, emit: Callable[[str, str], None]) -> None:
        # Services that will outlive this agent container (renewals) cannot live in its namespace.
        pod, bridged = split_services(plan.services) if not plan.renewals else ([], list(plan.services))
        sandbox.renewable = not pod
        certificates = self._certificates(plan)
        with ThreadPoolExecutor(max_workers=len(plan.services) + 5) as pool:

            def start(service: ServiceContainer, pod_of: Container | None) -> Future[None]:
                certificate = certificates.get(service.name)
                return pool.submit(self._start_service, sandbox, plan, service, pod_of, certificate)

            futures = [start(service, None) for service in bridged]
            gateway_up = None
            if plan.network is not None:
                gateway_up = pool.submit(self._start_gateway, sandbox, plan.network, plan)
                futures.append(pool.submit(_gateway_ready, sandbox.id, gateway_up))
            try:
                agent = self._start_agent(sandbox, plan, pod, trust_ca=bool(certificates))
            except BaseException:
                wait(futures)  # never leave a half-started service behind an agent that failed
                raise
            if gateway_up is not None:
                futures.append(pool.submit(self._point_resolver, sandbox, agent, gateway_up))
            futures += [start(service, agent) for service in pod]
            if certificates:
                futures.append(pool.submit(self._trust_engine_ca, agent))
            if plan.agent_dir:
                futures.append(pool.submit(self._copy_agent, agent, plan.agent_dir, plan.agent_user))
            # The workspace is final once the agent started, unless a fixture writes into it: then the
            # snapshot overlaps service readiness and the fixtures instead of following them.
            early_snapshot = not any(fixture.touches_workspace for fixture in plan.fixtures)
            snapshot = pool.submit(_snapshot, sandbox) if early_snapshot else None
            for future in futures:
                future.result()
            emit("services", ", ".join(f"{s.name} ready" for s in plan.services))
            for fixture in plan.fixtures:
                _apply(sandbox, fixture)
            if plan.fixtures:
                emit("fixtures", f"{len(plan.fixtures)} applied")
            (snapshot or pool.submit(_snapshot, sandbox)).result()
        emit("snapshot", "")

    def _run(
        self,
        sandbox: DockerSandbox,
        name: str,
        image: str,
        aliases: list[str] | None,
        files: bytes | None,
        /,
        **kwargs: Any,
    ) -> Container:
        """Start a container on the sandbox network under `aliases`, or, with `aliases=None`, inside the
        agent container's network namespace (`kwargs` then carries that `network_mode`); `files`, a tar,
        is extracted at / before it starts."""
        if aliases is not None:
            kwargs["network"] = sandbox.network.name
            kwargs["networking_config"] = {
                sandbox.network.name: self.client.api.create_endpoint_config(aliases=aliases)
            }
        try:
            container = self.client.containers.create(
                image, detach=True, name=f"keystone-{sandbox.id}-{name}", **kwargs
            )
            if files is not None:
                container.put_archive("/", files)
            container.start()
            return container
        except docker.errors.APIError as exc:
            raise SandboxBootError(sandbox.id, "services", f"{name}: {exc.explanation or exc}") from exc

    def _start_gateway(self, sandbox: DockerSandbox, policy: NetworkPolicy, plan: SandboxPlan) -> Container:
        """The gateway starts on Keystone's egress network (its way out, see `_egress.py`) and joins the
        sandbox network, where the agent's DNS and proxy point at it."""
        assert plan.gateway_image is not None
        ipam = sandbox.network.attrs["IPAM"]["Config"][0]
        with _engine_errors("starting the network gateway"):
            egress = egress_network(self.client)
            fence = gateway.Fence(
                host=(
                    *self._host_guard.addresses(self.client, plan.gateway_image),
                    egress.gateway,
                    bridge_address(ipam),
                ),
                docker_networks=(egress.subnet,),
                ingress_from=egress.gateway,
                denied=self.denied,
            )
            config = gateway.gateway_config(policy, plan.services, ipam["Subnet"], fence)
            container = self.client.containers.create(
                plan.gateway_image,
                name=f"keystone-{sandbox.id}-gateway",
                environment={"KEYSTONE_GATEWAY_CONFIG": config},
                labels={**sandbox.labels, labels.ROLE: "gateway"},
                network=egress.name,
                extra_hosts=self.gateway_hosts or None,
                security_opt=["no-new-privileges"],
                ports={f"{listen}/tcp": ("127.0.0.1", None) for listen in gateway.ingress_ports(policy)},
            )
            sandbox.gateway = container
            sandbox.network.connect(container, aliases=[gateway.ALIAS])
            container.start()
            container.reload()  # its address and published ports; readiness is waited for on its own
        published = container.attrs["NetworkSettings"]["Ports"]
        sandbox.ingress = {
            port: f"127.0.0.1:{published[f'{listen}/tcp'][0]['HostPort']}"
            for listen, port in gateway.ingress_ports(policy).items()
        }
        return container

    @staticmethod
    def _point_resolver(sandbox: DockerSandbox, agent: Container, gateway_up: Future[Container]) -> None:
        """The agent (and every service in its namespace) resolves names through the gateway."""
        container = gateway_up.result()
        address = container.attrs["NetworkSettings"]["Networks"][sandbox.network.name]["IPAddress"]
        # resolv.conf is a bind mount: it can be written, not replaced.
        script = f"printf '%s' {shlex.quote(gateway.resolv_conf(address))} > /etc/resolv.conf"
        result = _exec(agent, ["sh", "-c", script])
        if result.exit_code != 0:
            raise SandboxError(
                f"pointing the agent's resolver at the gateway failed: {result.stderr.strip()}"
            )

    def _start_agent(
        self, sandbox: DockerSandbox, plan: SandboxPlan, pod: list[ServiceContainer], trust_ca: bool
    ) -> Container:
        """The agent container: no capability beyond `AGENT_CAPABILITIES`, no new privileges, limits on
        CPU, memory (swap included), processes and (with `disk_bytes`) its writable layer. With
        `trust_ca`, its environment names the engine CA's files (`_trust_engine_ca` writes them) unless
        the spec names others."""
        names = [service.name for service in pod]
        runtime = self.runtime or plan.runtime  # the operator's runtime is never traded for a spec's
        env = {
            **(agent_trust.trust_env() if trust_ca else {}),
            **plan.env,
            **(gateway.proxy_env(plan.services) if plan.network is not None else {}),
        }
        sandbox.agent = self._run(
            sandbox,
            "agent",
            plan.image,
            ["agent", *names],
            None,
            command=["sleep", "infinity"],
            init=True,
            working_dir=WORKSPACE,
            environment=env,
            labels={**sandbox.labels, labels.ROLE: "agent"},
            hostname="sandbox",
            extra_hosts={name: "127.0.0.1" for name in names} | _server_host(sandbox, plan),
            nano_cpus=int(plan.cpu * 1e9),
            mem_limit=plan.memory_bytes,
            memswap_limit=plan.memory_bytes,
            pids_limit=plan.pids_limit,
            cap_drop=["ALL"],
            cap_add=list(AGENT_CAPABILITIES),
            sysctls=AGENT_SYSCTLS,
            security_opt=["no-new-privileges"],
            **({"runtime": runtime} if runtime else {}),
            **({"storage_opt": {"size": str(plan.disk_bytes)}} if plan.disk_bytes else {}),
        )
        sandbox.agent_user = plan.agent_user
        sandbox.limits = (plan.pids_limit, plan.memory_bytes)
        return sandbox.agent

    def _trust_engine_ca(self, agent: Container) -> None:
        """The engine CA's certificate into the agent's trust (see `_agent_trust.py`)."""
        result = _exec(agent, agent_trust.install_command(self.engine_ca().cert_pem), user=ROOT.exec_user)
        if result.exit_code != 0:
            detail = (result.stderr or result.stdout).strip() or "no output: the container may have stopped"
            raise SandboxError(f"adding the sandbox CA to the agent's trust failed: {detail}")

    @staticmethod
    def _copy_agent(agent: Container, agent_dir: str, user: AgentUser) -> None:
        """/opt/agent belongs to root: the agent user reads and runs its code but cannot change it."""
        with _engine_errors(f"copying the agent from {agent_dir}"):
            agent.put_archive("/", tar_directory(agent_dir, (0, user.gid), under=AGENT_DIR))

    def _start_service(
        self,
        sandbox: DockerSandbox,
        plan: SandboxPlan,
        service: ServiceContainer,
        pod_of: Container | None,
        certificate: IssuedCertificate | None = None,
    ) -> None:
        """Start a service in the agent's network namespace (`pod_of`), or on the network by its alias,
        with the agent's CPU, memory and pids limits: a busy or hostile service cannot take the host. A
        `certificate` is placed where `service.tls` says before the service starts (the key, mode 0600,
        never in its environment)."""
        placement: dict[str, Any] = {"network_mode": f"container:{pod_of.id}"} if pod_of is not None else {}
        files = None
        if certificate is not None and service.tls is not None:
            tls = service.tls
            pems = {tls.cert_path: certificate.cert_pem, tls.key_path: certificate.key_pem}
            files = tar_files(pems, {tls.key_path: 0o600})
        container = self._run(
            sandbox,
            service.name,
            service.image,
            None if pod_of is not None else [service.name],
            files,
            command=list(service.command) if service.command is not None else None,
            environment=dict(service.env),
            labels={**sandbox.labels, labels.ROLE: "service", labels.SERVICE: service.name},
            nano_cpus=int(plan.cpu * 1e9),
            mem_limit=plan.memory_bytes,
            memswap_limit=plan.memory_bytes,
            pids_limit=plan.pids_limit,
            security_opt=["no-new-privileges"],
            **placement,
        )
        sandbox.service_containers[service.name] = container
        _wait_ready(sandbox.id, service.name, container, service.readiness)
        sandbox.services[service.name] = ServiceEndpoint(
            name=service.name,
            kind=service.kind,
            host=service.name,
            port=service.port,
            ready=True,
            image=service.image,
            url=service.url,
        )

    def renew(
        self, sandbox: Sandbox, plan: SandboxPlan, reset: ResetServices, on_event: BootListener | None = None
    ) -> DockerSandbox:
        """The agent container is replaced (under `plan.sandbox_id`, or a new id: each replica has its own),
        the network, gateway and services stay. On a failure the sandbox is destroyed and SandboxError
        raised."""
        if not isinstance(sandbox, DockerSandbox) or sandbox.agent is None:
            raise SandboxError("only a ready Docker sandbox can be renewed")
        if not sandbox.renewable:  # its services live in the agent container's network namespace
            raise SandboxError(
                "a sandbox booted without renewals keeps its services in the agent's namespace"
            )
        started = time.monotonic()
        try:
            with sandbox._lock:
                if sandbox.state not in (SandboxStatus.READY, SandboxStatus.RUNNING):
                    raise SandboxError(f"sandbox {sandbox.id} is {sandbox.state.value}")
                if sandbox._timer is not None:
                    sandbox._timer.cancel()
            used, sandbox.agent = sandbox.agent, None
            sandbox.id = plan.sandbox_id or f"sb-{secrets.token_hex(6)}"
            sandbox.labels = {**sandbox.labels, labels.SANDBOX: sandbox.id, labels.RUN: plan.run_id}
            trust_ca = bool(gateway.tls_hosts(plan.network, plan.services))
            # The used agent goes, the services are reset and the new agent starts, all at once: the new
            # container has its own name, and the used agent's processes were settled after its run.
            with ThreadPoolExecutor(max_workers=4) as pool:
                steps = [pool.submit(_remove_container, used), pool.submit(reset, sandbox)]
                agent = self._start_agent(sandbox, plan, [], trust_ca=trust_ca)
                if sandbox.gateway is not None:
                    steps.append(pool.submit(self._point_resolver, sandbox, agent, _done(sandbox.gateway)))
                if trust_ca:
                    steps.append(pool.submit(self._trust_engine_ca, agent))
                if plan.agent_dir:
                    steps.append(pool.submit(self._copy_agent, agent, plan.agent_dir, plan.agent_user))
                for step in steps:
                    step.result()
            for fixture in plan.fixtures:
                _apply(sandbox, fixture)
            # A new agent container of the same image, whose workspace no fixture writes, has the
            # workspace the first boot's snapshot shows: it is kept instead of taken again.
            if sandbox._baseline is None or any(fixture.touches_workspace for fixture in plan.fixtures):
                _snapshot(sandbox)
        except BaseException:
            sandbox.state = SandboxStatus.ERROR
            sandbox.destroy()
            raise
        sandbox.renewed += 1
        sandbox.boot_note = ""
        sandbox.exec_env = {}  # a new sandbox: whoever used the old one is not who uses this one
        sandbox.state = SandboxStatus.READY
        sandbox.expire_after(plan.timeout_s)
        if on_event is not None:
            on_event(BootEvent(sandbox.id, "ready", "renewed", int((time.monotonic() - started) * 1000)))
        return sandbox

    def reap(self, *, everything: bool = False) -> list[str]:
        return reap(self.client, everything=everything)


def connect() -> docker.DockerClient:
    """A client for the local engine; raises SandboxError with the fix when no engine answers."""
    client: docker.DockerClient | None = None
    try:
        client = docker.from_env(timeout=120, max_pool_size=64)
        client.ping()
    except docker.errors.DockerException as exc:
        if client is not None:
            client.close()  # its socket would otherwise outlive the failure
        raise SandboxError(
            f"no Docker engine answers ({exc}); start one, e.g. `scripts/setup-docker`, or set DOCKER_HOST"
        ) from exc
    return client
