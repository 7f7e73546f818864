"""`keystone.*` labels on every container and network, and who owns them.

The owner label names the host, process id and process start time of the engine that created the
resource, so the reaper can tell a crashed engine's leftovers from a live engine's sandboxes.
"""

from __future__ import annotations

import os
import socket
import time

MANAGED = "keystone.managed"
SANDBOX = "keystone.sandbox-id"
RUN = "keystone.run-id"
SPEC = "keystone.spec-id"
OWNER = "keystone.owner"
EXPIRES = "keystone.expires-at"
ROLE = "keystone.role"
SERVICE = "keystone.service"
KEEP = "keystone.keep"


def _start_ticks(pid: int) -> str | None:
    """When a live process started (clock ticks since boot); None when it is gone. A zombie (killed, its
    parent has not waited for it yet) is gone: its sandboxes are orphans already."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return None if fields[0] in ("Z", "X") else fields[19]
    except (OSError, IndexError):
        return None


def owner_id(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}/{pid}/{_start_ticks(pid) or '?'}"


def owner_alive(owner: str) -> bool:
    """False only when the owner ran on this host and that process is gone; other hosts' owners are
    assumed alive (their sandboxes expire instead)."""
    host, _, rest = owner.partition("/")
    pid, _, ticks = rest.partition("/")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    return _start_ticks(int(pid)) == ticks


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


def expired(labels: dict[str, str], now: float | None = None) -> bool:
    try:
        return float(labels.get(EXPIRES, "inf")) < (time.time() if now is None else now)
    except ValueError:
        return False
