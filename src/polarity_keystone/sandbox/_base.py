"""The sandbox interface every backend implements (Docker today, Kubernetes later).

Lifecycle: `SandboxBackend.create(plan)` boots through the pipeline (secrets -> network -> services
ready -> fixtures -> setup -> snapshot) and returns a `Sandbox` in state `ready`, or raises
`SandboxBootError` after destroying what it started. The first `exec` moves it to `running`;
`destroy()` to `stopped`.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from . import _labels
from ._output import OUTPUT_LIMIT
from ._processes import AgentProcess
from ._service_plan import ServiceContainer


class SandboxStatus(enum.StrEnum):
    """Where a sandbox is in its lifecycle (see the module docstring)."""

    CREATING = "creating"
    READY = "ready"
    RUNNING = "running"
    STOPPED = "stopped"
    ERROR = "error"


@dataclass(frozen=True)
class ExecResult:
    """What a command did. `stdout` and `stderr` hold at most the exec's output limit each: when a stream
    was longer, its head and tail are kept around a `[keystone: … of output cut here]` line."""

    exit_code: int
    stdout: str
    stderr: str
    duration_ms: int
    timed_out: bool = False
    stdout_bytes: int = 0
    """Bytes the command wrote to stdout, counting any that were cut."""
    stderr_bytes: int = 0
    truncated: bool = False
    """True when the middle of stdout or stderr was cut to keep within the limit."""


@dataclass(frozen=True)
class SettleReport:
    """How the agent's processes ended after its command returned (`Sandbox.settle_agent`)."""

    lingering: tuple[AgentProcess, ...] = ()
    """Processes still running when the command returned."""
    killed: tuple[AgentProcess, ...] = ()
    """Those still running at the deadline, stopped with SIGKILL."""
    waited_ms: int = 0


@dataclass(frozen=True)
class FileInfo:
    size: int
    mode: str
    checksum: str


@dataclass(frozen=True)
class WorkspaceSnapshot:
    """Every regular file under /workspace, keyed by its path relative to /workspace."""

    captured_at: str
    files: Mapping[str, FileInfo]


@dataclass(frozen=True)
class WorkspaceDiff:
    added: list[str]
    removed: list[str]
    modified: list[str]

    @property
    def written(self) -> list[str]:
        """Paths the run created, changed or deleted."""
        return sorted({*self.added, *self.removed, *self.modified})


@dataclass(frozen=True)
class ServiceEndpoint:
    name: str
    kind: str
    host: str
    port: int | None
    ready: bool
    image: str
    url: str = ""


@dataclass
class BootEvent:
    """A step of the boot pipeline, reported to progress displays."""

    sandbox_id: str
    step: str
    detail: str = ""
    elapsed_ms: int = 0


BootListener = Callable[[BootEvent], None]


class SandboxError(Exception):
    """Base of sandbox failures; raised by backends, caught by the engine which records an `error`."""


class SandboxBootError(SandboxError):
    """Raised by `SandboxBackend.create` when a step of the boot pipeline fails.

    `step` names the pipeline step (image, network, services, fixtures, setup, snapshot) and `output`
    keeps what the failing step printed. The sandbox is already destroyed when this is raised.
    """

    def __init__(self, sandbox_id: str, step: str, message: str, output: str = "") -> None:
        super().__init__(f"sandbox {sandbox_id} failed at {step}: {message}")
        self.sandbox_id = sandbox_id
        self.step = step
        self.output = output


