"""The Docker API calls of one refund-agent replica after its agent ran: prints them and their time.

    python bench/replica_calls.py [--replicas N]

Runs N replicas (default 3, one at a time, each on a fresh sandbox) of examples/refund-agent/refund.yaml
through the engine's `run_replica`, and records, from the agent's command returning until the replica is
scored, every Docker API request made on one of that replica's containers (exec create/start/inspect,
archive reads, log reads...) and every Keystone operation made of them (an exec, an archive read, a log
read), with its wall time. Prints the operations of the last replica in order, then per replica: the
requests, the operations and the wall time of the whole stretch. Asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any

import docker
from docker.api.client import APIClient

from polarity_keystone.engine import _replica as replica_module
from polarity_keystone.engine import prepare
from polarity_keystone.sandbox import DockerBackend, ImageResolver
from polarity_keystone.sandbox import _docker as docker_module
from polarity_keystone.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
REFUND_SPEC = ROOT / "examples" / "refund-agent" / "refund.yaml"

_REQUESTS = (
    "exec_create",
    "exec_start",
    "exec_inspect",
    "get_archive",
    "put_archive",
    "logs",
    "inspect_container",
    "stats",
)


@dataclass
class Recording:
    """What one replica did on the Docker engine after its agent's command returned."""

    containers: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)
    operations: list[tuple[float, float, str]] = field(default_factory=list)
    """(start, seconds, what) per operation, start relative to the agent's end."""
    started: float = 0.0
    wall: float = 0.0


_lock = threading.Lock()
_exec_container: dict[str, str] = {}
_recording: Recording | None = None


def _container_of(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    target = args[0] if args else kwargs.get("container") or kwargs.get("exec_id")
    target = target.get("Id") if isinstance(target, dict) else target
    return _exec_container.get(str(target), str(target)) if name.startswith("exec_") else str(target)


def _count(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(method)
    def counted(self: APIClient, *args: Any, **kwargs: Any) -> Any:
        answer = method(self, *args, **kwargs)
        if name == "exec_create":
            _exec_container[answer["Id"]] = str(args[0] if args else kwargs["container"])
        with _lock:
            if _recording is not None and _container_of(name, args, kwargs) in _recording.containers:
                _recording.requests.append(name)
        return answer

    return counted


def _timed(what: Callable[..., str], function: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return function(*args, **kwargs)
        finally:
            with _lock:
                if _recording is not None and _recording.started:
                    seconds = time.monotonic() - started
                    _recording.operations.append(
                        (started - _recording.started, seconds, what(*args, **kwargs))
                    )

    return timed


def _exec_label(container: Any, command: Any, **_: Any) -> str:
    text = command if isinstance(command, str) else " ".join(str(part) for part in command)
    return f"exec {container.name.rsplit('-', 1)[-1]:<8} {' '.join(text.split())[:90]}"


def _archive_label(self: Any, path: str, *args: Any, **kwargs: Any) -> str:
    return f"archive read {path}"


def _logs_label(self: Any, service: str, since: float) -> str:
    return f"logs {service}"


def install() -> None:
    for name in _REQUESTS:
        setattr(APIClient, name, _count(name, getattr(APIClient, name)))
    docker_module._exec = _timed(_exec_label, docker_module._exec)
    sandbox_class = docker_module.DockerSandbox
    sandbox_class.read_file = _timed(_archive_label, sandbox_class.read_file)  # type: ignore[method-assign]
    sandbox_class.service_logs = _timed(_logs_label, sandbox_class.service_logs)  # type: ignore[method-assign]
    original_score = replica_module._run_and_score

    @wraps(original_score)
    def scored(prepared: Any, sandbox: Any, *args: Any, **kwargs: Any) -> bool:
        global _recording
        containers = [sandbox.agent, sandbox.gateway, *sandbox.service_containers.values()]
        recording = Recording(containers={c.id for c in containers if c is not None})
        original_exec = sandbox.exec

        @wraps(original_exec)
        def marking(command: Any, **options: Any) -> Any:
            answer = original_exec(command, **options)
            if "output_limit" in options and not recording.started:  # the agent's own command
                recording.started = time.monotonic()
                with _lock:
                    recording.requests.clear()
            return answer

        sandbox.exec = marking
        with _lock:
            _recording = recording
        try:
            return bool(original_score(prepared, sandbox, *args, **kwargs))
        finally:
            recording.wall = time.monotonic() - recording.started
            with _lock:
                _recording = None
            RECORDINGS.append(recording)

    replica_module._run_and_score = scored


RECORDINGS: list[Recording] = []


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replicas", type=int, default=3)
    args = parser.parse_args()
    install()
    client = docker.from_env()
    backend = DockerBackend(client)
    prepared = prepare(load_spec(REFUND_SPEC), ImageResolver(client, allow_pull=False))
    statuses = []
    for index in range(args.replicas):
        job = replica_module.ReplicaJob("bench-calls", prepared.spec.id, index, 1 + index, {})
        result = replica_module.run_replica(prepared, replica_module.booting_on(backend), job)
        statuses.append(result.status)
    last = RECORDINGS[-1]
    print(f"== replica {len(RECORDINGS) - 1}: operations after the agent's command returned ==")
    for start, seconds, what in sorted(last.operations):
        print(f"  +{start * 1000:7.1f} ms  {seconds * 1000:6.1f} ms  {what}")
    print()
    print("== per replica ==")
    for index, (recording, status) in enumerate(zip(RECORDINGS, statuses, strict=True)):
        busy = sum(seconds for _, seconds, _ in recording.operations)
        print(
            f"  replica {index} ({status}): {len(recording.requests)} API requests, "
            f"{len(recording.operations)} operations ({busy * 1000:.0f} ms in them), "
            f"agent end -> scored {recording.wall * 1000:.0f} ms"
        )
    counts: dict[str, int] = {}
    for name in last.requests:
        counts[name] = counts.get(name, 0) + 1
    print(f"  requests of the last, by kind: {counts}")
    walls = [recording.wall for recording in RECORDINGS[1:]] or [RECORDINGS[0].wall]
    print(f"  median agent end -> scored (after the first): {statistics.median(walls) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
