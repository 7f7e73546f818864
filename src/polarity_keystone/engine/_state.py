"""`audit.service_state`: snapshots of every service Keystone can read, around the agent's run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..sandbox import Sandbox
from ..services import kind_of
from ..services.state import Snapshot, snapshot, state_diff
from ..spec._models import Service


def capture(sandbox: Sandbox, services: Mapping[str, Service]) -> dict[str, Snapshot]:
    taken = {name: snapshot(sandbox, service, kind_of(service)) for name, service in services.items()}
    return {name: state for name, state in taken.items() if state is not None}


def state_changes(before: dict[str, Snapshot], after: dict[str, Snapshot]) -> dict[str, Any]:
    return {name: state_diff(before[name], after[name]) for name in before if name in after}
