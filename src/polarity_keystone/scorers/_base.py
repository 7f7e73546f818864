"""What every scorer is: a `Scorer` turns one `Case` (an input, what the agent answered, what was
expected) into one `Score`.

A case comes from an `Eval` row (its task's return value is the output) or from a finished
experiment's scenario (`Case.from_scenario`: the agent's stdout is the output, the scenario's
parameters give `input`, `expected` and any other field a scorer asks for). A custom scorer written as
`@Scorer def f(scenario) -> Score` receives the case, which answers `scenario.agent_output`,
`scenario.parameters`, `scenario.scenario_id`... like the scenario itself.

A scorer never raises for a bad case: an exception becomes a failed score carrying the error, and a
judge with no key configured returns a *skipped* score (`skipped=True`, `passed=None`), which no
aggregate counts as a pass.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..results import ScenarioResult

if TYPE_CHECKING:
    from ._sandbox import SandboxChecker

DEFAULT_PASS_THRESHOLD = 0.5
"""A score at or above this passes, unless the scorer says otherwise (the judge checks' default too)."""


@dataclasses.dataclass(frozen=True)
class Score:
    """One scorer's verdict on one case. `score` is in [0, 1]; None when skipped or errored."""

    name: str
    score: float | None
    passed: bool | None = None
    """None only when skipped; derived from `score` and the scorer's threshold when not given."""
    message: str = ""
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    skipped: bool = False
    error: str | None = None

    def __post_init__(self) -> None:
        if self.score is not None and not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score {self.score!r} of {self.name!r} is outside [0, 1]")

    @property
    def failed(self) -> bool:
        """Whether this score fails its case: it was judged (not skipped) and did not pass."""
        return not self.skipped and not self.passed

    @property
    def status(self) -> str:
        """`pass`, `fail`, `skipped` or `error`."""
        if self.skipped:
            return "skipped"
        if self.error is not None:
            return "error"
        return "pass" if self.passed else "fail"

    def as_invariant(self) -> dict[str, Any]:
        """The reference's shape for a client-side score appended to a scenario's invariants."""
        return {
            "name": self.name,
            "passed": bool(self.passed),
            "score": 0.0 if self.score is None else self.score,
            "message": self.message,
            "weight": 1.0,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "score": self.score,
            "passed": self.passed,
            "message": self.message,
            "metadata": self.metadata,
            "skipped": self.skipped,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Score:
        return cls(
            name=str(data["name"]),
            score=data.get("score"),
            passed=data.get("passed"),
            message=str(data.get("message") or ""),
            metadata=dict(data.get("metadata") or {}),
            skipped=bool(data.get("skipped", False)),
            error=data.get("error"),
        )


@dataclasses.dataclass(frozen=True)
class Case:
    """What a scorer looks at. Unknown attributes are read from `scenario` when there is one, so a
    custom scorer written for `ScenarioResult` works on an experiment's cases unchanged."""

    input: Any = None
    output: Any = None
    expected: Any = None
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Every field of the row or scenario, for scorers that take more (`context`, `expected_key`...)."""
    scenario: ScenarioResult | None = None
    sandbox_id: str | None = None
    """The live sandbox the case ran in, for the sandbox-family scorers."""
    sandbox_checker: SandboxChecker | None = None
    """What runs a sandbox scorer's check in that live sandbox (the SDK's `ks.sandboxes`)."""

    @property
    def agent_output(self) -> str:
        if self.output is None:
            return ""
        return self.output if isinstance(self.output, str) else str(self.output)

    def __getattr__(self, name: str) -> Any:
        scenario = self.__dict__.get("scenario")
        if scenario is not None and not name.startswith("_"):
            return getattr(scenario, name)
        raise AttributeError(name)

    @classmethod
    def from_scenario(cls, scenario: ScenarioResult) -> Case:
        parameters = dict(scenario.parameters)
        return cls(
            input=parameters.get("input"),
            output=scenario.agent_output,
            expected=parameters.get("expected"),
            metadata=dict(parameters.get("metadata") or {}),
            parameters=parameters,
            scenario=scenario,
            sandbox_id=scenario.sandbox_id or None,
        )


MAX_ERROR_CHARS = 500
"""A failed scorer's reason is cut to this: an exception may quote the whole (huge) output."""

ScoreFunction = Callable[[Case], "Score | float | bool"]


class Scorer:
    """The base of every scorer, and a decorator for a function `(case) -> Score | float | bool`.

    Subclasses implement `_score(case)`. `__call__` accepts a `Case`, a `ScenarioResult`, or the
    keywords `output=`, `expected=`, `input=` (and any other field, kept in `parameters`).
    """

    pass_threshold: float = DEFAULT_PASS_THRESHOLD

    def __init__(self, function: ScoreFunction | None = None, *, name: str | None = None) -> None:
        self._function = function
        explicit = name or (function.__name__ if function is not None else None)
        self.name = explicit or snake_case(type(self).__name__)

    def _score(self, case: Case) -> Score | float | bool:
        if self._function is None:
            raise NotImplementedError(f"{type(self).__name__} does not implement _score")
        return self._function(case)

    def score(self, case: Case) -> Score:
        """Score one case; never raises for what the case holds."""
        try:
            outcome = self._score(case)
        except Exception as error:  # a scorer's failure is a failed score, with its reason
            reason = f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]
            return Score(self.name, None, passed=False, message=reason, error=reason)
        return self.as_score(outcome)

    def as_score(self, outcome: Score | float | bool) -> Score:
        if isinstance(outcome, Score):
            if outcome.passed is None and not outcome.skipped and outcome.score is not None:
                return dataclasses.replace(outcome, passed=outcome.score >= self.pass_threshold)
            return outcome
        value = float(outcome)
        return Score(self.name, value, passed=value >= self.pass_threshold)

    def __call__(self, case: Case | ScenarioResult | None = None, /, **fields: Any) -> Score:
        return self.score(as_case(case, fields))

    def to_invariant(self) -> dict[str, dict[str, Any]] | None:
        """The spec invariant this scorer stands for (`{key: check}`), or None when it only runs
        client-side. The sandbox-family scorers and the judge presets serialise themselves."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def as_case(case: Case | ScenarioResult | None, fields: Mapping[str, Any]) -> Case:
    if isinstance(case, Case):
        return case
    if isinstance(case, ScenarioResult):
        return Case.from_scenario(case)
    if case is not None:
        raise TypeError(f"a scorer takes a Case, a ScenarioResult or keywords, not {type(case).__name__}")
    known = {"input", "output", "expected", "metadata", "sandbox_id"}
    return Case(
        input=fields.get("input"),
        output=fields.get("output"),
        expected=fields.get("expected"),
        metadata=dict(fields.get("metadata") or {}),
        parameters={key: value for key, value in fields.items() if key not in known},
        sandbox_id=fields.get("sandbox_id"),
    )


def snake_case(name: str) -> str:
    """`AnswerRelevancy` -> `answer_relevancy`: the name a scorer's scores go by."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def invariant_key(name: str) -> str:
    """The reference's key for a scorer serialised as an invariant: `:`, `/` and spaces become `_`."""
    return re.sub(r"[:/ ]", "_", name)
