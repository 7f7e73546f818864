"""The heuristic scorers: no model involved. `Contains` and `ExactMatch` are ours (the reference's
options); the others wrap autoevals' string, number, JSON and list scorers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import autoevals

from ._autoevals import AutoevalsScorer, as_json, field_of
from ._base import Case, Score, Scorer
from ._llm_client import JudgeLLMClient


class Contains(Scorer):
    """The output contains the needle (or `all`/`any` of several). Needles default to the case's
    `expected` (a string or a list of strings). The score is the share of needles found with
    `mode="all"`, 1 or 0 with `mode="any"`."""

    def __init__(
        self,
        needle: str | Sequence[str] | None = None,
        *,
        case_sensitive: bool = True,
        mode: Literal["all", "any"] = "all",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if mode not in ("all", "any"):
            raise ValueError(f"mode must be 'all' or 'any', not {mode!r}")
        self.needle = needle
        self.case_sensitive = case_sensitive
        self.mode = mode
        if mode == "all":
            self.pass_threshold = 1.0

    def _score(self, case: Case) -> Score:
        wanted = self.needle if self.needle is not None else case.expected
        if wanted is None:
            raise ValueError("Contains needs a needle or an expected value")
        needles = [wanted] if isinstance(wanted, str) else [str(item) for item in wanted]
        if not needles:
            raise ValueError("Contains needs at least one needle")
        text = case.agent_output if self.case_sensitive else case.agent_output.lower()
        found = [n for n in needles if (n if self.case_sensitive else n.lower()) in text]
        missing = [n for n in needles if n not in found]
        if self.mode == "any":
            score = 1.0 if found else 0.0
            message = f"found {found[0]!r}" if found else "found none of the needles"
        else:
            score = len(found) / len(needles)
            message = "found every needle" if not missing else f"missing: {', '.join(map(repr, missing))}"
        return Score(self.name, score, passed=score >= self.pass_threshold, message=message[:500])


class ExactMatch(Scorer):
    """The output equals `expected`, or the case parameter `expected_key` names. Stripped of
    surrounding whitespace unless `strip=False`; case-sensitive unless `case_sensitive=False`."""

    def __init__(
        self,
        expected: Any = None,
        *,
        expected_key: str | None = None,
        strip: bool = True,
        case_sensitive: bool = True,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.expected = expected
        self.expected_key = expected_key
        self.strip = strip
        self.case_sensitive = case_sensitive

    def _score(self, case: Case) -> Score:
        default = self.expected if self.expected is not None else case.expected
        expected = field_of(case, self.expected_key, default)
        if expected is None:
            raise ValueError(
                "ExactMatch needs an expected value (expected=, expected_key= or the case's expected)"
            )
        output, wanted = self._normalise(case.agent_output), self._normalise(str(expected))
        matched = output == wanted
        message = "exact match" if matched else f"expected {wanted[:200]!r}, got {output[:200]!r}"
        return Score(self.name, 1.0 if matched else 0.0, passed=matched, message=message)

    def _normalise(self, text: str) -> str:
        text = text.strip() if self.strip else text
        return text if self.case_sensitive else text.casefold()


class Levenshtein(AutoevalsScorer):
    """1 minus the edit distance between output and expected over the longer one's length."""

    def _autoevals(self, client: JudgeLLMClient) -> autoevals.Scorer:
        return autoevals.Levenshtein()

    def _arguments(self, case: Case) -> dict[str, Any]:
        if case.expected is None:
            raise ValueError("Levenshtein needs an expected value")
        return {"output": case.agent_output, "expected": str(case.expected)}


class NumericDiff(AutoevalsScorer):
    """How close the output's number is to the expected one (1 when equal, falling with the
    relative difference)."""

    def _autoevals(self, client: JudgeLLMClient) -> autoevals.Scorer:
        return autoevals.NumericDiff()

    def _arguments(self, case: Case) -> dict[str, Any]:
        return {
            "output": _number(case.output, "output"),
            "expected": _number(case.expected, "expected value"),
        }


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"the {what} is not a number: {value!r}")
    try:
        return float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(f"the {what} is not a number: {str(value)[:100]!r}") from None


class JSONDiff(AutoevalsScorer):
    """How much of the expected JSON the output's JSON matches, key by key (strings by Levenshtein,
    numbers by NumericDiff). An output that is not JSON fails."""

    def _autoevals(self, client: JudgeLLMClient) -> autoevals.Scorer:
        return autoevals.JSONDiff()

    def _arguments(self, case: Case) -> dict[str, Any]:
        return {
            "output": as_json(case.output, "output"),
            "expected": as_json(case.expected, "expected value"),
        }


class JSONValidity(AutoevalsScorer):
    """The output is a JSON object or array or, when a JSON Schema is given, JSON that conforms to it."""

    def __init__(self, schema: dict[str, Any] | None = None, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.schema = schema

    def _autoevals(self, client: JudgeLLMClient) -> autoevals.Scorer:
        return autoevals.ValidJSON()

    def _arguments(self, case: Case) -> dict[str, Any]:
        # autoevals 0.4.1 ignores its constructor's schema and takes it as eval()'s second positional
        # argument, `expected`.
        return {"output": case.output, "expected": self.schema}


class SemanticListContains(AutoevalsScorer):
    """How well the output list covers the expected list: items are paired by similarity
    (Levenshtein by default; any autoevals pairwise scorer) and the best pairing scored.
    Lists may be given as JSON text."""

    def __init__(
        self,
        *,
        allow_extra_entities: bool = False,
        pairwise_scorer: autoevals.Scorer | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.allow_extra_entities = allow_extra_entities
        self.pairwise_scorer = pairwise_scorer

    def _autoevals(self, client: JudgeLLMClient) -> autoevals.Scorer:
        return autoevals.ListContains(
            pairwise_scorer=self.pairwise_scorer, allow_extra_entities=self.allow_extra_entities
        )

    def _arguments(self, case: Case) -> dict[str, Any]:
        return {"output": _list(case.output, "output"), "expected": _list(case.expected, "expected value")}


def _list(value: Any, what: str) -> list[Any]:
    parsed = as_json(value, what)
    if not isinstance(parsed, list):
        raise ValueError(f"the {what} is not a list: {str(value)[:100]!r}")
    return parsed
