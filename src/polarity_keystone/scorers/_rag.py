"""The RAG scorers: autoevals' implementations of the RAGAS metrics on our judge. A case gives the
question as `input`, the answer as `output`, the reference answer as `expected` and the retrieved
passages as the parameter `context` (a string or a list of strings)."""

from __future__ import annotations

from typing import ClassVar

import autoevals

from ._autoevals import AutoevalsScorer
from ._llm_client import JudgeLLMClient


class RagScorer(AutoevalsScorer):
    needs_chat = True
    metric: ClassVar[type[autoevals.Scorer]]

    def _autoevals(self, client: JudgeLLMClient) -> autoevals.Scorer:
        model = client.chat_config.model if client.chat_config else self.model
        return self.metric(model=model, client=client)


class ContextPrecision(RagScorer):
    """Were the passages useful in reaching the expected answer?"""

    metric = autoevals.ContextPrecision


class ContextRecall(RagScorer):
    """Can each sentence of the expected answer be attributed to the context?"""

    metric = autoevals.ContextRecall


class ContextRelevancy(RagScorer):
    """How much of the context is relevant to the question?"""

    metric = autoevals.ContextRelevancy


class ContextEntityRecall(RagScorer):
    """How many of the expected answer's entities appear in the context?"""

    metric = autoevals.ContextEntityRecall


class Faithfulness(RagScorer):
    """Can each statement of the output be inferred from the context?"""

    metric = autoevals.Faithfulness


class AnswerRelevancy(RagScorer):
    """Does the output answer the question (questions generated from the output, compared with the
    input by embeddings)?"""

    metric = autoevals.AnswerRelevancy


class AnswerCorrectness(RagScorer):
    """Factual overlap of the output with the expected answer, blended with their embedding
    similarity."""

    metric = autoevals.AnswerCorrectness


class AnswerSimilarity(AutoevalsScorer):
    """Embedding similarity of the output and the expected answer (no chat model)."""

    def _autoevals(self, client: JudgeLLMClient) -> autoevals.Scorer:
        return autoevals.AnswerSimilarity(client=client)
