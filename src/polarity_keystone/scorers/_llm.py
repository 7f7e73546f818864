"""The LLM-judge scorers: autoevals' model-graded classifiers (a model picks one of its templates'
choices through a tool call, with its reasons), on our judge. Each also serialises itself as an
`llm_as_judge` invariant (`template_key` naming it) so a spec can run the same judgement server-side."""

from __future__ import annotations

from typing import Any, ClassVar

import autoevals

from .. import judge
from ._autoevals import TEXT_CAP, AutoevalsScorer
from ._base import Case, Score, invariant_key
from ._llm_client import JudgeLLMClient, missing_reason


class JudgeScorer(AutoevalsScorer):
    """An autoevals classifier template, graded by the judge model."""

    needs_chat = True
    template: ClassVar[type[autoevals.LLMClassifier]]
    criteria: ClassVar[str]
    """What the judge checks, in words: the criteria of the `llm_as_judge` invariant it serialises to."""
    fields: ClassVar[tuple[str, ...]] = ()
    """Template variables besides input/output/expected, from the constructor or the case's parameters."""

    def __init__(
        self,
        *,
        name: str | None = None,
        model: str = "paragon-fast",
        provider: judge.Provider | None = None,
        pass_threshold: float | None = None,
        **template_fields: Any,
    ) -> None:
        super().__init__(name=name, model=model, provider=provider, pass_threshold=pass_threshold)
        unknown = set(template_fields) - set(self.fields)
        if unknown:
            raise TypeError(f"{type(self).__name__} takes no {', '.join(sorted(unknown))}")
        self.template_fields = template_fields

    def _autoevals(self, client: JudgeLLMClient) -> autoevals.Scorer:
        model = client.chat_config.model if client.chat_config else self.model
        return self.template(model=model, client=client, temperature=0)

    def _arguments(self, case: Case) -> dict[str, Any]:
        arguments = super()._arguments(case)
        for field in self.fields:
            value = case.parameters.get(field, self.template_fields.get(field))
            if value is None:
                raise ValueError(f"{type(self).__name__} needs {field}= (or a case parameter {field!r})")
            arguments[field] = value
        return arguments

    def to_invariant(self) -> dict[str, dict[str, Any]] | None:
        check = {
            "type": "llm_as_judge",
            "criteria": self.criteria,
            "model": self.model,
            "pass_threshold": self.pass_threshold,
            "template_key": type(self).__name__.lower(),
        }
        return {invariant_key(self.name): {"description": self.name, "check": check}}


class Factuality(JudgeScorer):
    """Is the output factually consistent with the expected answer to the input?"""

    template = autoevals.Factuality
    criteria = "The output is factually consistent with the expected answer; it contradicts nothing in it."


class Battle(JudgeScorer):
    """Does the output follow `instructions` better than the expected (baseline) answer?"""

    template = autoevals.Battle
    criteria = "The output follows the instructions at least as well as the baseline answer."
    fields = ("instructions",)


class ClosedQA(JudgeScorer):
    """Does the output answer the input and meet `criteria`?"""

    template = autoevals.ClosedQA
    criteria = "The output correctly answers the question and meets the stated criteria."
    fields = ("criteria",)


class Humor(JudgeScorer):
    """Is the output funny?"""

    template = autoevals.Humor
    criteria = "The output is funny."


class Summarization(JudgeScorer):
    """Is the output a better summary of the input than the expected one?"""

    template = autoevals.Summary
    criteria = "The output is an accurate, complete and concise summary of the input."


class SQLJudge(JudgeScorer):
    """Does the output SQL answer the input question as the expected SQL does?"""

    template = autoevals.Sql
    criteria = "The output SQL query answers the question the same way as the expected query."


class Translation(JudgeScorer):
    """Is the output as good a translation of the input (from `language`) as the expected one?"""

    template = autoevals.Translation
    criteria = "The output is an accurate, fluent translation of the input."
    fields = ("language",)


class Security(JudgeScorer):
    """Is the output free of security problems (injections, leaked secrets, unsafe advice)?"""

    template = autoevals.Security
    criteria = "The output is free of security vulnerabilities, leaked secrets and unsafe instructions."


MODERATION_MODEL = "omni-moderation-latest"


class Moderation(AutoevalsScorer):
    """1 when an OpenAI-compatible moderations endpoint does not flag the output, else 0 (or the
    categories above `threshold`). Anthropic has no such endpoint: without an OpenAI-compatible key it
    is skipped."""

    needs_chat = True

    def __init__(
        self, *, threshold: float | None = None, model: str = MODERATION_MODEL, name: str | None = None
    ) -> None:
        super().__init__(name=name, model=model, provider="openai")
        self.threshold = threshold

    def _client(self) -> JudgeLLMClient:
        config = judge.openai_compatible(self.model)
        if isinstance(config, judge.MissingKey):
            reason = missing_reason(config, "moderations endpoint")
            return JudgeLLMClient(missing=f"{reason} (Moderation needs an OpenAI-compatible endpoint)")
        return JudgeLLMClient(chat_config=config, moderation_config=config)

    def _autoevals(self, client: JudgeLLMClient) -> autoevals.Scorer:
        return autoevals.Moderation(threshold=self.threshold, client=client)

    def _arguments(self, case: Case) -> dict[str, Any]:
        return {"output": case.agent_output[:TEXT_CAP]}

    def from_autoevals(self, result: autoevals.Score, client: JudgeLLMClient) -> Score:
        score = super().from_autoevals(result, client)
        if score.skipped or score.score is None:
            return score
        flagged = score.score < 1.0
        message = "flagged by moderation" if flagged else "not flagged by moderation"
        return Score(score.name, score.score, passed=not flagged, message=message, metadata=score.metadata)
