"""The processes an agent left running in its container, read from /proc by one probe.

The agent's command returning does not end what it started: a daemon or a `(sleep 1; …) &` keeps
running, and what it writes after the audit closed would escape the audit. So once the command returns,
the engine waits for the agent's other processes and stops what outlives the deadline (see
`Sandbox.settle_agent`).

Who is the agent: every process in the container except its init (PID 1: agent containers run with
Docker's `--init`), the container's own command (`sleep infinity`: the first process started after
init, long before any exec) and the probe itself. The probe is one process (shell builtins only), so it
has no children to tell apart. A process is known by its /proc directory, never by what it says about
itself: a process name may hold any byte, newlines included, so a record that does not parse counts as
the agent's.
"""

from __future__ import annotations

from dataclasses import dataclass

PROBE = [
    "sh",
    "-c",
    "echo $$; for d in /proc/[0-9]*; do"
    ' read -r s 2>/dev/null < "$d/stat" && printf "%s %s\\n" "${d#/proc/}" "$s"; done',
]
"""Prints its own PID, then one `<pid> <first line of /proc/<pid>/stat>` per process; builtins only."""

_GONE_STATES = {"Z", "X"}
"""Zombie and dead: exited, only waiting for their parent (or init) to reap them."""


@dataclass(frozen=True)
class AgentProcess:
    pid: int
    """Its PID inside the container."""
    name: str
    """Its command name (at most 15 characters, as the kernel keeps it); `?` when unreadable."""


@dataclass(frozen=True)
class _Stat:
    name: str
    state: str
    start: int


def _stat(line: str) -> _Stat | None:
    """The fields of a /proc/<pid>/stat line, or None when it does not parse."""
    opened, closed = line.find("("), line.rfind(")")
    fields = line[closed + 1 :].split()
    if opened < 0 or closed < opened or len(fields) < 20 or not fields[19].isdigit():
        return None
    return _Stat(name=line[opened + 1 : closed], state=fields[0], start=int(fields[19]))


def agent_processes(probe_output: str) -> list[AgentProcess]:
    """The agent's live processes in what PROBE printed, by PID; ValueError when it is no probe output."""
    first, _, rest = probe_output.partition("\n")
    if not first.isdigit():
        raise ValueError(f"the process probe printed {first[:80]!r} instead of its PID")
    probe = int(first)
    stats: dict[int, _Stat | None] = {}
    for line in rest.split("\n"):  # only newlines: `read` stops at them, other line breaks are data
        pid, _, stat = line.partition(" ")
        if pid.isdigit():
            stats[int(pid)] = _stat(stat)
    started = [(stat.start, pid) for pid, stat in stats.items() if stat is not None and pid != 1]
    residents = {1, probe, *([min(started)[1]] if started else [])}
    return [
        AgentProcess(pid=pid, name=stat.name if stat else "?")
        for pid, stat in sorted(stats.items())
        if pid not in residents and (stat is None or stat.state not in _GONE_STATES)
    ]
