"""What the experiment page shows: the experiment's results (partial while it runs, as the API answers
them), its progress, and a grid of every planned replica, finished or not.

A running experiment's results hold a scenario only once all its replicas finished, so the grid reads the
replicas stored so far: each appears the moment it ends."""

from __future__ import annotations

import json
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from ...store import ExperimentRecord, Store
from .._results import planned_replicas, results_so_far
from .._runner import TERMINAL
from ._experiment_list import created_before


@dataclass(frozen=True)
class Cell:
    """One replica of the grid; `result` is None until it finished."""

    index: int
    result: dict[str, Any] | None


@dataclass(frozen=True)
class GridRow:
    scenario_id: str
    cells: list[Cell]


@dataclass(frozen=True)
class ExperimentView:
    record: ExperimentRecord
    results: dict[str, Any]
    grid: list[GridRow]

    @property
    def finished(self) -> bool:
        return self.record.status in TERMINAL

    @property
    def wall_s(self) -> float | None:
        started, finished = self.record.started_at, self.record.finished_at
        return None if started is None or finished is None else (finished - started).total_seconds()

    @property
    def fingerprint(self) -> list[tuple[str, str]]:
        """What the run's outcome depends on, each value as text (JSON where it is not a string)."""
        return [
            (name, value if isinstance(value, str) else json.dumps(value, sort_keys=True))
            for name, value in sorted(self.results.get("fingerprint", {}).items())
        ]

    @staticmethod
    def mean_wall_s(scenario: dict[str, Any]) -> float | None:
        walls = [replica["wall_ms"] / 1000 for replica in scenario["replicas"]]
        return fmean(walls) if walls else None

    @property
    def done(self) -> int:
        return sum(cell.result is not None for row in self.grid for cell in row.cells)

    @property
    def total(self) -> int:
        return sum(len(row.cells) for row in self.grid)


def experiment_view(store: Store, record: ExperimentRecord) -> ExperimentView:
    """The experiment's results and grid from one read of its stored replicas (none once it finished:
    its results have them all)."""
    stored = [] if record.results is not None else store.replicas(record.id)
    results = results_so_far(record, stored)
    finished: dict[str, dict[int, dict[str, Any]]] = {}
    for scenario in results["scenarios"]:
        finished[scenario["scenario_id"]] = {replica["replica"]: replica for replica in scenario["replicas"]}
    for replica in stored:
        finished.setdefault(replica.scenario_id, {})[replica.replica_index] = replica.result
    planned = planned_replicas(record.options)
    scenario_ids = list(planned) + [scenario for scenario in finished if scenario not in planned]
    grid = []
    for scenario_id in scenario_ids:
        done = finished.get(scenario_id, {})
        count = max(planned.get(scenario_id, 0), max(done, default=-1) + 1)
        grid.append(GridRow(scenario_id, [Cell(index, done.get(index)) for index in range(count)]))
    return ExperimentView(record, results, grid)


def previous_finished(store: Store, record: ExperimentRecord) -> ExperimentRecord | None:
    """The latest completed experiment of the same spec (on the same branch, if it has one) created before
    this one: the baseline a "Compare with…" link offers."""
    branch = record.metadata.get("branch")
    found = store.list_experiments(
        record.project_id,
        cursor=created_before(record.created_at, record.id),
        limit=1,
        spec_id=record.spec_id,
        status="completed",
        metadata={"branch": str(branch)} if branch else None,
    )
    return found.items[0] if found.items else None
