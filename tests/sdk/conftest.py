"""Fixtures of the SDK tests: a real Keystone server over each store (`store_url`: SQLite, Postgres), and
the fake LLM providers with the trace file their instrumented calls report to."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from polarity_keystone.sdk import uninstrument
from polarity_keystone.sdk._tracing import reset_tracing
from tests.fakes.llm_providers import FakeProviders, fake_providers
from tests.sdk.sdk_servers import KeystoneServer, keystone_in_process, keystone_on_socket

# litellm (patched by auto_instrument when installed) fetches its model price map from GitHub when
# imported unless told to use the copy it ships.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture
def server(store_url: str) -> Iterator[KeystoneServer]:
    """The app in-process: the fast default."""
    with keystone_in_process(store_url) as running:
        yield running


@pytest.fixture
def socket_server(store_url: str) -> Iterator[KeystoneServer]:
    """The app on a real socket: for SSE and for clients built from the environment."""
    with keystone_on_socket(store_url) as running:
        yield running


@pytest.fixture(scope="module")
def providers() -> Iterator[FakeProviders]:
    with fake_providers() as running:
        yield running


@pytest.fixture
def trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Events go to a trace file (no server in the environment); reads the `llm_call` events in it."""
    for name in ("KEYSTONE_API_KEY", "KEYSTONE_SANDBOX_ID", "POLARITY_SANDBOX_ID"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "trace.jsonl"
    monkeypatch.setenv("KEYSTONE_TRACE_FILE", str(path))
    reset_tracing()

    def read() -> list[dict[str, Any]]:
        lines = path.read_text().splitlines() if path.exists() else []
        return [event for event in map(json.loads, lines) if event["event_type"] == "llm_call"]

    yield read
    uninstrument()
    reset_tracing()
