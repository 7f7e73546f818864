"""Sandboxes the server booted: those of `POST /v1/sandboxes`, kept live here until destroyed or timed
out, and those of experiment replicas, which the engine destroys itself.

Every sandbox gets a `ks_sb_` token, passed to its agent with KEYSTONE_SANDBOX_ID and KEYSTONE_BASE_URL,
revoked when the sandbox goes away. Lifecycle changes are published on the sandbox's event stream. Each
sandbox is recorded with this server's instance id: another server on the store leaves it alone while
this one lives (see `_instance`).
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from ..engine import AGENT_OUTPUT_LIMIT, TASK_FILE, plan_replica
from ..sandbox import (
    AgentUser,
    BootEvent,
    FixtureError,
    ImageError,
    Sandbox,
    SandboxBootError,
    SandboxError,
    SandboxPlan,
)
from ..secrets import Redactor
from ..spec import LoadedSpec, Service
from ..store import NotFound, SandboxRecord, SandboxStateName, Store
from ._agent_reach import agent_reach
from ._engine import LazyEngine
from ._errors import AtCapacity, SandboxFailed, WrongState
from ._events import EventBus, sandbox_stream
from ._keys import create_sandbox_token

EXPIRY_BACKSTOP_S = 60.0
"""The backend's own timer fires this much after ours, only if ours somehow did not."""
FINAL_STATES = ("destroyed", "error")


def new_sandbox_id() -> str:
    return f"sb-{secrets.token_hex(6)}"


@dataclass(frozen=True)
class BootRequest:
    """What `POST /v1/sandboxes` asks for: a stored spec's sandbox, or an image's (`loaded` is then the
    spec made from the request, `spec_id` empty and `spec_version` None)."""

    owner: str
    project_id: str
    loaded: LoadedSpec
    spec_id: str
    spec_version: int | None
    timeout_s: float | None
    metadata: dict[str, Any]
    provided_secrets: dict[str, str]
    """Never stored; they win over the spec's declared sources."""
    seed: int | None
    base_url: str


@dataclass
class LiveSandbox:
    sandbox: Sandbox
    owner: str
    project_id: str
    env: dict[str, str]
    """What commands run with: the spec's agent environment plus the KEYSTONE_* identity."""
    redact: Redactor
    user: AgentUser
    """Commands run as the spec's agent user, as the agent of a replica does (never root by default)."""
    services: dict[str, Service]
    """The spec's services with their secrets filled in, for checks run against the live sandbox."""
    timer: threading.Timer | None = None


def _holders(live: LiveSandbox) -> tuple[tuple[str, str], ...]:
    """Whose limits a live sandbox counts against: its key's and its project's."""
    return (("key", live.owner), ("project", live.project_id))


