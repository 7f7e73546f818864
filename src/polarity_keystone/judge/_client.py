"""The LLM providers a judge calls (the server's `llm_as_judge` check, the client-side judge scorers):
an OpenAI-compatible Chat Completions API or Anthropic's Messages API, configured from the environment
of the machine running Keystone.

Environment (never the spec, never logged):

* OpenAI-compatible: `OPENAI_API_KEY`; base URL from `KEYSTONE_JUDGE_BASE_URL`, else
  `OPENAI_BASE_URL`, else https://api.openai.com/v1 (`POST {base}/chat/completions`).
* Anthropic: `ANTHROPIC_API_KEY`; base URL from `ANTHROPIC_BASE_URL`, else https://api.anthropic.com
  (`POST {base}/v1/messages`).
* The aliases `paragon-fast` and `paragon-max` resolve to `KEYSTONE_JUDGE_MODEL` (default
  gpt-4o-mini) and `KEYSTONE_JUDGE_MODEL_MAX` (default: `KEYSTONE_JUDGE_MODEL`, else gpt-4o).

Rate limits (429), server errors (5xx) and connection errors are retried a few times, honouring
`Retry-After` up to a cap; other errors fail at once with the provider's message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

Provider = Literal["openai", "anthropic"]

ATTEMPTS = 4
"""Calls per judgement, the first included."""
MAX_RETRY_WAIT = 20.0
"""Seconds: the most a `Retry-After` (or the backoff) makes us wait between two attempts."""
BACKOFF = 1.0
"""Seconds before the first retry when the provider gives no `Retry-After`; doubles each time."""
TIMEOUT = 60.0
MAX_TOKENS = 1024
ANTHROPIC_VERSION = "2023-06-01"
ERROR_EXCERPT = 500

_KEY_VARS: dict[Provider, str] = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


class JudgeError(Exception):
    """The provider could not give an answer (after retries, if the error was transient)."""


class _Transient(JudgeError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class JudgeConfig:
    provider: Provider
    model: str
    base_url: str
    api_key: str = field(repr=False)

    def describe(self) -> dict[str, str]:
        """What may be shown: everything but the key."""
        return {"provider": self.provider, "model": self.model, "base_url": self.base_url}


@dataclass(frozen=True)
class MissingKey:
    provider: Provider
    model: str
    variable: str


@dataclass(frozen=True)
class JudgeReply:
    text: str
    usage: dict[str, int]
    attempts: int


def resolve_model(model: str, env: Mapping[str, str]) -> str:
    if model == "paragon-max":
        return env.get("KEYSTONE_JUDGE_MODEL_MAX") or env.get("KEYSTONE_JUDGE_MODEL") or "gpt-4o"
    if model == "paragon-fast":
        return env.get("KEYSTONE_JUDGE_MODEL") or "gpt-4o-mini"
    return model


def infer_provider(model: str) -> Provider:
    return "anthropic" if model.lower().startswith("claude") else "openai"


def configure(
    model: str,
    provider: Provider | None = None,
    env: Mapping[str, str] | None = None,
) -> JudgeConfig | MissingKey:
    """The provider, model, endpoint and key for a judge, or which env var is missing.

    Endpoints come only from the environment, like keys: a spec (which may come from an untrusted
    pull request) must never be able to send the key to a host of its choosing."""
    env = os.environ if env is None else env
    resolved = resolve_model(model, env)
    chosen: Provider = provider or infer_provider(resolved)
    key = env.get(_KEY_VARS[chosen], "")
    if not key:
        return MissingKey(chosen, resolved, _KEY_VARS[chosen])
    if chosen == "anthropic":
        base = env.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"
    else:
        base = env.get("KEYSTONE_JUDGE_BASE_URL") or env.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
    return JudgeConfig(chosen, resolved, base.rstrip("/"), key)


def complete(config: JudgeConfig, system: str | None, prompt: str, temperature: float) -> JudgeReply:
    """One judgement: the model's text answer and its token usage."""
    if config.provider == "anthropic":
        body: dict[str, Any] = {
            "model": config.model,
            "max_tokens": MAX_TOKENS,
            "temperature": temperature,
            "messages": [{"role": "user", "content": prompt}],
        }
        if system:
            body["system"] = system
        data, attempts = send(config, "/v1/messages", body)
        text, usage = _anthropic_answer(data)
    else:
        messages = [{"role": "system", "content": system}] if system else []
        body = {
            "model": config.model,
            "temperature": temperature,
            "max_tokens": MAX_TOKENS,
            "messages": [*messages, {"role": "user", "content": prompt}],
        }
        data, attempts = send(config, "/chat/completions", body)
        text, usage = _openai_answer(data)
    return JudgeReply(text, usage, attempts)


