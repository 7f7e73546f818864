"""The model a judge asks: an OpenAI-compatible Chat Completions API or Anthropic's Messages API,
configured from the environment of the machine running Keystone (never from a spec), with retries,
and keys that are never logged nor shown. Used by the server's `llm_as_judge` check and by the
client-side judge, RAG and embedding scorers."""

from ._chat import anthropic_request, chat, chat_with, openai_completion
from ._client import (
    ATTEMPTS,
    MAX_TOKENS,
    JudgeConfig,
    JudgeError,
    JudgeReply,
    MissingKey,
    Provider,
    complete,
    configure,
    infer_provider,
    resolve_model,
)
from ._embeddings import (
    DEFAULT_EMBEDDING_MODEL,
    embed,
    embed_with,
    embedding_model,
    moderate_with,
    openai_compatible,
)

__all__ = [
    "ATTEMPTS",
    "DEFAULT_EMBEDDING_MODEL",
    "MAX_TOKENS",
    "JudgeConfig",
    "JudgeError",
    "JudgeReply",
    "MissingKey",
    "Provider",
    "anthropic_request",
    "chat",
    "chat_with",
    "complete",
    "configure",
    "embed",
    "embed_with",
    "embedding_model",
    "infer_provider",
    "moderate_with",
    "openai_compatible",
    "openai_completion",
    "resolve_model",
]