class SandboxManager:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        engine: LazyEngine,
        max_per_key: int,
        max_per_project: int,
        *,
        instance_id: str,
    ) -> None:
        self._store = store
        self._instance_id = instance_id
        self._bus = bus
        self._engine = engine
        self._max_per_key = max_per_key
        self._max_per_project = max_per_project
        self._live: dict[str, LiveSandbox] = {}
        self._tokens: dict[str, str] = {}
        """sandbox id -> the id of its `ks_sb_` token, revoked when the sandbox goes away."""
        self._redactors: dict[str, Redactor] = {}
        """sandbox id -> the redactor of its secrets, for what its agent reports (trace events)."""
        self._booting: Counter[tuple[str, str]] = Counter()
        """("key", id) and ("project", id) -> sandboxes of it booting now."""
        self._lock = threading.Lock()

    # --- identity and lifecycle records, shared with experiment replicas ---------------------------

    def admit(
        self,
        sandbox_id: str,
        owner: str,
        project_id: str,
        spec_id: str,
        base_url: str,
        metadata: dict[str, Any],
        redact: Redactor,
    ) -> dict[str, str]:
        """Record a sandbox about to boot and issue its token; returns the environment that tells its
        agent who it is and where the server is (`agent_reach`: its plan's `server_port` must come from
        the same `base_url`). `redact` hides its secrets in what the agent reports. The record comes
        before the token, so no token outlives a stopped server unrecorded (see `sweep`)."""
        record = SandboxRecord(
            sandbox_id,
            spec_id,
            "creating",
            owner,
            datetime.now(UTC),
            None,
            metadata,
            {},
            project_id,
            instance_id=self._instance_id,
        )
        self._store.put_sandbox(record)
        token, key = create_sandbox_token(self._store, sandbox_id, project_id)
        with self._lock:
            self._tokens[sandbox_id] = key.id
            self._redactors[sandbox_id] = redact
        return {
            "KEYSTONE_SANDBOX_ID": sandbox_id,
            "POLARITY_SANDBOX_ID": sandbox_id,
            "KEYSTONE_API_KEY": token,
            "KEYSTONE_BASE_URL": agent_reach(base_url).base_url,
        }

    def on_boot(self, event: BootEvent) -> None:
        self._bus.publish(
            sandbox_stream(event.sandbox_id),
            "status",
            {"step": event.step, "detail": event.detail, "elapsed_ms": event.elapsed_ms},
        )

    def booted(self, sandbox: Sandbox, extra: dict[str, Any], expires_at: datetime | None) -> SandboxRecord:
        return self.ready(sandbox.id, sandbox.describe(), extra, expires_at)

    def ready(
        self, sandbox_id: str, described: dict[str, Any], extra: dict[str, Any], expires_at: datetime | None
    ) -> SandboxRecord:
        """The sandbox booted (`described` as `Sandbox.describe()` gives it, wherever it runs)."""
        record = self._store.get_sandbox(sandbox_id)
        info = {**record.info, **extra, "services": described["services"]}
        record = replace(record, state="ready", info=info, expires_at=expires_at)
        self._store.put_sandbox(record)
        self._bus.publish(sandbox_stream(sandbox_id), "status", {"state": "ready"})
        return record

    def retire(self, sandbox_id: str, state: SandboxStateName = "destroyed", reason: str = "") -> None:
        """The sandbox is gone (or never came up): revoke its token, record and announce the final state."""
        with self._lock:
            key_id = self._tokens.pop(sandbox_id, None)
            self._redactors.pop(sandbox_id, None)
        if key_id is not None:
            self._store.revoke_api_key(key_id)
        try:
            record = self._store.get_sandbox(sandbox_id)
        except NotFound:
            return
        if record.state in FINAL_STATES:
            return
        self._store.put_sandbox(replace(record, state=state))
        data = {"state": state, **({"reason": reason} if reason else {})}
        self._bus.publish(sandbox_stream(sandbox_id), "status", data)

    # --- sandboxes created through the API ----------------------------------------------------------

    def create(self, request: BootRequest) -> SandboxRecord:
        """Boot a sandbox from the spec and return its record once ready. Raises AtCapacity, SecretError
        (invalid input) or SandboxFailed (it could not boot)."""
        holders = (("key", request.owner), ("project", request.project_id))
        with self._lock:
            for holder, limit in zip(holders, (self._max_per_key, self._max_per_project), strict=True):
                live = sum(1 for item in self._live.values() if holder in _holders(item))
                if live + self._booting[holder] >= limit:
                    raise AtCapacity(
                        f"at capacity: this {holder[0]} already has {limit} live sandboxes; destroy one "
                        "or retry later",
                        retry_after=5,
                    )
            self._booting.update(holders)
        try:
            return self._boot(request)
        finally:
            with self._lock:
                self._booting.subtract(holders)

    def _boot(self, request: BootRequest) -> SandboxRecord:
        owner, loaded = request.owner, request.loaded
        spec = loaded.spec
        try:
            prepared = self._engine.prepare(loaded, request.provided_secrets)
        except (SandboxError, ImageError, FixtureError) as exc:
            raise SandboxFailed(str(exc), details={"step": "prepare"}) from exc
        seed = request.seed if request.seed is not None else secrets.randbits(31)
        sandbox_id = new_sandbox_id()
        plan = plan_replica(
            prepared, run_id=f"api-{sandbox_id}", scenario_id=spec.id, replica=0, seed=seed, parameters={}
        )
        identity = self.admit(
            sandbox_id,
            owner,
            request.project_id,
            request.spec_id,
            request.base_url,
            request.metadata,
            plan.redact,
        )
        timeout = request.timeout_s or spec.resources.timeout
        sandbox_plan: SandboxPlan = replace(
            plan.sandbox,
            sandbox_id=sandbox_id,
            env={**plan.sandbox.env, **identity},
            timeout_s=timeout,
            server_port=agent_reach(request.base_url).server_port,
        )
        try:
            sandbox = self._engine.backend().create(sandbox_plan, self.on_boot)
            sandbox.write_file(TASK_FILE, spec.task.prompt.encode())
        except SandboxBootError as exc:
            self.retire(sandbox_id, "error", plan.redact(str(exc)))
            details = {"sandbox_id": sandbox_id, "step": exc.step, "output": plan.redact(exc.output)}
            raise SandboxFailed(plan.redact(str(exc)), details=details) from exc
        except SandboxError as exc:
            self.retire(sandbox_id, "error", plan.redact(str(exc)))
            raise SandboxFailed(plan.redact(str(exc)), details={"sandbox_id": sandbox_id}) from exc
        live = LiveSandbox(
            sandbox,
            owner,
            request.project_id,
            {**plan.agent_env, **identity},
            plan.redact,
            plan.sandbox.agent_user,
            plan.services,
        )
        with self._lock:
            self._live[sandbox_id] = live
        expires_at = self._schedule_expiry(sandbox_id, live, timeout)
        info = {
            **({"spec_version": request.spec_version} if request.spec_version is not None else {}),
            "seed": seed,
            "image": sandbox_plan.image,
            "timeout_s": timeout,
        }
        return self.booted(sandbox, info, expires_at)

    def _schedule_expiry(self, sandbox_id: str, live: LiveSandbox, seconds: float) -> datetime:
        if live.timer is not None:
            live.timer.cancel()
        live.timer = threading.Timer(seconds, self._expire, [sandbox_id])
        live.timer.daemon = True
        live.timer.start()
        live.sandbox.expire_after(seconds + EXPIRY_BACKSTOP_S)
        return datetime.now(UTC) + timedelta(seconds=seconds)

    def _expire(self, sandbox_id: str) -> None:
        with contextlib.suppress(Exception):
            self.destroy(sandbox_id, reason="timeout")

    def redactor(self, sandbox_id: str) -> Redactor:
        """The redactor of a sandbox this server booted and has not retired (else one that hides nothing:
        a retired sandbox's token no longer reports anything)."""
        with self._lock:
            return self._redactors.get(sandbox_id, Redactor({}))

    def live(self, sandbox_id: str) -> LiveSandbox:
        """The running sandbox; NotFoundError if unknown, WrongState if it is gone."""
        with self._lock:
            live = self._live.get(sandbox_id)
        if live is None:
            record = self._store.get_sandbox(sandbox_id)
            raise WrongState(f"sandbox {sandbox_id} is {record.state}", code="sandbox_not_running")
        return live

    def destroy(self, sandbox_id: str, reason: str = "") -> None:
        with self._lock:
            live = self._live.pop(sandbox_id, None)
        if live is None:
            self._store.get_sandbox(sandbox_id)  # NotFound for an unknown id
        else:
            if live.timer is not None:
                live.timer.cancel()
            live.sandbox.destroy()
        self.retire(sandbox_id, "destroyed", reason)

    def extend(self, sandbox_id: str, seconds: float) -> SandboxRecord:
        live = self.live(sandbox_id)
        expires_at = self._schedule_expiry(sandbox_id, live, seconds)
        record = self._store.get_sandbox(sandbox_id)
        record = replace(record, expires_at=expires_at, info={**record.info, "timeout_s": seconds})
        self._store.put_sandbox(record)
        self._bus.publish(
            sandbox_stream(sandbox_id), "status", {"step": "timeout", "expires_at": expires_at.isoformat()}
        )
        return record

    def run_command(
        self, sandbox_id: str, command: str, timeout_s: float | None, background: bool
    ) -> dict[str, Any]:
        live = self.live(sandbox_id)
        first = live.sandbox.state.value == "ready"
        argv = ["sh", "-c", 'nohup sh -c "$1" >/dev/null 2>&1 &', "sh", command] if background else command
        try:
            result = live.sandbox.exec(
                argv,
                timeout=timeout_s,
                env={"HOME": live.user.home, **live.env},
                user=live.user.exec_user,
                output_limit=AGENT_OUTPUT_LIMIT,
            )
        except SandboxError as exc:
            raise WrongState(live.redact(str(exc)), code="sandbox_not_running") from exc
        if first:
            record = self._store.get_sandbox(sandbox_id)
            self._store.put_sandbox(replace(record, state="running"))
        shown = live.redact(command)
        self._bus.publish(
            sandbox_stream(sandbox_id),
            "command",
            {"command": shown, "exit_code": result.exit_code, "duration_ms": result.duration_ms},
        )
        return {
            "command": shown,
            "stdout": live.redact(result.stdout),
            "stderr": live.redact(result.stderr),
            "exit_code": result.exit_code,
            "duration_ms": result.duration_ms,
            "timed_out": result.timed_out,
            "background": background,
        }

    def file_event(self, sandbox_id: str, action: str, path: str) -> None:
        self._bus.publish(sandbox_stream(sandbox_id), "file", {"action": action, "path": path})

    # --- start-up and shut-down -------------------------------------------------------------------

    def sweep(self) -> None:
        """End the sandboxes of servers that stopped without destroying them (their instance's lease
        expired; see `_instance`): mark them destroyed and revoke their tokens. Their containers went
        with their server: its reaper on the Docker engine removes them when the process ends (see the
        sandbox package's `_lease`), whichever server then sweeps the store."""
        swept = self._store.destroy_abandoned_sandboxes()
        if not swept:
            return
        ids = {record.id for record in swept}
        for key in self._store.list_api_keys():
            if key.kind == "sandbox" and key.sandbox_id in ids and not key.revoked:
                self._store.revoke_api_key(key.id)
        for record in swept:
            data = {"state": "destroyed", "reason": "the server that booted it stopped"}
            self._bus.publish(sandbox_stream(record.id), "status", data)

    def close(self) -> None:
        with self._lock:
            ids = list(self._live)
        for sandbox_id in ids:
            with contextlib.suppress(Exception):
                self.destroy(sandbox_id, reason="the server stopped")
