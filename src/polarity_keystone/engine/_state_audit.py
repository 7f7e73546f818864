"""`audit.service_state`: snapshots of every service Keystone can read, around the agent's run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..sandbox import Sandbox
from ..services import ServiceSnapshot, kind_of, snapshot_diff
from ..spec import Service


def capture(sandbox: Sandbox, services: Mapping[str, Service]) -> dict[str, ServiceSnapshot]:
    taken = {name: kind_of(service).snapshot(sandbox, service) for name, service in services.items()}
    return {name: state for name, state in taken.items() if state is not None}


def state_changes(before: dict[str, ServiceSnapshot], after: dict[str, ServiceSnapshot]) -> dict[str, Any]:
    return {name: snapshot_diff(before[name], after[name]) for name in before if name in after}
