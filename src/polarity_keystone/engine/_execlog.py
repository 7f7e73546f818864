"""The commands the agent itself runs, for `audit.commands` and `forbidden.commands`.

Keystone sees what it runs through `sandbox.exec`, not the programs the agent starts. Those are logged by
`execlog.so`, an LD_PRELOAD library built in Keystone's local image `execlog` (source and design:
sandbox/dockerfiles/execlog/execlog.c). Only for a spec that asks for it, the library and an empty log
are layered onto the agent image (built once per image: copying them into each sandbox would add ~0.1 s
to every boot) and the agent runs with LD_PRELOAD and KEYSTONE_EXECLOG set. Every process it starts,
and their descendants, then append one JSON line per exec (the execve family, posix_spawn) to the log,
read once the agent has ended.

What the log cannot show:
- programs that never go through glibc's exec functions: static binaries and programs that make the
  exec system call themselves (Go binaries, for one), fexecve/execveat, and the shell that system() and
  popen() start (the commands that shell runs are seen);
- anything in an image without glibc (Alpine/musl), where the library cannot load;
- an agent that means to hide: it can point a child's LD_PRELOAD elsewhere (one that drops it gets it
  back), run a static binary, or edit the log. This is an audit of what an agent did, not a security
  boundary. A log that does not show Keystone starting the agent (the library did not load, or the log
  was removed) is an error, never an empty audit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._jsonl import json_objects
from ..sandbox import ImageResolver, ResolvedImage, Sandbox, SandboxError
from ..spec import Spec

SHIM_IMAGE = "execlog"
"""Keystone's local image that carries the library and the empty log (sandbox/dockerfiles/execlog)."""
SHIM_PATH = "/opt/keystone/execlog.so"
LOG_PATH = "/keystone/execlog.jsonl"


def needs_command_log(spec: Spec) -> bool:
    return bool(spec.audit.commands) or spec.forbidden.commands is not None


def with_command_log(resolver: ImageResolver, agent_image: ResolvedImage) -> ResolvedImage:
    """The agent image with the library and the log in place."""
    return resolver.add_local_files(
        agent_image, SHIM_IMAGE, {"/execlog.so": SHIM_PATH, "/execlog.jsonl": LOG_PATH}
    )


def logged_env(env: Mapping[str, str]) -> dict[str, str]:
    """The agent's environment with the library loaded; an LD_PRELOAD the spec sets still applies."""
    preload = ":".join(part for part in (SHIM_PATH, env.get("LD_PRELOAD", "")) if part)
    return {**env, "LD_PRELOAD": preload, "KEYSTONE_EXECLOG": LOG_PATH}


@dataclass(frozen=True)
class ExecutedCommand:
    argv: tuple[str, ...]
    path: str
    """What the program asked to run: a path, or a name looked up in PATH (execvp, posix_spawnp)."""
    cwd: str
    pid: int
    ppid: int
    ts: float
    """When it started, in seconds since the epoch (the real clock, even under `determinism.clock`)."""
    call: str

    @property
    def line(self) -> str:
        """The command line `forbidden.commands` patterns search: the arguments joined by spaces."""
        return " ".join(self.argv)


def read_commands(sandbox: Sandbox, command: str) -> list[ExecutedCommand]:
    """What the agent ran, from the log: the commands after Keystone's `sh -c <command>` that started
    the agent (what ran before it is Keystone's own `timeout` or `faketime`). Raises SandboxError
    when the log does not show that start."""
    try:
        text = sandbox.read_file(LOG_PATH).decode("utf-8", errors="replace")
    except FileNotFoundError:
        text = ""
    commands = parse_log(text)
    start = next((i for i, executed in enumerate(commands) if executed.argv == ("sh", "-c", command)), None)
    if start is None:
        raise SandboxError(
            f"the command log {LOG_PATH} does not show the agent starting: the library cannot load in "
            "this image (it needs glibc), or the agent removed or rewrote the log"
        )
    return commands[start + 1 :]


def parse_log(text: str) -> list[ExecutedCommand]:
    """The commands a log records, in the order they started.

    A failed exec withdraws its process's last exec record, so a PATH search leaves the attempt that
    worked and a missing program leaves nothing. Lines that are not records (a write torn by a full
    disk, whatever an agent appended) are skipped.
    """
    records: list[ExecutedCommand | None] = []
    last_exec: dict[int, int] = {}
    for record in json_objects(text):
        if "failed" in record:
            index = last_exec.pop(record.get("pid", -1), None)
            if index is not None:
                records[index] = None
            continue
        executed = _command(record)
        if executed is None:
            continue
        if not executed.call.startswith("posix_spawn"):  # a spawn is logged by its parent, after success
            last_exec[executed.pid] = len(records)
        records.append(executed)
    return sorted((executed for executed in records if executed is not None), key=lambda c: c.ts)


def _command(record: dict[str, Any]) -> ExecutedCommand | None:
    """The exec a record describes, or None when it is not a well-formed exec record."""
    argv, ts = record.get("argv"), record.get("ts")
    texts: dict[str, Any] = {key: record.get(key) for key in ("path", "cwd", "call")}
    numbers: dict[str, Any] = {key: record.get(key) for key in ("pid", "ppid")}
    if not (
        isinstance(argv, list)
        and all(isinstance(arg, str) for arg in argv)
        and all(isinstance(value, str) for value in texts.values())
        and all(isinstance(value, int) for value in numbers.values())
        and isinstance(ts, int | float)
    ):
        return None
    return ExecutedCommand(argv=tuple(argv), ts=float(ts), **texts, **numbers)
