"""Every scorer name of the seed's import list imports from `polarity_keystone` and from
`polarity_keystone.scorers`, and the SDK loads autoevals only when one of its scorers is used."""

from __future__ import annotations

import subprocess
import sys

import polarity_keystone
import polarity_keystone.scorers as scorers

SEED_NAMES = [
    "Contains",
    "ExactMatch",
    "Levenshtein",
    "NumericDiff",
    "JSONDiff",
    "JSONValidity",
    "SemanticListContains",
    "Factuality",
    "Battle",
    "ClosedQA",
    "Humor",
    "Moderation",
    "Summarization",
    "SQLJudge",
    "Translation",
    "Security",
    "ContextPrecision",
    "ContextRecall",
    "ContextRelevancy",
    "ContextEntityRecall",
    "Faithfulness",
    "AnswerRelevancy",
    "AnswerSimilarity",
    "AnswerCorrectness",
    "EmbeddingSimilarity",
    "openai_embedder",
    "Scorer",
    "Score",
]


def test_every_seed_scorer_name_imports_from_both_faces() -> None:
    for name in SEED_NAMES:
        assert getattr(polarity_keystone, name) is getattr(scorers, name), name
        assert name in polarity_keystone.__all__ and name in scorers.__all__, name
    assert callable(scorers.presets.rag)


def test_the_sdk_loads_autoevals_only_on_use() -> None:
    probe = (
        "import sys, polarity_keystone.sdk, polarity_keystone.scorers as s;"
        "print('autoevals' in sys.modules, end=' ');"
        "s.Factuality; print('autoevals' in sys.modules, 'openai' in sys.modules)"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.split() == ["False", "True", "False"]
