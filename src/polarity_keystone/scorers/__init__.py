"""Client-side scorers: `Scorer`, `Score` and the seed's scorer families.

Layered just under the SDK: they never load the engine, sandboxes or Docker; the judge scorers call
the model through `polarity_keystone.judge`.
"""

import importlib
from typing import TYPE_CHECKING, Any

from ._base import DEFAULT_PASS_THRESHOLD, Case, Score, Scorer
from ._sandbox import (
    CommandExits,
    FileContains,
    FileExists,
    LLMJudge,
    SandboxChecker,
    SandboxScorer,
    SQLEquals,
)

if TYPE_CHECKING:
    from . import presets
    from ._embedding import EmbeddingSimilarity
    from ._heuristic import (
        Contains,
        ExactMatch,
        JSONDiff,
        JSONValidity,
        Levenshtein,
        NumericDiff,
        SemanticListContains,
    )
    from ._llm import (
        Battle,
        ClosedQA,
        Factuality,
        Humor,
        JudgeScorer,
        Moderation,
        Security,
        SQLJudge,
        Summarization,
        Translation,
    )
    from ._llm_client import Embedder, SkipScore, openai_embedder
    from ._rag import (
        AnswerCorrectness,
        AnswerRelevancy,
        AnswerSimilarity,
        ContextEntityRecall,
        ContextPrecision,
        ContextRecall,
        ContextRelevancy,
        Faithfulness,
    )

_LAZY = {
    "EmbeddingSimilarity": "._embedding",
    "Contains": "._heuristic",
    "ExactMatch": "._heuristic",
    "JSONDiff": "._heuristic",
    "JSONValidity": "._heuristic",
    "Levenshtein": "._heuristic",
    "NumericDiff": "._heuristic",
    "SemanticListContains": "._heuristic",
    "Battle": "._llm",
    "ClosedQA": "._llm",
    "Factuality": "._llm",
    "Humor": "._llm",
    "JudgeScorer": "._llm",
    "Moderation": "._llm",
    "SQLJudge": "._llm",
    "Security": "._llm",
    "Summarization": "._llm",
    "Translation": "._llm",
    "Embedder": "._llm_client",
    "SkipScore": "._llm_client",
    "openai_embedder": "._llm_client",
    "AnswerCorrectness": "._rag",
    "AnswerRelevancy": "._rag",
    "AnswerSimilarity": "._rag",
    "ContextEntityRecall": "._rag",
    "ContextPrecision": "._rag",
    "ContextRecall": "._rag",
    "ContextRelevancy": "._rag",
    "Faithfulness": "._rag",
    "presets": ".presets",
}
"""The scorers built on autoevals load it (about 0.2 s) on first use, not with the SDK's `Score`."""


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name], __name__)
    return module if name == "presets" else getattr(module, name)


__all__ = [
    "DEFAULT_PASS_THRESHOLD",
    "AnswerCorrectness",
    "AnswerRelevancy",
    "AnswerSimilarity",
    "Battle",
    "Case",
    "ClosedQA",
    "CommandExits",
    "Contains",
    "ContextEntityRecall",
    "ContextPrecision",
    "ContextRecall",
    "ContextRelevancy",
    "Embedder",
    "EmbeddingSimilarity",
    "ExactMatch",
    "Factuality",
    "Faithfulness",
    "FileContains",
    "FileExists",
    "Humor",
    "JSONDiff",
    "JSONValidity",
    "JudgeScorer",
    "LLMJudge",
    "Levenshtein",
    "Moderation",
    "NumericDiff",
    "SQLEquals",
    "SQLJudge",
    "SandboxChecker",
    "SandboxScorer",
    "Score",
    "Scorer",
    "Security",
    "SemanticListContains",
    "SkipScore",
    "Summarization",
    "Translation",
    "openai_embedder",
    "presets",
]
