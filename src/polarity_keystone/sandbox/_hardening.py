"""What confines an agent container beyond its namespaces: capabilities, limits, runtime, disk quota.

The agent runs as an unprivileged user (see `AgentUser`), so in practice it holds no capability at all;
the bounding set below is what a spec that opts in to `agent.user: root` gets, and what Keystone's own
commands (snapshots, checks, placing files) need as root: owning and reading the agent's files,
switching users and stopping the agent's processes. Everything else Docker grants by default (NET_RAW,
MKNOD, SYS_CHROOT, SETFCAP, AUDIT_WRITE, NET_BIND_SERVICE, FSETID, SETPCAP) is dropped; no-new-privileges
keeps setuid binaries from raising a process back to root.
"""

from __future__ import annotations

import contextlib
import threading

import docker
import docker.errors

AGENT_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETGID", "SETUID")
AGENT_SYSCTLS = {"net.ipv4.ip_unprivileged_port_start": "0"}
"""An unprivileged agent may still serve on port 80 (ingress) without NET_BIND_SERVICE: the setting is
per network namespace, so it concerns the sandbox alone."""

_EVENTS = (
    "for f in /sys/fs/cgroup/pids/pids.events /sys/fs/cgroup/pids.events "
    "/sys/fs/cgroup/memory/memory.oom_control /sys/fs/cgroup/memory.events; do"
    ' [ -r "$f" ] && while IFS= read -r line; do echo "$line"; done < "$f"; done; true'
)
LIMIT_EVENTS_COMMAND = ["sh", "-c", _EVENTS]
"""Prints the cgroup counters of the container (v1 and v2 file names): `max N` counts the forks the pids
limit refused, `oom_kill N` the processes the memory limit killed. Builtins only: it runs where the pids
limit leaves no room for another process (after `settle_agent`'s probe, in the same exec)."""


def limits_from_events(events: str, pids_limit: int, memory_bytes: int) -> list[str]:
    """Sentences for the counters `LIMIT_EVENTS_COMMAND` printed that show a limit was hit."""
    counters: dict[str, int] = {}
    for line in events.splitlines():
        key, _, value = line.strip().partition(" ")
        with contextlib.suppress(ValueError):
            counters[key] = max(counters.get(key, 0), int(value))
    found = []
    if counters.get("max", 0) > 0:
        found.append(
            f"the agent hit the pids limit ({pids_limit} processes, resources.pids): "
            f"{counters['max']} process or thread creations were refused"
        )
    if counters.get("oom_kill", 0) > 0:
        found.append(
            f"the agent hit the memory limit ({memory_bytes // 1024**2} MiB, resources.memory): "
            f"{counters['oom_kill']} process(es) killed"
        )
    return found


def pids_exhausted(pids_limit: int) -> str:
    return (
        f"the agent exhausted the pids limit ({pids_limit} processes, resources.pids): processes it left "
        "running hold every slot, so nothing more can start in its container"
    )


def container_stopped(state: dict[str, object], pids_limit: int, memory_bytes: int) -> str:
    """Why the agent's container is gone mid-run, from Docker's `State`. Under gVisor the whole sandbox
    ends when the agent exhausts its pids or memory limit (the limits bound the sandbox kernel itself)."""
    how = "killed by the memory limit" if state.get("OOMKilled") else f"exit code {state.get('ExitCode')}"
    return (
        f"the agent's container stopped during the run ({how}): the agent exhausted its pids limit "
        f"({pids_limit}, resources.pids) or its memory limit ({memory_bytes // 1024**2} MiB, "
        "resources.memory), or ended the container's init"
    )


def runtime_problem(client: docker.DockerClient, runtime: str) -> str | None:
    """Why the engine cannot run containers with `runtime`, or None when it can."""
    registered = sorted((client.info().get("Runtimes") or {}).keys())
    if runtime in registered:
        return None
    hint = (
        "scripts/setup-docker registers it (Debian's `runsc` package)"
        if runtime == "runsc"
        else "register it in daemon.json's `runtimes` and reload dockerd"
    )
    return (
        f"the Docker runtime {runtime!r} is not registered with this engine "
        f"(registered: {', '.join(registered) or 'none'}); {hint}"
    )


_quota_lock = threading.Lock()
_quota_problems: dict[str, str | None] = {}


def disk_quota_problem(client: docker.DockerClient, image: str) -> str | None:
    """Why the engine cannot cap a container's writable layer (`--storage-opt size`), or None.

    Asked by creating (never starting) a container with a quota, once per engine: only the storage
    driver knows, e.g. overlay2 can only on XFS mounted with `pquota`.
    """
    key = str(client.api.base_url)
    with _quota_lock:
        if key not in _quota_problems:
            _quota_problems[key] = _probe_quota(client, image)
        return _quota_problems[key]


def _probe_quota(client: docker.DockerClient, image: str) -> str | None:
    try:
        container = client.containers.create(image, ["true"], storage_opt={"size": "64M"}, labels={})
    except docker.errors.APIError as exc:
        info = client.info()
        backing = dict(info.get("DriverStatus") or []).get("Backing Filesystem", "?")
        return (
            f"this Docker engine cannot cap a container's disk (storage driver {info.get('Driver')} on "
            f"{backing}: {exc.explanation or exc}); put Docker's data-root on XFS mounted with pquota "
            "(scripts/setup-docker does so when it starts a fresh engine), or remove resources.disk"
        )
    container.remove(force=True)
    return None
