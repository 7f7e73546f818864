"""Replay one replica from its seed in an identical sandbox, refusing a changed spec or image."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from ..results import ReplicaResult
from ..sandbox import BootListener, Sandbox, SandboxBackend
from ._experiment import scenarios_of
from ._model_calls import Recordings
from ._parameters import parameters_text
from ._prepare import PreparedSpec
from ._replica import ReplicaJob, booting_on, run_replica
from ._trace import ReportedTrace


class FingerprintMismatch(Exception):
    """Raised by `replay` when the spec, agent or images differ from the failing run's; the CLI
    reports it as invalid input and `--force` skips the check."""


def replay(
    prepared: PreparedSpec,
    backend: SandboxBackend,
    *,
    seed: int,
    replica: int = 0,
    parameters: dict[str, Any],
    fingerprint: str | None,
    force: bool = False,
    keep: bool = False,
    on_boot: BootListener | None = None,
    on_sandbox: Callable[[Sandbox], None] | None = None,
    reported_trace: ReportedTrace | None = None,
    recordings: Recordings | None = None,
) -> ReplicaResult:
    """`recordings` (a replica's `recordings`): its model services answer the same calls from them,
    with no network, instead of in their spec's mode."""
    if fingerprint and fingerprint != prepared.fingerprint_id and not force:
        raise FingerprintMismatch(
            f"the spec, agent or images changed since the run being replayed (fingerprint "
            f"{fingerprint} then, {prepared.fingerprint_id} now); the replay would not re-create the same "
            "sandbox. Restore them, or pass --force to replay anyway."
        )
    spec = prepared.spec
    cells = scenarios_of(spec.parallelism, spec.id)
    as_text = parameters_text(parameters)
    cell = next(((sid, params) for sid, params in cells if parameters_text(params) == as_text), None)
    if cell is None:
        wanted = ", ".join(f"--param {k}=..." for k in sorted(spec.parallelism.matrix)) or "no --param"
        raise FingerprintMismatch(
            f"parameters {parameters} are not a cell of this spec's matrix (expected {wanted})"
        )
    job = ReplicaJob(f"replay-{secrets.token_hex(4)}", cell[0], replica, seed, cell[1])
    return run_replica(
        prepared,
        booting_on(backend),
        job,
        keep=keep,
        on_boot=on_boot,
        on_sandbox=on_sandbox,
        reported_trace=reported_trace,
        replaying=recordings,
    )
