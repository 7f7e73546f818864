"""`ks.evals`: an `Eval` recorded as an experiment (started, its cases added as they finish, completed
into RunResults like a spec experiment), and an eval's history of completed runs."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import Field

from ..results import RunResults
from ._http import HttpClient
from ._models import Experiment, KeystoneModel

REPLAYED = "Idempotent-Replayed"
"""The header of an answer the server replayed for an Idempotency-Key it had seen."""
MAX_CASES_PER_CALL = 100
"""The server takes at most this many cases in one `add_cases` call; larger lists are sent in parts."""


class EvalRun(KeystoneModel):
    """One completed run of an eval: its experiment, when it ran, its metadata (branch, commit...), its
    pass rate and each scorer's mean score."""

    experiment_id: str
    experiment_name: str = ""
    created_at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)
    pass_rate: float
    total_cases: int = 0
    scores: dict[str, float] = Field(default_factory=dict)


class EvalService:
    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def start(
        self,
        name: str,
        *,
        total_cases: int,
        scorers: Sequence[str],
        experiment_name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Experiment:
        """A `running` experiment for the eval `name` (its `spec_id`), expecting `total_cases` cases; the
        experiment an earlier call with the same `idempotency_key` started, in its status now."""
        body: dict[str, Any] = {"name": name, "total_cases": total_cases, "scorers": list(scorers)}
        if experiment_name is not None:
            body["experiment_name"] = experiment_name
        if metadata:
            body["metadata"] = dict(metadata)
        response = self._http.request("POST", "/v1/evals", json=body, idempotency_key=idempotency_key)
        experiment = Experiment.from_dict(response.json())
        if response.headers.get(REPLAYED) == "true":  # started before with this key: as it is now
            now = self._http.json("GET", f"/v1/experiments/{quote(experiment.id, safe='')}")
            experiment = experiment.model_copy(update={"status": now["status"]})
        return experiment

    def add_cases(self, experiment_id: str, cases: Iterable[Mapping[str, Any]]) -> int:
        """Store finished cases (`{id?, input, expected, metadata, output, error, wall_ms, scores}`);
        returns how many were stored."""
        pending = [dict(case) for case in cases]
        stored = 0
        for start in range(0, len(pending), MAX_CASES_PER_CALL):
            body = {"cases": pending[start : start + MAX_CASES_PER_CALL]}
            answer = self._http.json("POST", f"{_path(experiment_id)}/cases", json=body)
            stored += int(answer["stored"])
        return stored

    def complete(self, experiment_id: str) -> RunResults:
        """Aggregate the cases into the experiment's RunResults and mark it completed."""
        return RunResults.from_dict(self._http.json("POST", f"{_path(experiment_id)}/complete"))

    def history(self, name: str, *, limit: int | None = None) -> builtins.list[EvalRun]:
        """The eval's completed runs, newest first."""
        path = f"/v1/evals/{quote(name, safe='')}/history"
        return [EvalRun.from_dict(item) for item in self._http.list_items(path, limit=limit)]


def _path(experiment_id: str) -> str:
    return f"/v1/evals/{quote(experiment_id, safe='')}"