def send(config: JudgeConfig, path: str, body: dict[str, Any]) -> tuple[Any, int]:
    """POST `body` to `path` under the provider's base URL, retrying transient failures: the decoded
    JSON answer and how many attempts it took."""
    url = f"{config.base_url}{path}"
    if config.provider == "anthropic":
        headers = {"x-api-key": config.api_key, "anthropic-version": ANTHROPIC_VERSION}
    else:
        headers = {"Authorization": f"Bearer {config.api_key}"}
    retrying = Retrying(
        retry=retry_if_exception(lambda exc: isinstance(exc, _Transient)),
        stop=stop_after_attempt(ATTEMPTS),
        wait=_wait,
        reraise=True,
    )
    with httpx.Client(timeout=TIMEOUT) as client:
        for attempt in retrying:
            with attempt:
                data = _post(client, url, headers, body)
                number = attempt.retry_state.attempt_number
    return data, number


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, _Transient) and exc.retry_after is not None:
        return min(MAX_RETRY_WAIT, max(0.0, exc.retry_after))
    return min(MAX_RETRY_WAIT, BACKOFF * 2.0 ** (state.attempt_number - 1))


def _post(client: httpx.Client, url: str, headers: dict[str, str], body: dict[str, Any]) -> Any:
    try:
        response = client.post(url, headers=headers, json=body)
    except httpx.TransportError as exc:
        raise _Transient(f"cannot reach the judge at {url}: {exc}") from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise _Transient(_http_error(url, response), _retry_after(response))
    if response.status_code >= 400:
        raise JudgeError(_http_error(url, response))
    try:
        return response.json()
    except ValueError as exc:
        raise JudgeError(f"the judge at {url} answered with invalid JSON: {excerpt(response.text)}") from exc


def _http_error(url: str, response: httpx.Response) -> str:
    detail = response.text
    try:
        error = response.json().get("error")
        if isinstance(error, dict) and error.get("message"):
            detail = str(error["message"])
        elif isinstance(error, str):
            detail = error
    except (ValueError, AttributeError):
        pass
    return f"the judge at {url} returned HTTP {response.status_code}: {excerpt(detail.strip())}"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # an HTTP date: fall back to the backoff


def _openai_answer(data: Any) -> tuple[str, dict[str, int]]:
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise JudgeError(f"unexpected Chat Completions response: {excerpt(str(data))}") from exc
    return str(content or ""), _usage(data)


def _anthropic_answer(data: Any) -> tuple[str, dict[str, int]]:
    try:
        blocks = data["content"]
        text = "".join(block.get("text", "") for block in blocks if block.get("type") == "text")
    except (KeyError, TypeError, AttributeError) as exc:
        raise JudgeError(f"unexpected Messages API response: {excerpt(str(data))}") from exc
    return text, _usage(data)


def _usage(data: Any) -> dict[str, int]:
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return {}
    return {str(k): v for k, v in usage.items() if isinstance(v, int) and not isinstance(v, bool)}


def excerpt(text: str) -> str:
    return text if len(text) <= ERROR_EXCERPT else text[:ERROR_EXCERPT] + "..."
