"""Progress while sandboxes boot and replicas finish: a live bar on a terminal, one line per replica
otherwise (CI logs)."""

from __future__ import annotations

import threading
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..results import ReplicaResult
from ..sandbox import BootEvent
from ..sdk import StreamEvent


class ConsoleProgress:
    def __init__(self, console: Console, label: str) -> None:
        self._console = console
        self._label = label
        self._lock = threading.Lock()
        self._booting: set[str] = set()
        self._counts = {"pass": 0, "fail": 0, "error": 0}
        self._done = 0
        self._total = 0
        self._bar: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> ConsoleProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def started(self, total_replicas: int, notes: list[str]) -> None:
        self._total = total_replicas
        for note in notes:
            self._console.print(f"[yellow]note:[/] {note}")
        if self._console.is_terminal:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                console=self._console,
                transient=True,
            )
            self._task = self._bar.add_task(self._label, total=total_replicas, status="")
            self._bar.start()
        else:
            self._console.print(f"{self._label}: {total_replicas} replica(s)")

    def _status(self) -> str:
        c = self._counts
        return f"booting {len(self._booting)} · pass {c['pass']} · fail {c['fail']} · error {c['error']}"

    def boot(self, event: BootEvent) -> None:
        with self._lock:
            if event.step == "ready":
                self._booting.discard(event.sandbox_id)
            elif event.step == "network":
                self._booting.add(event.sandbox_id)
            if self._bar is not None:
                self._bar.update(self._task, status=self._status())

    def replica_done(self, scenario_id: str, result: ReplicaResult) -> None:
        self._finished(scenario_id, result.replica, result.status, result.wall_ms, result.sandbox_id)

    def on_event(self, event: StreamEvent) -> None:
        """The same display from a server's experiment stream (`progress`, `replica_done`)."""
        data = event.data
        if event.event == "progress" and not self._total and data.get("total"):
            self.started(int(data["total"]), [str(note) for note in data.get("notes") or []])
        elif event.event == "replica_done":
            self._finished(
                str(data.get("scenario_id")),
                int(data.get("replica") or 0),
                str(data.get("status")),
                int(data.get("wall_ms") or 0),
                str(data.get("sandbox_id") or ""),
            )

    def _finished(self, scenario_id: str, replica: int, status: str, wall_ms: int, sandbox_id: str) -> None:
        with self._lock:
            self._booting.discard(sandbox_id)
            self._counts[status] = self._counts.get(status, 0) + 1
            self._done += 1
            if self._bar is not None:
                self._bar.update(self._task, advance=1, status=self._status())
                return
            self._console.print(
                f"[{self._done}/{self._total}] {scenario_id} replica {replica}: "
                f"{status} ({wall_ms / 1000:.1f}s)"
            )
