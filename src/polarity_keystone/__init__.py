"""Keystone: an open, self-hostable eval runtime for AI agents.

The public names load their packages on first use (PEP 562), not when `polarity_keystone` is imported:
`ks --help` imports this package too, and must not pay for the SDK, httpx and pydantic models it does
not use."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import PUBLISHED_IMAGES, __version__

if TYPE_CHECKING:
    from .analysis import estimate_cost, pricing_table
    from .scorers import (
        AnswerCorrectness,
        AnswerRelevancy,
        AnswerSimilarity,
        Battle,
        ClosedQA,
        CommandExits,
        Contains,
        ContextEntityRecall,
        ContextPrecision,
        ContextRecall,
        ContextRelevancy,
        EmbeddingSimilarity,
        ExactMatch,
        Factuality,
        Faithfulness,
        FileContains,
        FileExists,
        Humor,
        JSONDiff,
        JSONValidity,
        Levenshtein,
        LLMJudge,
        Moderation,
        NumericDiff,
        Score,
        Scorer,
        Security,
        SemanticListContains,
        SQLEquals,
        SQLJudge,
        Summarization,
        Translation,
        openai_embedder,
    )
    from .sdk import (
        APIConnectionError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        ConflictError,
        Eval,
        EvalResult,
        EvalSummary,
        InternalServerError,
        Keystone,
        KeystoneError,
        NotFoundError,
        PermissionDeniedError,
        RateLimitError,
        ServiceUnavailableError,
        auto_instrument,
        eval_context,
        flush_otel,
        register_otel_flush,
        traced,
    )

__all__ = [
    "PUBLISHED_IMAGES",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AnswerCorrectness",
    "AnswerRelevancy",
    "AnswerSimilarity",
    "AuthenticationError",
    "BadRequestError",
    "Battle",
    "ClosedQA",
    "CommandExits",
    "ConflictError",
    "Contains",
    "ContextEntityRecall",
    "ContextPrecision",
    "ContextRecall",
    "ContextRelevancy",
    "EmbeddingSimilarity",
    "Eval",
    "EvalResult",
    "EvalSummary",
    "ExactMatch",
    "Factuality",
    "Faithfulness",
    "FileContains",
    "FileExists",
    "Humor",
    "InternalServerError",
    "JSONDiff",
    "JSONValidity",
    "Keystone",
    "KeystoneError",
    "LLMJudge",
    "Levenshtein",
    "Moderation",
    "NotFoundError",
    "NumericDiff",
    "PermissionDeniedError",
    "RateLimitError",
    "SQLEquals",
    "SQLJudge",
    "Score",
    "Scorer",
    "Security",
    "SemanticListContains",
    "ServiceUnavailableError",
    "Summarization",
    "Translation",
    "__version__",
    "auto_instrument",
    "estimate_cost",
    "eval_context",
    "flush_otel",
    "openai_embedder",
    "pricing_table",
    "register_otel_flush",
    "traced",
]


_ANALYSIS = ("estimate_cost", "pricing_table")
_SCORERS = (
    "AnswerCorrectness",
    "AnswerRelevancy",
    "AnswerSimilarity",
    "Battle",
    "ClosedQA",
    "Contains",
    "CommandExits",
    "ContextEntityRecall",
    "ContextPrecision",
    "ContextRecall",
    "ContextRelevancy",
    "EmbeddingSimilarity",
    "ExactMatch",
    "Factuality",
    "Faithfulness",
    "FileContains",
    "FileExists",
    "Humor",
    "JSONDiff",
    "JSONValidity",
    "LLMJudge",
    "Levenshtein",
    "Moderation",
    "NumericDiff",
    "SQLEquals",
    "SQLJudge",
    "Score",
    "Scorer",
    "Security",
    "SemanticListContains",
    "Summarization",
    "Translation",
    "openai_embedder",
)
_HOMES = {
    name: ".analysis" if name in _ANALYSIS else ".scorers" if name in _SCORERS else ".sdk"
    for name in __all__
    if name not in ("PUBLISHED_IMAGES", "__version__")
}
"""The package each lazily loaded public name comes from."""


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name], __name__), name)
