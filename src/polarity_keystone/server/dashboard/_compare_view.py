"""What the compare page shows: the API's comparison of two finished experiments (the same function
`POST /v1/experiments/compare` answers with), each side's pass-rate interval from its own results, and the
experiments a user can choose between."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ...results import RunResults
from ...store import ExperimentRecord, Store
from .._context import ServerContext
from .._errors import InvalidRequest
from .._models import CompareRequest
from .._results import compare
from .._routes_experiments import finished_results, regression_policy
from .._runner import TERMINAL

CHOICES = 100
"""The chooser offers the finished experiments among the project's newest this many."""

_FIELDS = {
    "baseline": "baseline_id",
    "candidate": "candidate_id",
    "alpha": "alpha",
    "correction": "correction",
    "min_effect": "min_effect",
}
"""The page's query parameters, and the fields of the API's request they stand for."""


def compare_request(query: dict[str, str]) -> CompareRequest:
    """The page's query string as the API's request body, held to the same limits. An empty field (as a
    form sends it) is not given."""
    given = {_FIELDS[name]: value for name, value in query.items() if name in _FIELDS and value != ""}
    try:
        return CompareRequest.model_validate(given)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'query'}: {e['msg']}" for e in exc.errors())
        raise InvalidRequest(f"cannot compare: {problems}") from None


@dataclass(frozen=True)
class ScenarioRow:
    """One scenario both ran: the API's row, and the interval each run's results give its pass rate."""

    comparison: dict[str, Any]
    baseline_interval: tuple[float, float] | None
    candidate_interval: tuple[float, float] | None

    @property
    def change(self) -> float | None:
        """The candidate's pass rate minus the baseline's (the effect the decision weighs)."""
        before, after = self.comparison["baseline_pass_rate"], self.comparison["candidate_pass_rate"]
        return None if before is None or after is None else after - before


@dataclass(frozen=True)
class CompareView:
    baseline: RunResults
    candidate: RunResults
    comparison: dict[str, Any]

    @property
    def rows(self) -> list[ScenarioRow]:
        return [
            ScenarioRow(
                row,
                _interval(self.baseline, row["scenario_id"]),
                _interval(self.candidate, row["scenario_id"]),
            )
            for row in self.comparison["scenarios"]
        ]


def _interval(results: RunResults, scenario_id: str) -> tuple[float, float] | None:
    found = (s.pass_rate_ci for s in results.scenarios if s.scenario_id == scenario_id)
    return next(found, None)


def compare_view(context: ServerContext, project_id: str, asked: CompareRequest) -> CompareView:
    """The comparison the API would answer for `asked`; WrongState while either has not finished."""
    baseline = finished_results(context, project_id, asked.baseline_id)
    candidate = finished_results(context, project_id, asked.candidate_id)
    return CompareView(baseline, candidate, compare(baseline, candidate, regression_policy(asked)))


def finished_choices(store: Store, project_id: str) -> list[ExperimentRecord]:
    """The finished experiments among the project's newest, newest first."""
    newest = store.list_experiments(project_id, cursor=None, limit=CHOICES)
    return [record for record in newest.items if record.status in TERMINAL]