class Sandbox(abc.ABC):
    id: str
    state: SandboxStatus
    services: dict[str, ServiceEndpoint]
    labels: dict[str, str]
    renewed: int = 0
    """How many replicas ran in this sandbox's services before (`SandboxBackend.renew`); 0 when fresh."""
    boot_note: str = ""
    """What the replica should know about how its sandbox was prepared (e.g. why it was booted afresh)."""
    exec_env: Mapping[str, str] = MappingProxyType({})
    """Environment every command in the agent container gets, under the one `exec` is given: who is
    using the sandbox now (a server's sandbox id and token). It is not in the container's own environment
    because a pooled sandbox changes hands without a new container."""

    @property
    def expires_at(self) -> float:
        """When any Keystone process's reaper may remove this sandbox (a UNIX time; inf: never)."""
        return _labels.expires_at(self.labels)

    @abc.abstractmethod
    def exec(
        self,
        command: str | Sequence[str],
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        workdir: str = "/workspace",
        user: str | None = None,
        output_limit: int = OUTPUT_LIMIT,
    ) -> ExecResult:
        """Run a command in the agent container (a string runs with `sh -c`), as `user` (a name or
        uid[:gid]) or, when None, as the container's own user. Of stdout and stderr each, at most
        `output_limit` bytes are kept (head and tail), however much the command prints."""

    @abc.abstractmethod
    def settle_agent(self, deadline: float) -> SettleReport:
        """Close the agent's run: wait until every process it started in the agent container has
        exited, at the latest until `deadline` (a `time.monotonic()` value), then SIGKILL what is left.
        Call it once the agent's command returned, before reading what the agent did: a process it left
        behind could otherwise act after the audit."""

    @abc.abstractmethod
    def service_exec(
        self,
        service: str,
        command: Sequence[str],
        *,
        timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult:
        """Run a command inside a service's container (e.g. psql for an `sql` check)."""

    @abc.abstractmethod
    def service_logs(self, service: str, since: float) -> str:
        """What a service's container printed since `since` (a UNIX time), stdout and stderr."""

    @abc.abstractmethod
    def service_put_file(self, service: str, path: str, content: bytes) -> None:
        """Place a file inside a service's container (e.g. an SQL script for psql -f)."""

    @abc.abstractmethod
    def read_file(self, path: str, limit: int = OUTPUT_LIMIT) -> bytes:
        """The file's first `limit` bytes (an agent's file can be larger than the host's memory); raises
        FileNotFoundError when the path does not exist."""

    @abc.abstractmethod
    def write_file(self, path: str, content: bytes, mode: int = 0o644) -> None: ...

    @abc.abstractmethod
    def delete_file(self, path: str) -> None: ...

    @abc.abstractmethod
    def copy_in(self, local_dir: str, dest: str) -> None:
        """Copy a local directory's contents into the sandbox at `dest`."""

    @abc.abstractmethod
    def workspace_snapshot(self) -> WorkspaceSnapshot: ...

    @abc.abstractmethod
    def diff(self) -> WorkspaceDiff:
        """Changes under /workspace since the before-run snapshot taken at boot."""

    @abc.abstractmethod
    def expire_after(self, seconds: float) -> None:
        """Destroy the sandbox automatically `seconds` from now (replacing any earlier deadline)."""

    def limits_hit(self) -> list[str]:
        """A sentence per resource limit of the agent container that was hit so far (processes, memory),
        for the replica's reasons; empty when none was or the backend cannot tell."""
        return []

    def network_log(self) -> list[dict[str, Any]]:
        """Every network attempt the gateway saw (DNS lookups, HTTP requests, tunnels, TLS connections),
        oldest first; empty when the sandbox runs without a network policy."""
        return []

    @abc.abstractmethod
    def destroy(self) -> None:
        """Remove every container and the network; idempotent."""

    ingress: Mapping[int, str] = MappingProxyType({})
    """Agent port -> `127.0.0.1:<host port>` where the host reaches it (`network.ingress.allow`)."""

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state.value,
            "services": {
                name: {"host": s.host, "port": s.port, "ready": s.ready} for name, s in self.services.items()
            },
            "ingress": {str(port): address for port, address in self.ingress.items()},
            "metadata": dict(self.labels),
        }


