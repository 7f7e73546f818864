"""`POST /v1/sandboxes/{id}/checks`: run spec invariants against a live sandbox, now.

The checks are the spec's own (`scoring.run_checks`, the code an experiment's replica is scored with), so
a sandbox scorer called on a live sandbox answers what the same invariant in a spec would. Each entry is
a spec invariant (`{description?, weight?, gate?, check: {type, ...}}`) or just its check
(`{type, ...}`), validated by the spec's models: a bad one is a 400 naming its key and field. Commands of
`command_exit` and `custom` checks keep the spec's timeouts (60 s by default).

Only a project key may run checks: they run as the container's own user, as after a replica's agent,
which a sandbox's own token (held by the agent inside it) must not be able to do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from ..results import InvariantResult
from ..scoring import CheckContext, run_checks
from ..secrets import redact_all
from ..spec import CustomCheck, Invariant
from ._deps import Context, LiveKey
from ._errors import InvalidRequest, PayloadTooLarge
from ._models import error_responses

router = APIRouter(prefix="/v1/sandboxes", tags=["Sandboxes"])

MAX_CHECKS_PER_CALL = 20
MAX_KEY_LENGTH = 500
"""A scorer's key holds its command or query (`command_exits_pytest_-q`)."""
MAX_CHECKS_BODY_BYTES = 64 * 1024
"""The invariants of one call, as JSON: checks are short; a judge's criteria are capped by the spec too."""
NO_SPEC_DIR = Path("/nonexistent")
"""Where a check would read a local script from: nowhere, as `_require_runnable` refuses scripts."""

CHECKS_DESCRIPTION = (
    "Each invariant runs with the check code an experiment's replica is scored with, in order, and answers "
    "an InvariantResult (`passed`, `score`, `skipped`, `message`, `evidence`). An entry is a spec invariant "
    "(`{check: {type, ...}, weight?, gate?}`) or a bare check (`{type, ...}`); a bad one is a 400 naming its "
    f"key and field. At most {MAX_CHECKS_PER_CALL} invariants and {MAX_CHECKS_BODY_BYTES // 1024} KiB a call "
    "(413). Project keys only: a sandbox token is refused (403). 409 when the sandbox is gone."
)


def _as_invariant(value: Any) -> Any:
    """A bare check (`{type: file_exists, path: ...}`) is the invariant holding just that check."""
    if isinstance(value, dict) and "check" not in value and "type" in value:
        return {"check": value}
    return value


CheckKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY_LENGTH)]
CheckEntry = Annotated[Invariant, BeforeValidator(_as_invariant)]


class SandboxChecks(BaseModel):
    model_config = ConfigDict(extra="forbid")

    invariants: dict[CheckKey, CheckEntry] = Field(
        min_length=1,
        max_length=MAX_CHECKS_PER_CALL,
        description="Invariants by key, as a spec's `invariants` holds them, or bare checks (`{type, ...}`); "
        f"at most {MAX_CHECKS_PER_CALL}, run in order.",
    )


class SandboxCheckResults(BaseModel):
    results: list[InvariantResult]


@router.post(
    "/{sandbox_id}/checks",
    response_model=SandboxCheckResults,
    summary="Run spec invariants (file_exists, file_content, command_exit, sql, llm_as_judge...) in a live "
    "sandbox",
    description=CHECKS_DESCRIPTION,
    responses=error_responses(403, 404, 409, 413),
)
def run_sandbox_checks(
    sandbox_id: str, body: SandboxChecks, context: Context, caller: LiveKey
) -> SandboxCheckResults:
    context.sandbox(caller.project_id, sandbox_id)
    size = len(json.dumps(body.model_dump(mode="json", exclude_unset=True)))
    if size > MAX_CHECKS_BODY_BYTES:
        raise PayloadTooLarge(
            f"the invariants of one call may be at most {MAX_CHECKS_BODY_BYTES} bytes as JSON"
        )
    live = context.sandboxes.live(sandbox_id)
    for key, invariant in body.invariants.items():
        _require_runnable(key, invariant, live.services)
    checks = CheckContext(live.sandbox, live.services, NO_SPEC_DIR, redact=live.redact)
    results = run_checks(body.invariants, checks)
    return SandboxCheckResults(results=redact_all(results, live.redact))


def _require_runnable(key: str, invariant: Invariant, services: dict[str, Any]) -> None:
    """What the spec's loader would refuse for this sandbox's spec: a service it does not have, a local
    script (a live sandbox's checks have no spec directory to take it from)."""
    check = invariant.check
    service = getattr(check, "service", None)
    if service is not None and service not in services:
        known = ", ".join(sorted(services)) or "none"
        raise InvalidRequest(
            f"invariants.{key}.check.service: this sandbox has no service {service!r} (it has: {known})"
        )
    if isinstance(check, CustomCheck) and check.script is not None:
        raise InvalidRequest(
            f"invariants.{key}.check.script: a live sandbox's custom check takes a `command`"
        )
