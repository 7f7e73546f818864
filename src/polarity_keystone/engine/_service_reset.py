"""Services reset between replicas instead of booted again, and the proof that a reset gave a fresh
boot's state: every service's state digest after the reset (and the fixtures) equals the digest the same
service had after its first boot."""

from __future__ import annotations

from ..sandbox import Sandbox
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
