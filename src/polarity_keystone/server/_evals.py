"""An `Eval` recorded as an experiment: the request models, each case turned into a one-replica
scenario, and the RunResults aggregated from those scenarios the way a spec experiment's are.

An eval experiment has `spec_id` = the eval's name, `spec_version` 0 and `options.kind` "eval"; it has
no spec YAML and no planned scenarios, so `run` (it is never `created`) and `extend` (it has no scenario
to grow) refuse it. A case is scenario `id` (the row's, else `case-<index>`) with one replica whose
invariants are its scores in the reference's shape `{name, passed, score, message, weight}`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from ..engine import aggregate_run, aggregate_scenario
from ..results import InvariantResult, ReplicaResult, ReplicaStatus, RunResults
from ..store import ExperimentRecord, ReplicaRecord
from ._models import AGENT_NAME_PATTERN, _Request

EVAL = "eval"
"""`options["kind"]` of an eval's experiment."""
MAX_CASES_PER_CALL = 100
MAX_TOTAL_CASES = 10_000
MAX_SCORERS = 50
MAX_OUTPUT_CHARS = 65_536
"""A case's output is kept up to this many characters; the rest is cut, with TRUNCATED saying how much."""
TRUNCATED = "\n… [truncated {} characters]"
MAX_CASE_FIELDS_BYTES = 65_536
"""A case's input, expected value and metadata together, as JSON: over this the case is refused (413)."""
MAX_TEXT = 2_000

EvalName = Annotated[str, Field(pattern=AGENT_NAME_PATTERN, description="e.g. `email-eval`.")]
ScorerName = Annotated[str, Field(min_length=1, max_length=100)]
CutText = Annotated[str, AfterValidator(lambda text: text[:MAX_TEXT])]
"""A scorer's message or error: a judge's explanation can be long; the first MAX_TEXT characters are kept."""


class EvalCreate(_Request):
    name: EvalName
    experiment_name: str | None = Field(default=None, min_length=1, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free tags (branch, commit...).")
    total_cases: int = Field(ge=0, le=MAX_TOTAL_CASES, description="How many cases the eval will send.")
    scorers: list[ScorerName] = Field(default_factory=list, max_length=MAX_SCORERS)


class EvalScoreIn(_Request):
    name: ScorerName
    score: float | None = Field(default=None, ge=0.0, le=1.0)
    passed: bool | None = None
    message: CutText = ""
    skipped: bool = False
    error: CutText | None = None


class EvalCaseIn(_Request):
    index: int = Field(ge=0, lt=MAX_TOTAL_CASES, description="The row's position in the eval's data.")
    id: str | None = Field(default=None, min_length=1, max_length=200, description="The row's own id.")
    input: Any = None
    expected: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    tags: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=50)
    output: Any = None
    error: str | None = Field(default=None, max_length=4 * MAX_TEXT)
    wall_ms: float = Field(default=0.0, ge=0.0, le=7 * 24 * 3600 * 1000)
    scores: list[EvalScoreIn] = Field(default_factory=list, max_length=MAX_SCORERS)

    @property
    def scenario_id(self) -> str:
        return self.id if self.id is not None else f"case-{self.index}"

    def parameters(self) -> dict[str, Any]:
        return {"input": self.input, "expected": self.expected, "metadata": self.metadata, "tags": self.tags}


class EvalCasesAdd(_Request):
    cases: list[EvalCaseIn] = Field(min_length=1, max_length=MAX_CASES_PER_CALL)


def is_eval(record: ExperimentRecord) -> bool:
    return record.options.get("kind") == EVAL


def output_text(output: Any) -> str:
    """The case's output as the replica's agent output: text as it is, anything else as JSON."""
    text = output if isinstance(output, str) else "" if output is None else json.dumps(output, default=str)
    if len(text) <= MAX_OUTPUT_CHARS:
        return text
    return text[:MAX_OUTPUT_CHARS] + TRUNCATED.format(len(text) - MAX_OUTPUT_CHARS)


def case_fields_bytes(case: EvalCaseIn) -> int:
    return len(json.dumps(case.parameters(), default=str).encode())


def replica_of(case: EvalCaseIn) -> ReplicaResult:
    """The case as its scenario's one replica: `error` when its task raised, else `pass` when every
    score that was not skipped passed, else `fail`."""
    invariants = [
        InvariantResult(
            name=score.name,
            passed=bool(score.passed),
            score=0.0 if score.score is None else score.score,
            message=score.message,
            weight=1.0,
            skipped=score.skipped,
            reason="" if score.passed else score.error or score.message,
        )
        for score in case.scores
    ]
    judged = [invariant for invariant in invariants if not invariant.skipped]
    failed = [invariant.name for invariant in judged if not invariant.passed]
    status: ReplicaStatus = "error" if case.error is not None else "fail" if failed else "pass"
    return ReplicaResult(
        replica=0,
        seed=0,
        status=status,
        wall_ms=round(case.wall_ms),
        agent_ms=round(case.wall_ms),
        agent_output=output_text(case.output),
        invariants=invariants,
        composite_score=sum(i.score for i in judged) / len(judged) if judged else 0.0,
        error=case.error,
        reasons=[f"scorer {name} failed" for name in failed],
    )


def stored_case(case: EvalCaseIn, replica: ReplicaResult) -> dict[str, Any]:
    """The replica as stored: its result with the case's parameters and row index beside it."""
    return {**replica.model_dump(mode="json"), "parameters": case.parameters(), "index": case.index}


def eval_results(record: ExperimentRecord, replicas: list[ReplicaRecord]) -> RunResults:
    """The experiment's RunResults: one scenario per case, in the order of the rows."""
    scenarios = []
    for stored in sorted(replicas, key=lambda r: (int(r.result.get("index", 0)), r.scenario_id)):
        result = dict(stored.result)
        parameters = result.pop("parameters", {})
        result.pop("index", None)
        replica = ReplicaResult.model_validate(result)
        scenarios.append(aggregate_scenario(record.spec_id, stored.scenario_id, parameters, [replica]))
    return aggregate_run(
        spec_id=record.spec_id,
        experiment_id=record.id,
        seed=0,
        scenarios=scenarios,
        fingerprint={},
        spec_file="",
        k=1,
    )


def score_means(results: RunResults) -> dict[str, float]:
    """Each scorer's mean score over the cases where it was not skipped (and the task did not raise)."""
    values: dict[str, list[float]] = {}
    for scenario in results.scenarios:
        for invariant in scenario.invariants:
            if not invariant.skipped:
                values.setdefault(invariant.name, []).append(invariant.score)
    return {name: sum(scores) / len(scores) for name, scores in values.items()}
