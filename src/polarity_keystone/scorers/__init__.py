"""Client-side scorers: `Scorer`, `Score` and the seed's scorer families.

Layered just under the SDK: they never load the engine, sandboxes or Docker; the judge scorers call
the model through `polarity_keystone.judge`.
"""

from . import presets
from ._base import DEFAULT_PASS_THRESHOLD, Case, Score, Scorer
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
from ._sandbox import (
    CommandExits,
    FileContains,
    FileExists,
    LLMJudge,
    SandboxChecker,
    SandboxScorer,
    SQLEquals,
)

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