class FixtureError(Exception):
    """Raised by a fixture step; `output` is what the failing step printed. The backend turns it into
    a SandboxBootError at step `fixtures`."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


@dataclass(frozen=True)
class FixtureStep:
    """One fixture applied during boot, in order; `apply` raises FixtureError to fail the boot."""

    apply: Callable[[Sandbox], None]
    label: str = "fixture"
    """Names the fixture in errors, e.g. `sql fixture on db (fixtures/schema.sql)`."""
    touches_workspace: bool = True
    """False lets the backend take the before-run snapshot while the fixture runs."""
    content: str = ""
    """A digest of what the step puts in a sandbox (a script, a commit), so that sandboxes prepared by
    equal steps are known to be alike; empty when the step reads what it puts at apply time (files on
    disk), which may change between two runs."""


@dataclass(frozen=True)
class NetworkPolicy:
    """Egress of a sandbox, enforced by a gateway container: the sandbox network has no route out, and
    the gateway (DNS + HTTP proxy + TLS pass-through) lets through only what the policy allows."""

    default_allow: bool
    allow: tuple[str, ...] = ()
    """Host names and globs (`*.example.com`) let through when the default denies."""
    overrides: Mapping[str, str] = field(default_factory=dict)
    """Host name -> sandbox service that answers for it (`api.stripe.com` -> `stripe`)."""
    ingress: tuple[int, ...] = ()
    """Agent ports the host may reach (published on 127.0.0.1 through the gateway)."""


@dataclass(frozen=True)
class AgentUser:
    """Who the agent command runs as; Keystone's own commands (snapshots, checks) stay root. Files the
    sandbox places for the agent (fixtures, secret files, the task file) belong to this user."""

    uid: int
    gid: int
    home: str

    @property
    def exec_user(self) -> str:
        """The `docker exec --user` value: numeric, so it works in images with no passwd entry."""
        return f"{self.uid}:{self.gid}"

    @property
    def is_root(self) -> bool:
        return self.uid == 0


ROOT = AgentUser(0, 0, "/root")
DEFAULT_AGENT = AgentUser(10001, 10001, "/home/agent")
"""Keystone's unprivileged `agent` user, baked into every agent image that does not opt out."""
DEFAULT_PIDS = 512


@dataclass
class SandboxPlan:
    """Everything a backend needs to boot one sandbox, resolved from a spec by the engine."""

    spec_id: str
    run_id: str
    image: str
    """The agent image (already built with setup baked in)."""
    services: list[ServiceContainer] = field(default_factory=list)
    fixtures: list[FixtureStep] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cpu: float = 2.0
    memory_bytes: int = 2 * 1024**3
    """The agent's memory; also the default of each service container."""
    pids_limit: int = DEFAULT_PIDS
    """Processes and threads in the agent container, and in each service container."""
    disk_bytes: int | None = None
    """The agent container's writable layer, through the storage driver's quota (see `disk_quota_problem`)."""
    runtime: str | None = None
    """The agent container's Docker runtime (e.g. `runsc`); None takes the backend's."""
    agent_user: AgentUser = ROOT
    """Owner of the files the sandbox places for the agent; the engine runs the agent as this user."""
    timeout_s: float = 600.0
    egress_allowed: bool = True
    network: NetworkPolicy | None = None
    """When set, egress goes through the gateway (`egress_allowed` is then ignored)."""
    gateway_image: str | None = None
    """Keystone's gateway image; with it the backend also keeps sandboxes away from the host."""
    agent_dir: str | None = None
    owner: str = ""
    keep: bool = False
    sandbox_id: str | None = None
    server_port: int | None = None
    """A port of the Docker host the agent may connect to, as `SERVER_HOST` (the Keystone server that
    booted it); nothing else of the host is reachable."""
    renewals: int = 0
    """How many later replicas may renew this sandbox (`SandboxBackend.renew`); its labels' expiry, which
    other processes' reapers honour, covers them all."""


ResetServices = Callable[["Sandbox"], None]
"""Puts a sandbox's services back as a fresh boot left them (before its fixtures run again); raises
SandboxError when it cannot."""


class SandboxBackend(abc.ABC):
    @abc.abstractmethod
    def create(self, plan: SandboxPlan, on_event: BootListener | None = None) -> Sandbox: ...

    def renew(
        self, sandbox: Sandbox, plan: SandboxPlan, reset: ResetServices, on_event: BootListener | None = None
    ) -> Sandbox:
        """`sandbox`, used by a replica, ready for the next one: a fresh agent container beside the same
        services, which `reset` puts back before the fixtures run again. Raises SandboxError when it
        cannot (the caller destroys the sandbox and boots a new one)."""
        raise SandboxError(f"{type(self).__name__} cannot renew a sandbox")

    def adopt(self, sandbox: Sandbox, plan: SandboxPlan) -> Sandbox:
        """`sandbox`, made ready for `plan` on this backend's engine but for nobody in particular (a pool
        kept between experiments), taken by this backend's next replica: a backend that gives each
        sandbox an identity gives it one here."""
        return sandbox

    @abc.abstractmethod
    def reap(self, *, everything: bool = False) -> list[str]:
        """Remove orphaned sandboxes (owner gone or expired; all of them with `everything`);
        returns the ids of the sandboxes removed."""
