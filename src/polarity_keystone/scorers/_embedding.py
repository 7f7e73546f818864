"""`EmbeddingSimilarity`: cosine similarity of the output's and the expected value's embeddings
(autoevals' scaling: below `expected_min` counts as 0), by an OpenAI-compatible embeddings endpoint
from the environment or any `texts -> vectors` callable such as `openai_embedder(...)`."""

from __future__ import annotations

import autoevals

from .. import judge
from ._autoevals import AutoevalsScorer
from ._llm_client import Embedder, JudgeLLMClient, openai_embedder


class EmbeddingSimilarity(AutoevalsScorer):
    def __init__(
        self,
        *,
        embedder: Embedder | None = None,
        model: str | None = None,
        expected_min: float = 0.7,
        prefix: str = "",
        name: str | None = None,
        pass_threshold: float | None = None,
    ) -> None:
        super().__init__(name=name, model=judge.embedding_model(model), pass_threshold=pass_threshold)
        self.embedder = embedder if embedder is not None else openai_embedder(model=model)
        self.expected_min = expected_min
        self.prefix = prefix

    def _embedder(self) -> Embedder | None:
        return self.embedder

    def _autoevals(self, client: JudgeLLMClient) -> autoevals.Scorer:
        scorer = autoevals.EmbeddingSimilarity(
            prefix=self.prefix, model=self.model, expected_min=self.expected_min, client=client
        )
        scorer._CACHE = {}  # autoevals caches vectors on the class, for ever: keep them per call
        return scorer
