"""Services reset between replicas instead of booted again, and the proof that a reset gave a fresh
boot's state: every service's state digest after the reset (and the fixtures) equals the digest the same
service had after its first boot."""

from __future__ import annotations

from functools import partial

from ..sandbox import Sandbox, SandboxBackend, SandboxError, SandboxPlan
from ..services import kind_of
from ..spec import Service, Spec


def resettable(spec: Spec) -> bool:
    """Whether replicas of the spec may share services, reset in between: every service's kind can be
    reset and read back, and the spec did not ask for fresh ones (`resources.fresh_services`)."""
    return not spec.resources.fresh_services and all(kind_of(service).resettable for service in spec.services)


def reset_services(services: dict[str, Service], sandbox: Sandbox) -> None:
    for service in services.values():
        kind_of(service).reset(sandbox, service)


def state_digests(sandbox: Sandbox, services: dict[str, Service]) -> dict[str, str]:
    return {name: kind_of(service).state_digest(sandbox, service) for name, service in services.items()}


def differing(reference: dict[str, str], now: dict[str, str]) -> list[str]:
    return sorted(name for name in reference.keys() | now.keys() if reference.get(name) != now.get(name))


class ResetFailed(SandboxError):
    """A used sandbox could not be made as fresh again; it has been destroyed."""


def renew_verified(
    backend: SandboxBackend,
    sandbox: Sandbox,
    plan: SandboxPlan,
    services: dict[str, Service],
    reference: dict[str, str],
) -> Sandbox:
    """`sandbox` renewed by `backend` for `plan` (a fresh agent container, `services` reset, the fixtures
    again), its services' digests equal to `reference` (theirs after the first boot). Raises ResetFailed
    saying why otherwise, the sandbox destroyed."""
    try:
        renewed = backend.renew(sandbox, plan, partial(reset_services, services))
    except SandboxError as exc:  # renew destroyed it
        raise ResetFailed(f"resetting the services of an earlier replica's sandbox failed ({exc})") from exc
    try:
        changed = differing(reference, state_digests(renewed, services))
    except SandboxError as exc:
        renewed.destroy()
        raise ResetFailed(f"reading the state of reset services failed ({exc})") from exc
    if changed:
        renewed.destroy()
        raise ResetFailed(
            f"after an earlier replica, a reset left {', '.join(changed)} different from a fresh boot "
            "(something a reset does not undo, e.g. a new database role)"
        )
    return renewed
