"""Fixtures of the scorer tests: the fake model server of the judge tests (tests/scoring/test_llm_judge.py),
configured as the environment's OpenAI-compatible or Anthropic judge, or no key at all."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from polarity_keystone.judge import _client as judge_client
from tests.scoring.test_llm_judge import ENV_VARS, FakeModel

OPENAI_KEY = "sk-test-openai-5150"
ANTHROPIC_KEY = "sk-ant-test-5150"


def clear_judge_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*ENV_VARS, "KEYSTONE_EMBEDDING_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(judge_client, "BACKOFF", 0.01)


@pytest.fixture(scope="module")
def model_server() -> Iterator[FakeModel]:
    model = FakeModel()
    yield model
    model.close()


@pytest.fixture
def openai_judge(model_server: FakeModel, monkeypatch: pytest.MonkeyPatch) -> FakeModel:
    clear_judge_env(monkeypatch)
    monkeypatch.setenv("KEYSTONE_JUDGE_BASE_URL", model_server.url)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    model_server.script.clear()
    model_server.requests.clear()
    return model_server


@pytest.fixture
def anthropic_judge(model_server: FakeModel, monkeypatch: pytest.MonkeyPatch) -> FakeModel:
    """Only Anthropic configured, and the judge model a Claude one."""
    clear_judge_env(monkeypatch)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", model_server.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("KEYSTONE_JUDGE_MODEL", "claude-3-5-haiku-latest")
    model_server.script.clear()
    model_server.requests.clear()
    return model_server


@pytest.fixture
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_judge_env(monkeypatch)
