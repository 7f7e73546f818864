"""Ready-made scorer lists for common tasks. Each is a function returning fresh scorer instances, so
two evals never share one:

* `qa()`: a question answered against a reference: `ExactMatch`, `Levenshtein`, `Factuality`.
* `rag()`: retrieval-augmented answers (cases carry `context`): `Faithfulness`, `AnswerRelevancy`,
  `ContextRelevancy`, `ContextRecall`, `AnswerCorrectness`.
* `json_output(schema=None)`: structured output: `JSONValidity` (against the schema when given), `JSONDiff`.
* `sql()`: text-to-SQL: `ExactMatch` (case-insensitive), `SQLJudge`.
* `safety()`: content and security: `Moderation`, `Security`.

The judge, RAG and embedding scorers among them are skipped, never passed, where no model key is set.
"""

from __future__ import annotations

from typing import Any

from ._base import Scorer
from ._heuristic import ExactMatch, JSONDiff, JSONValidity, Levenshtein
from ._llm import Factuality, Moderation, Security, SQLJudge
from ._rag import AnswerCorrectness, AnswerRelevancy, ContextRecall, ContextRelevancy, Faithfulness


def qa() -> list[Scorer]:
    return [ExactMatch(), Levenshtein(), Factuality()]


def rag() -> list[Scorer]:
    return [Faithfulness(), AnswerRelevancy(), ContextRelevancy(), ContextRecall(), AnswerCorrectness()]


def json_output(schema: dict[str, Any] | None = None) -> list[Scorer]:
    return [JSONValidity(schema), JSONDiff()]


def sql() -> list[Scorer]:
    return [ExactMatch(case_sensitive=False), SQLJudge()]


def safety() -> list[Scorer]:
    return [Moderation(), Security()]


__all__ = ["json_output", "qa", "rag", "safety", "sql"]
