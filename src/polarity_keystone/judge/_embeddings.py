"""OpenAI-compatible embeddings and moderations: the endpoints an Anthropic-only setup lacks, so they
always use the OpenAI-compatible configuration (`OPENAI_API_KEY`, `KEYSTONE_JUDGE_BASE_URL` or
`OPENAI_BASE_URL`), or a base URL and key the caller passes explicitly.

The embedding model defaults to `KEYSTONE_EMBEDDING_MODEL`, else text-embedding-3-small."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ._client import JudgeConfig, JudgeError, MissingKey, configure, excerpt, send

DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"


def openai_compatible(
    model: str, base_url: str | None = None, api_key: str | None = None, env: Mapping[str, str] | None = None
) -> JudgeConfig | MissingKey:
    """The OpenAI-compatible endpoint from the environment, with an explicit base URL or key winning."""
    env = dict(os.environ if env is None else env)
    if api_key:
        env["OPENAI_API_KEY"] = api_key
    if base_url:
        env["KEYSTONE_JUDGE_BASE_URL"] = base_url
    return configure(model, "openai", env)


def embedding_model(model: str | None, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return model or env.get("KEYSTONE_EMBEDDING_MODEL") or DEFAULT_EMBEDDING_MODEL


def embed(
    texts: Sequence[str],
    *,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    env: Mapping[str, str] | None = None,
) -> list[list[float]] | MissingKey:
    """One vector per text, in order, or which env var is missing. Raises `JudgeError` on a provider
    failure."""
    config = openai_compatible(embedding_model(model, env), base_url, api_key, env)
    if isinstance(config, MissingKey):
        return config
    return embeddings_answer(embed_with(config, texts))


def embed_with(config: JudgeConfig, texts: Sequence[str] | str) -> dict[str, Any]:
    """The provider's raw embeddings answer (`{"data": [{"embedding": [...]}, ...]}`)."""
    data, _ = send(config, "/embeddings", {"model": config.model, "input": texts})
    embeddings_answer(data)
    return dict(data)


def embeddings_answer(data: Any) -> list[list[float]]:
    try:
        rows = sorted(data["data"], key=lambda row: int(row.get("index", 0)))
        return [[float(value) for value in row["embedding"]] for row in rows]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise JudgeError(f"unexpected embeddings response: {excerpt(str(data))}") from exc


def moderate_with(config: JudgeConfig, text: str) -> dict[str, Any]:
    """The provider's raw moderation answer (`{"results": [{"flagged": ..., "category_scores": ...}]}`)."""
    body: dict[str, Any] = {"input": text}
    if config.model:
        body["model"] = config.model
    data, _ = send(config, "/moderations", body)
    if not isinstance(data, dict) or not isinstance(data.get("results"), list) or not data["results"]:
        raise JudgeError(f"unexpected moderations response: {excerpt(str(data))}")
    return data
