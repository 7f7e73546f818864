"""The `autoevals.oai.LLMClient` our autoevals-based scorers use: its completions, embeddings and
moderations go through `polarity_keystone.judge` (OpenAI-compatible or Anthropic endpoints from the
environment, retries, keys never shown), so autoevals never imports the `openai` package."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from autoevals.oai import LLMClient

from .. import judge

Embedder = Callable[[list[str]], Sequence[Sequence[float]]]
"""Texts in, one vector per text out (what `openai_embedder` returns)."""


class SkipScore(Exception):
    """A scorer cannot run here (a missing key, an endpoint the configuration lacks): its score is
    skipped with this reason, never passed."""


class _NeverRaised(Exception):
    """autoevals retries on `RateLimitError`; the judge package already retries rate limits."""


@dataclass
class JudgeLLMClient(LLMClient):  # type: ignore[misc]
    """`chat` answers completions; `embedder` and `moderation_config` serve the other two calls
    (absent: that call is skipped with the reason given)."""

    openai: Any = None
    chat_config: judge.JudgeConfig | None = None
    embedder: Embedder | None = None
    moderation_config: judge.JudgeConfig | None = None
    missing: str = ""
    calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Replaces LLMClient.__post_init__, which imports `openai` to wrap its client.
        self.complete = self._complete
        self.embed = self._embed
        self.moderation = self._moderation
        self.RateLimitError = _NeverRaised
        self._is_wrapped = False

    def _complete(self, **kwargs: Any) -> dict[str, Any]:
        if self.chat_config is None:
            raise SkipScore(self.missing)
        self.calls.append("chat")
        return judge.chat_with(
            self.chat_config,
            kwargs["messages"],
            tools=kwargs.get("tools"),
            tool_choice=kwargs.get("tool_choice"),
            temperature=float(kwargs.get("temperature") or 0.0),
            max_tokens=int(kwargs.get("max_tokens") or judge.MAX_TOKENS),
        )

    def _embed(self, **kwargs: Any) -> dict[str, Any]:
        if self.embedder is None:
            raise SkipScore(self.missing)
        self.calls.append("embed")
        texts = kwargs["input"]
        batch = [texts] if isinstance(texts, str) else list(texts)
        vectors = self.embedder(batch)
        return {"data": [{"index": i, "embedding": list(vector)} for i, vector in enumerate(vectors)]}

    def _moderation(self, **kwargs: Any) -> dict[str, Any]:
        if self.moderation_config is None:
            raise SkipScore(self.missing)
        self.calls.append("moderation")
        return judge.moderate_with(self.moderation_config, str(kwargs["input"]))


def missing_reason(missing: judge.MissingKey, what: str) -> str:
    return f"skipped: no API key for the {missing.provider} {what} ({missing.model}); set {missing.variable}"


def openai_embedder(
    model: str | None = None, base_url: str | None = None, api_key: str | None = None
) -> Embedder:
    """A callable `texts -> vectors` on an OpenAI-compatible embeddings endpoint: `base_url` and
    `api_key` when given, else the environment's (`KEYSTONE_JUDGE_BASE_URL`/`OPENAI_BASE_URL`,
    `OPENAI_API_KEY`); the model defaults to `KEYSTONE_EMBEDDING_MODEL`, else text-embedding-3-small.
    Without a key, calling it raises `SkipScore`, which a scorer reports as skipped."""

    def embed(texts: list[str]) -> list[list[float]]:
        vectors = judge.embed(texts, model=model, base_url=base_url, api_key=api_key)
        if isinstance(vectors, judge.MissingKey):
            raise SkipScore(missing_reason(vectors, "embedder"))
        return vectors

    return embed
