"""Offline scoring: a project's score rules, each applied to every replica of a stored experiment's
results, without running anything again.

Every rule reads the replica's agent output (its stdout, as stored: secret values are redacted before
results are stored). `contains {text}` passes when the output holds the text. `regex {pattern}` passes
when the pattern (Python syntax, checked like a spec's `file_content` pattern when the rule is made,
bounded in length) matches somewhere in it; it is matched in a child process given MATCH_TIMEOUT, else
the scores are skipped. `llm_as_judge {criteria | rubric, model}` asks the operator's judge, with the
same client and environment as a spec's `llm_as_judge` check (`OPENAI_API_KEY` and
`KEYSTONE_JUDGE_BASE_URL` for an OpenAI-compatible endpoint, `ANTHROPIC_API_KEY` for `claude*`
models); without a key its scores are recorded *skipped*, saying what to set, never passed.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..scoring import judge
from ..spec import JUDGE_TEXT_CAP, JudgeRubric, LlmAsJudgeCheck, Regex
from ..store import ScoreRecord, ScoreRuleRecord

RuleType = Literal["contains", "regex", "llm_as_judge"]
HEURISTIC_TYPES = frozenset({"contains", "regex"})
"""Rule types fast enough to score while the request waits; the others score after the answer."""

MAX_SCORE_RULES_PER_PROJECT = 100
MAX_RULES_PER_REQUEST = 20
"""Rule ids one `POST /v1/experiments/{id}/score` may name."""
MAX_TEXT_LENGTH = 1000
"""Of a `contains` rule's text."""
MAX_PATTERN_LENGTH = 500
"""Of a `regex` rule's pattern: with the output's own bound, what keeps a match's work bounded."""
MATCH_TIMEOUT = 5.0
"""Seconds a `regex` rule may take to match all of an experiment's outputs."""
_MATCHER = (
    "import json, re, sys; asked = json.load(sys.stdin);"
    " pattern = re.compile(asked['pattern'], re.MULTILINE);"
    " print(json.dumps([pattern.search(text) is not None for text in asked['texts']]))"
)
MESSAGE_EXCERPT = 120
"""Characters of the text or pattern quoted in a score's message."""


class InvalidRule(ValueError):
    """A rule's configuration is refused; `field` names the part at fault (`config.pattern`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContainsOptions(_Options):
    text: str = Field(min_length=1, max_length=MAX_TEXT_LENGTH)


class RegexOptions(_Options):
    pattern: Regex = Field(min_length=1, max_length=MAX_PATTERN_LENGTH)


class JudgeOptions(_Options):
    criteria: str | None = Field(default=None, min_length=1, max_length=JUDGE_TEXT_CAP)
    rubric: JudgeRubric | None = None
    model: str = Field(default="paragon-fast", min_length=1, max_length=200)
    pass_threshold: float = Field(default=0.5, ge=0, le=1)

    def check(self) -> LlmAsJudgeCheck:
        """The spec check this rule asks the judge as; a rubric alone is judged against itself."""
        return LlmAsJudgeCheck(
            type="llm_as_judge",
            criteria=self.criteria or "The output meets the rubric's PASS description, not its FAIL one.",
            rubric=self.rubric,
            model=self.model,
            pass_threshold=self.pass_threshold,
        )


_OPTIONS: dict[str, type[_Options]] = {
    "contains": ContainsOptions,
    "regex": RegexOptions,
    "llm_as_judge": JudgeOptions,
}


def checked_options(rule_type: RuleType, config: Mapping[str, Any]) -> dict[str, Any]:
    """The rule's configuration, normalised; InvalidRule naming the first field at fault."""
    kind = _OPTIONS[rule_type]
    try:
        options = kind.model_validate(dict(config))
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(["config", *(str(part) for part in error["loc"])])
        raise InvalidRule(field, f"{field}: {error['msg']}") from None
    if isinstance(options, JudgeOptions) and options.criteria is None and options.rubric is None:
        raise InvalidRule(
            "config.criteria", "config.criteria: an llm_as_judge rule needs criteria or a rubric"
        )
    return options.model_dump(mode="json", by_alias=True, exclude_none=True)


