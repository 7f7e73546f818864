"""`keystone.*` labels on every container and network, and who owns them.

The owner label names the engine process that created the resource: a random part unique to the process,
so two processes that share a hostname and a pid (containers with the host's hostname, each its own PID 1)
never pass for each other, and its host and process id for people. Whether an owner still lives is not
read from the label: its reaper container says so (see `_lease`).
"""

from __future__ import annotations

import math
import os
import secrets
import socket
import time
from collections.abc import Mapping

MANAGED = "keystone.managed"
SANDBOX = "keystone.sandbox-id"
RUN = "keystone.run-id"
SPEC = "keystone.spec-id"
OWNER = "keystone.owner"
EXPIRES = "keystone.expires-at"
ROLE = "keystone.role"
SERVICE = "keystone.service"
KEEP = "keystone.keep"
REAPER_ROLE = "reaper"
"""`keystone.role` of an owner's reaper container."""
PORT_KEEPER_ROLE = "port-keeper"
"""`keystone.role` of the container that removes a server's port rule when its process ends."""
PROCESS_ROLES = frozenset({REAPER_ROLE, PORT_KEEPER_ROLE})
"""Roles of containers kept for a process, not for a sandbox: each ends when its process does."""


_PROCESS_OWNER: dict[int, str] = {}


def new_owner_id() -> str:
    """`<random>@<host>/<pid>`: the random part makes it unique; host and pid are for people reading
    `docker ps`. It does not start with the hostname, so a Keystone from before reapers (which judged
    `<host>/<pid>/<start time>` owners by /proc) leaves these owners' sandboxes alone."""
    return f"{secrets.token_hex(8)}@{socket.gethostname()}/{os.getpid()}"


def owner_id() -> str:
    """This process's owner id; a forked child gets its own."""
    pid = os.getpid()
    if pid not in _PROCESS_OWNER:
        _PROCESS_OWNER[pid] = new_owner_id()
    return _PROCESS_OWNER[pid]


def leased(owner: str) -> bool:
    """Whether `owner` holds a reaper while it lives (any owner id of this form); an older Keystone's
    owners do not, so whether they live is unknown and only expiry removes their sandboxes."""
    return "@" in owner


def sandbox_labels(
    sandbox_id: str, run_id: str, spec_id: str, timeout_s: float, owner: str, keep: bool = False
) -> dict[str, str]:
    return {
        KEEP: "true" if keep else "false",
        MANAGED: "true",
        SANDBOX: sandbox_id,
        RUN: run_id,
        SPEC: spec_id,
        OWNER: owner,
        EXPIRES: str(int(time.time() + timeout_s + 60)),
    }


def expires_at(labels: Mapping[str, str]) -> float:
    """When any process's reaper may remove what carries `labels` (a UNIX time; inf: never)."""
    try:
        return float(labels.get(EXPIRES, "inf"))
    except ValueError:
        return math.inf


def expired(labels: dict[str, str], now: float | None = None) -> bool:
    return expires_at(labels) < (time.time() if now is None else now)
