"""The bridge to autoevals: a `Scorer` that runs one of its scorers on a `Case` (its `output`,
`expected`, `input` and `context` arguments) and turns its Score (and the rationale in its metadata)
into ours. Model-backed ones get a `JudgeLLMClient` built from the environment at scoring time; without
a key their score is skipped, naming the variable to set."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import autoevals

from .. import judge
from ._base import Case, Score, Scorer
from ._llm_client import Embedder, JudgeLLMClient, SkipScore, missing_reason, openai_embedder

TEXT_CAP = 32 * 1024
"""Characters of a text field sent to a model: a huge output is judged on its start, not sent whole."""


class AutoevalsScorer(Scorer):
    """A scorer computed by an autoevals scorer. Subclasses build it in `_autoevals(client)`."""

    needs_chat = False
    """Whether the autoevals scorer asks a chat model (then a missing key skips it)."""

    def __init__(
        self,
        *,
        name: str | None = None,
        model: str = "paragon-fast",
        provider: judge.Provider | None = None,
        pass_threshold: float | None = None,
    ) -> None:
        super().__init__(name=name)
        self.model = model
        self.provider = provider
        if pass_threshold is not None:
            self.pass_threshold = pass_threshold

    def _autoevals(self, client: JudgeLLMClient) -> autoevals.Scorer:
        raise NotImplementedError

    def _arguments(self, case: Case) -> dict[str, Any]:
        """autoevals' keyword arguments for this case."""
        arguments = {"output": _capped(case.output), "expected": _capped(case.expected)}
        if case.input is not None:
            arguments["input"] = _capped(case.input)
        context = case.parameters.get("context")
        if context is not None:
            arguments["context"] = context
        return arguments

    def _client(self) -> JudgeLLMClient:
        if not self.needs_chat:
            return JudgeLLMClient(embedder=self._embedder(), missing=f"{self.name} calls no chat model")
        config = judge.configure(self.model, self.provider)
        if isinstance(config, judge.MissingKey):
            return JudgeLLMClient(missing=missing_reason(config, "judge"))
        return JudgeLLMClient(chat_config=config, embedder=self._embedder())

    def _embedder(self) -> Embedder | None:
        return openai_embedder()

    def _score(self, case: Case) -> Score:
        client = self._client()
        try:
            if self.needs_chat and client.chat_config is None:
                raise SkipScore(client.missing)
            result = self._autoevals(client).eval(**self._arguments(case))
        except SkipScore as skip:
            return Score(self.name, None, message=str(skip), skipped=True)
        finally:
            forget_embeddings(client)
        return self.from_autoevals(result, client)

    def from_autoevals(self, result: autoevals.Score, client: JudgeLLMClient) -> Score:
        metadata = dict(result.metadata or {})
        if client.chat_config is not None and client.calls:
            metadata.setdefault("model", client.chat_config.model)
            metadata.setdefault("provider", client.chat_config.provider)
        if result.score is None:
            return Score(self.name, None, message="autoevals gave no score", metadata=metadata, skipped=True)
        score = min(1.0, max(0.0, float(result.score)))
        rationale = metadata.get("rationale")
        message = str(rationale) if rationale else f"{self.name}: {score:.2f}"
        return Score(
            self.name, score, passed=score >= self.pass_threshold, message=message, metadata=metadata
        )


def forget_embeddings(client: JudgeLLMClient) -> None:
    """Drop the vectors autoevals' EmbeddingSimilarity cached for `client` on its class: keyed by the
    client's id, they would only grow (a client serves one score) and could be served to a later
    client that reuses the id."""
    cache = autoevals.EmbeddingSimilarity._CACHE
    with autoevals.EmbeddingSimilarity._CACHE_LOCK:
        for key in [key for key in cache if key[3] == id(client)]:
            del cache[key]


def _capped(value: Any) -> Any:
    if isinstance(value, str) and len(value) > TEXT_CAP:
        return value[:TEXT_CAP]
    return value


def as_json(value: Any, what: str) -> Any:
    """A JSON value: parsed when it is a string, as is otherwise. A ValueError names what is not JSON."""
    if not isinstance(value, str | bytes):
        return value
    try:
        return json.loads(value)
    except ValueError as error:
        raise ValueError(f"the {what} is not JSON: {error}") from None


def field_of(case: Case, key: str | None, default: Any) -> Any:
    """`case.parameters[key]` when a key is given (a missing one is an error), else `default`."""
    if key is None:
        return default
    parameters: Mapping[str, Any] = case.parameters
    if key not in parameters:
        raise KeyError(f"the case has no parameter {key!r}")
    return parameters[key]