@dataclass(frozen=True)
class Replica:
    """What a rule scores: one replica's agent output, and where its trace is filed."""

    scenario_id: str
    replica: int
    trace_id: str
    output: str


def replicas_of(results: Mapping[str, Any]) -> list[Replica]:
    """Every replica of an experiment's RunResults JSON, scenario by scenario."""
    return [
        Replica(
            scenario_id=str(scenario.get("scenario_id", "")),
            replica=int(replica.get("replica", 0)),
            trace_id=str(replica.get("sandbox_id") or ""),
            output=str(replica.get("agent_output") or ""),
        )
        for scenario in results.get("scenarios", [])
        for replica in scenario.get("replicas", [])
    ]


@dataclass(frozen=True)
class Judgement:
    score: float | None
    state: Literal["passed", "failed", "skipped"]
    message: str


def judgements(rule: ScoreRuleRecord, outputs: list[str]) -> list[Judgement]:
    """The rule's verdict on each agent output."""
    if rule.type == "regex":
        return _regex_judgements(str(rule.options["pattern"]), outputs)
    return [_judgement(rule, output) for output in outputs]


def _regex_judgements(pattern: str, outputs: list[str]) -> list[Judgement]:
    """Matched in a child process killed after MATCH_TIMEOUT: Python's `re` cannot be interrupted, and a
    pattern that backtracks catastrophically would otherwise hold a server thread for good."""
    texts = json.dumps({"pattern": pattern, "texts": outputs})
    command = [sys.executable, "-I", "-c", _MATCHER]
    try:
        done = subprocess.run(
            command, input=texts, capture_output=True, text=True, timeout=MATCH_TIMEOUT, check=True
        )
    except subprocess.TimeoutExpired:
        message = (
            f"skipped: matching /{_excerpt(pattern)}/ took over {MATCH_TIMEOUT:g}s (a pattern that"
            " backtracks catastrophically?)"
        )
        return [Judgement(None, "skipped", message) for _ in outputs]
    shown = f"/{_excerpt(pattern)}/"
    return [
        _binary(found, f"the output {'matches' if found else 'does not match'} {shown}")
        for found in json.loads(done.stdout)
    ]


def _judgement(rule: ScoreRuleRecord, output: str) -> Judgement:
    if rule.type == "contains":
        text = str(rule.options["text"])
        found = text in output
        return _binary(found, f"the output {'contains' if found else 'does not contain'} {_quoted(text)}")
    outcome = judge(JudgeOptions.model_validate(rule.options).check(), lambda: output, lambda text: text)
    if outcome.skipped:
        return Judgement(None, "skipped", outcome.message)
    return Judgement(outcome.score, "passed" if outcome.passed else "failed", outcome.message)


def scores_of(rule: ScoreRuleRecord, experiment_id: str, replicas: list[Replica]) -> list[ScoreRecord]:
    """The rule's score of each replica."""
    scores = []
    for replica, verdict in zip(replicas, judgements(rule, [r.output for r in replicas]), strict=True):
        scores.append(
            ScoreRecord(
                id=f"score_{secrets.token_hex(12)}",
                project_id=rule.project_id,
                experiment_id=experiment_id,
                rule_id=rule.id,
                trace_id=replica.trace_id,
                scenario_id=replica.scenario_id,
                replica=replica.replica,
                score=verdict.score,
                state=verdict.state,
                message=verdict.message,
                created_at=datetime.now(UTC),
            )
        )
    return scores


def _binary(passed: bool, message: str) -> Judgement:
    return Judgement(1.0 if passed else 0.0, "passed" if passed else "failed", message)


def _excerpt(text: str) -> str:
    return text if len(text) <= MESSAGE_EXCERPT else text[:MESSAGE_EXCERPT] + "..."


def _quoted(text: str) -> str:
    return repr(_excerpt(text))
